"""Re-verify a whole chain from genesis and re-derive its state."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from chain.blocks import Block, BlockHeader
from chain.errors import EncodingError, LedgerError
from chain.indexes import IDEMPOTENCY_EXPIRY, PENDING_QUEUES
from chain.state import EmptyState
from chain.transition import apply_block, genesis_block
from node.datadir import DataDir
from node.store import Store


class ChainInvalid(Exception):
    """The stored chain fails verification; `height` names the first bad block."""

    def __init__(self, height: int | None, message: str) -> None:
        super().__init__(message)
        self.height = height
        self.message = message


@dataclass(frozen=True)
class VerifyReport:
    height: int
    tip_hash: str
    transactions: int
    state_entries: int


class MemoryState:
    """Committed state in a dict, as verify re-derives it. The keys of the indexes the
    transition scans (the pending queues for job.claim_next, the idempotency expiries every
    block) are also kept sorted, so that a scan costs no more as the state grows."""

    SCANNED = (PENDING_QUEUES, IDEMPOTENCY_EXPIRY)

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._sorted: dict[bytes, list[bytes]] = {family: [] for family in self.SCANNED}
        """The keys under each of SCANNED, sorted."""

    @classmethod
    def holding(cls, data: dict[bytes, bytes]) -> MemoryState:
        """A state holding a copy of data."""
        state = cls()
        state.apply(sorted(data.items()))
        return state

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def _family(self, key: bytes) -> list[bytes] | None:
        for family, keys in self._sorted.items():
            if key.startswith(family):
                return keys
        return None

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Read lazily from the sorted keys (the transition takes the first few of an index
        that may hold many): a block's scans are done before its changes are applied here."""
        keys = self._family(prefix)
        found: Iterable[bytes]
        if keys is not None:
            at = bisect.bisect_left(keys, prefix + start)
            found = itertools.takewhile(lambda k: k.startswith(prefix), itertools.islice(keys, at, None))
        else:
            found = sorted(k for k in self.data if k.startswith(prefix) and k >= prefix + start)
        return ((k[len(prefix) :], self.data[k]) for k in found)

    def apply(self, changes: list[tuple[bytes, bytes | None]]) -> None:
        for k, v in changes:
            keys = self._family(k)
            if v is None:
                if self.data.pop(k, None) is not None and keys is not None:
                    del keys[bisect.bisect_left(keys, k)]
            else:
                if keys is not None and k not in self.data:
                    bisect.insort(keys, k)
                self.data[k] = v


def verify_store(store: Store, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    genesis = store.genesis
    expected0, state0 = genesis_block(genesis, EmptyState())
    stored0 = store.block_bytes(0)
    if stored0 != expected0.encode():
        raise ChainInvalid(0, "block 0: differs from the block derived from genesis.json")
    state = MemoryState()
    state.apply(state0.changes())
    prev: BlockHeader = expected0.header
    tip = store.tip()
    txs = 0
    for height, raw in store.iter_block_bytes(1):
        if height != prev.height + 1:
            raise ChainInvalid(prev.height + 1, f"block {prev.height + 1}: missing from the store")
        try:
            block = Block.decode(raw)
        except (EncodingError, LedgerError) as exc:
            raise ChainInvalid(height, f"block {height}: stored bytes do not decode: {exc}") from None
        if block.encode() != raw:
            raise ChainInvalid(height, f"block {height}: stored bytes are not in canonical form")
        if block.height != height:
            raise ChainInvalid(height, f"block {height}: stored under height {height} but says {block.height}")
        if store.height_of(block.hash) != height:
            raise ChainInvalid(height, f"block {height}: its hash is not indexed to its height")
        try:
            derived = apply_block(state, prev, block, genesis)
        except LedgerError as exc:
            raise ChainInvalid(height, exc.detail) from None
        for i, tx in enumerate(block.transactions):
            if store.tx_location(tx.hash.hex()) is None:
                raise ChainInvalid(height, f"block {height}: transaction {i} is missing from the tx index")
        state.apply(derived.changes())
        txs += len(block.transactions)
        prev = block.header
        if progress is not None:
            progress(height, tip.height)
    if prev != tip:
        raise ChainInvalid(
            prev.height + 1, f"the stored tip (height {tip.height}) is not the last valid block ({prev.height})"
        )
    stored = dict(store.iter_all_state())
    if stored != state.data:
        diff = sorted(set(stored.items()) ^ set(state.data.items()))
        first = diff[0][0].replace(b"\x00", b"/").decode("utf-8", "replace")
        raise ChainInvalid(
            None, f"stored state differs from the state re-derived from the blocks (first at key '{first}')"
        )
    return VerifyReport(prev.height, prev.hash, txs, len(stored))


def verify_datadir(datadir: DataDir, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    try:
        return verify_store(store, progress)
    finally:
        store.close()
