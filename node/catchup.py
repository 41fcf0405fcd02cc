"""Verify and store a run of blocks: a follower's path for every block it receives.

Each block goes through chain.transition.apply_block (height, link, timestamps, tx_root,
seal, every receipt signature, state_root) and is then written in one synced batch. On a
machine with more than one core, three things overlap:

- a helper process (node.sigcheck) checks the receipt signatures of the completions in the
  next blocks, and what it finds is noted for the transition, which then need not check them
  again;
- this thread applies block N on top of block N-1's changes;
- a writer thread commits block N-1's batch (LevelDB writes and syncs without the GIL).

A block counts as stored only once its batch is durable. If applying a block fails, the run
stops there: the blocks before it are stored, and it and the rest are not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from chain.blocks import Block, check_seal
from chain.errors import InvalidBlock, LedgerError
from chain.genesis import Genesis
from chain.state import ReadableState
from chain.transactions import Transaction
from chain.transition import apply_block
from node.sigcheck import SignatureChecker
from node.store import Store

WRITER_NICE = 10
BALANCE_WAIT_S = 0.001
BALANCE_STEP = 0.04
CHECK_AHEAD_BLOCKS = 2
"""Blocks handed to the helper process ahead of the one being applied, so it never idles."""


class BlockRejected(Exception):
    """A block failed verification and was not stored."""

    def __init__(self, height: int, check: str, detail: str, block: Block | None = None) -> None:
        super().__init__(detail)
        self.height = height
        self.check = check
        self.detail = detail
        self.block = block
        """The refused block, when it decoded."""


@dataclass(frozen=True)
class Sealed:
    """One of two conflicting blocks: its hash and the authority that sealed it."""

    hash: str
    sealer: str
    """The proposer's public key (hex)."""
    authority: str
    """Its place in the genesis list, e.g. "authority 2 of 3"."""


@dataclass(frozen=True)
class Equivocation:
    """Two different blocks at one height, each carrying a valid seal of a genesis authority:
    proof that the chain forked (a group split, or an authority key that signed twice)."""

    height: int
    ours: Sealed
    """The block this node holds at that height (it keeps it)."""
    theirs: Sealed
    """The conflicting block, refused."""

    def describe(self) -> str:
        return (
            f"equivocation at height {self.height}: this node holds block {self.ours.hash} sealed by "
            f"{self.ours.sealer} ({self.ours.authority}), the upstream serves block {self.theirs.hash} sealed by "
            f"{self.theirs.sealer} ({self.theirs.authority})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "equivocation", "height": self.height, "ours": asdict(self.ours), "theirs": asdict(self.theirs)}


def equivocation(store: Store, block: Block) -> Equivocation | None:
    """The equivocation `block` proves against this store: it is at a height the store holds
    (above 0), differs from the stored block there, and its seal verifies against the genesis
    authorities. None otherwise (an unsealed or badly sealed block proves nothing)."""
    genesis = store.genesis
    ours = store.block(block.height) if 0 < block.height <= store.tip().height else None
    if ours is None or ours.hash == block.hash:
        return None
    try:
        check_seal(block, genesis.authorities)
    except InvalidBlock:
        return None

    def sealed(b: Block) -> Sealed:
        return Sealed(b.hash, b.header.proposer, genesis.authority_label(b.header.proposer) or "not an authority")

    return Equivocation(block.height, sealed(ours), sealed(block))


class BlockPipeline:
    """Verifies and stores blocks in order for one store; reusable across runs, then close()."""

    def __init__(self, store: Store, genesis: Genesis, *, synced: bool = True) -> None:
        self.store = store
        self.genesis = genesis
        self.synced = synced
        """Whether each block's batch waits for the disk (not for a group member: Store.prepare_block)."""
        self._checker = SignatureChecker()
        self.closed = False
        self.share = 1.0
        """The part of each block's completions given to the helper process (see _balance)."""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="aitbc-blockwrite", initializer=_yield_cpu)

    def start(self, *, wait: bool = False) -> None:
        """Start the helper process ahead of the first completions (see SignatureChecker.start)."""
        self._checker.start(wait=wait)

    def close(self) -> None:
        self.closed = True
        self._writer.shutdown(wait=True)
        self._checker.close()

    def run(
        self, blocks: Sequence[Block], stopping: Callable[[], bool] = lambda: False
    ) -> tuple[list[Block], BlockRejected | None]:
        """Verify and store blocks in order. Return those stored (blocks already held are
        skipped) and the rejection that stopped the run, if one did. A storage failure is
        raised, after every block written before it is accounted for."""
        stored: list[Block] = []
        writing: tuple[Block, Future[None]] | None = None
        base: ReadableState = self.store
        prev = self.store.tip()
        for ahead in blocks[:CHECK_AHEAD_BLOCKS]:
            self._send(ahead)
        try:
            for i, block in enumerate(blocks):
                waited, checked = self._checker.collect()  # block i's completions
                self._balance(waited)
                if i + CHECK_AHEAD_BLOCKS < len(blocks):
                    self._send(blocks[i + CHECK_AHEAD_BLOCKS])
                if stopping():
                    break
                if block.height <= prev.height:
                    if writing is not None:  # settle the store before comparing with it
                        self._settle(writing, stored)
                        writing, base = None, self.store
                    if self.store.height_of(block.hash) == block.height:
                        continue  # already stored (a websocket may repeat the block it started from)
                    return stored, BlockRejected(
                        block.height,
                        "bad_link",
                        f"block {block.height} differs from the one this follower stored",
                        block,
                    )
                try:
                    state = apply_block(base, prev, block, self.genesis, checked)
                except LedgerError as exc:
                    cause = exc.__cause__
                    check = cause.error_code if isinstance(cause, LedgerError) else exc.error_code
                    return stored, BlockRejected(block.height, check, exc.detail, block)
                if writing is not None:
                    self._settle(writing, stored)
                    state.rebase(self.store)  # the block below is in the store now
                # Prepared here, once the block below is stored (the batch derives from it);
                # committed on the writer thread while the next block is applied.
                prepared = self.store.prepare_block(block, state.changes(), synced=self.synced)
                writing = (block, self._writer.submit(self.store.commit, prepared))
                base, prev = state, block.header
            return stored, None
        finally:
            # A block still being written is settled even when the run ends early: it is then
            # added to the list already returned.
            self._checker.discard_all()  # answers for blocks this run did not reach
            if writing is not None:
                self._settle(writing, stored)

    # -- sharing the checks between the helper and this thread ---------------------------
    # The helper gets the first `share` of each block's completions; this thread checks the
    # rest itself as it applies them. When it has to wait for the helper's answer, the helper
    # is the slower side (the machine is busy, or has one core) and gets less; when the answer
    # is ready, it gets more again.
    def _send(self, block: Block) -> None:
        txs = _completions(block)
        self._checker.send(txs[: round(len(txs) * self.share)])

    def _balance(self, waited: float) -> None:
        if waited > BALANCE_WAIT_S:
            self.share = max(0.0, self.share - BALANCE_STEP)
        else:
            self.share = min(1.0, self.share + BALANCE_STEP / 2)

    @staticmethod
    def _settle(writing: tuple[Block, Future[None]], stored: list[Block]) -> None:
        block, future = writing
        future.result()  # raises the storage failure, if any
        stored.append(block)


def _completions(block: Block) -> list[Transaction]:
    return [tx for tx in block.transactions if tx.type == "job.complete"]


def _yield_cpu() -> None:
    """Lower the writer thread's CPU priority: its commits have slack (a whole block's apply),
    while the helper process and the applying thread are the critical path."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError):
        pass
