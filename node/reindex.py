"""Rebuild the state, the indexes and the counters from the stored blocks alone.

Each block's derived writes land in one batch together with a mark of how far the
rebuild got, so an interrupted reindex resumes where it stopped; while the mark is set,
the node refuses to start (its state would be incomplete).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chain.blocks import Block, BlockHeader
from chain.errors import EncodingError, LedgerError
from chain.state import EmptyState
from chain.transition import apply_block, genesis_block
from node.store import Store
from node.verify import ChainInvalid


@dataclass(frozen=True)
class ReindexReport:
    height: int
    resumed_from: int | None


def reindex_store(store: Store, progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    tip = store.tip()
    mark = store.reindex_pending
    resumed: int | None = None
    if mark is not None and mark != b"clearing" and int(mark) > 0:
        start = resumed = int(mark)
    else:
        store.begin_reindex()
        block0, state0 = genesis_block(store.genesis, EmptyState())
        if store.block_bytes(0) != block0.encode():
            raise ChainInvalid(0, "block 0: differs from the block derived from genesis.json")
        store.write_derived(block0, state0.changes())
        start = 1
    prev: BlockHeader = _header(store, start - 1)
    for height in range(start, tip.height + 1):
        raw = store.block_bytes(height)
        if raw is None:
            raise ChainInvalid(height, f"block {height}: missing from the store")
        try:
            block = Block.decode(raw)
            derived = apply_block(store, prev, block, store.genesis)
        except (EncodingError, LedgerError) as exc:
            raise ChainInvalid(height, f"block {height}: {exc.detail}") from None
        store.write_derived(block, derived.changes())
        prev = block.header
        if progress is not None:
            progress(height, tip.height)
    store.end_reindex()
    return ReindexReport(tip.height, resumed)


def _header(store: Store, height: int) -> BlockHeader:
    if height == 0:
        return genesis_block(store.genesis, EmptyState())[0].header
    block = store.block(height)
    if block is None:
        raise ChainInvalid(height, f"block {height}: missing from the store")
    return block.header
