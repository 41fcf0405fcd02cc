"""The index compactor runs once after start, then after every `every_txs` transactions or when writes pause, never twice at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from chain.blocks import Block, BlockHeader
from chain.transactions import Transaction
from node.compaction import IndexCompactor


class CountingStore:
    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def compact_indexes(self) -> None:
        self.calls += 1
        self.started.set()
        self.release.wait(10)


def _block(txs: int) -> Block:
    header = BlockHeader(1, "00" * 32, 0, "00" * 32, "00" * 32, txs, "")
    return Block(header, "", tuple(Transaction("miner.heartbeat", {"n": i}, 0) for i in range(txs)))


def test_compaction_runs_at_start_then_every_n_transactions_one_at_a_time() -> None:
    async def scenario() -> list[int]:
        store: Any = CountingStore()
        compactor = IndexCompactor(store, every_txs=10)
        seen = []
        compactor.maybe_start()  # at start
        assert await asyncio.to_thread(store.started.wait, 10)
        compactor.on_block(_block(25))  # over the threshold, but one is already running
        seen.append(store.calls)
        store.release.set()
        await compactor.stop()
        compactor.on_block(_block(4))  # 25 + 4 since the last start: due
        await compactor.stop()
        seen.append(store.calls)
        compactor.on_block(_block(9))  # 9 since: not yet
        await compactor.stop()
        seen.append(store.calls)
        return seen

    assert asyncio.run(scenario()) == [1, 2, 2]


def test_compact_indexes_keeps_every_live_entry(tmp_path: Any) -> None:
    from node.store import Store
    from tests.support import make_genesis

    store = Store(tmp_path / "chain", make_genesis("11" * 32))
    try:
        before = dict(store.iter_all_state())
        store.compact_indexes()
        assert dict(store.iter_all_state()) == before
    finally:
        store.close()


def test_compaction_also_runs_when_writes_pause_after_enough_transactions() -> None:
    async def scenario() -> list[int]:
        store: Any = CountingStore()
        store.release.set()
        compactor = IndexCompactor(store, every_txs=1_000, idle_after_s=0.01, idle_min_txs=5)
        compactor._since = 0  # as if the start-up compaction had run
        seen = []
        compactor.on_block(_block(3))  # below idle_min_txs: no timer
        assert compactor._idle_timer is None
        compactor.on_block(_block(3))  # 6 since: compacts once writes pause
        assert compactor._idle_timer is not None
        assert await asyncio.to_thread(store.started.wait, 10)
        await compactor.stop()
        seen.append(store.calls)
        compactor.on_block(_block(2))  # 2 since the last one: not enough
        assert compactor._idle_timer is None
        await compactor.stop()
        seen.append(store.calls)
        return seen

    assert asyncio.run(scenario()) == [1, 1]
