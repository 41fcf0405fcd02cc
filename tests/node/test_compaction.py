"""The index compactor runs once after start, then after every `every` index deletions or when writes pause after
enough of them, never twice at once; blocks that only add index entries cost no compaction."""

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
        self.index_deletions = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def compact_indexes(self) -> None:
        self.calls += 1
        self.started.set()
        self.release.wait(10)


def _block(store: Any, deletions: int, txs: int = 3) -> Block:
    """A block just written, which deleted `deletions` index entries (as the store counts them)."""
    store.index_deletions += deletions
    header = BlockHeader(1, "00" * 32, 0, "00" * 32, "00" * 32, txs, "")
    return Block(header, "", tuple(Transaction("miner.heartbeat", {"n": i}, 0) for i in range(txs)))


def test_compaction_runs_at_start_then_every_n_index_deletions_one_at_a_time() -> None:
    async def scenario() -> list[int]:
        store: Any = CountingStore()
        compactor = IndexCompactor(store, every=10)
        seen = []
        compactor.maybe_start()  # at start
        assert await asyncio.to_thread(store.started.wait, 10)
        compactor.on_block(_block(store, 25))  # over the threshold, but one is already running
        seen.append(store.calls)
        store.release.set()
        await compactor.stop()
        compactor.on_block(_block(store, 4))  # 25 + 4 since the last start: due
        await compactor.stop()
        seen.append(store.calls)
        compactor.on_block(_block(store, 9))  # 9 since: not yet
        await compactor.stop()
        seen.append(store.calls)
        for _ in range(50):
            compactor.on_block(_block(store, 0, txs=500))  # many transactions, no deletions: nothing to clear
        await compactor.stop()
        seen.append(store.calls)
        return seen

    assert asyncio.run(scenario()) == [1, 2, 2, 2]


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


def test_compaction_also_runs_when_writes_pause_after_enough_deletions() -> None:
    async def scenario() -> list[int]:
        store: Any = CountingStore()
        store.release.set()
        compactor = IndexCompactor(store, every=1_000, idle_after_s=0.01, idle_min=5)
        compactor._since = 0  # as if the start-up compaction had run
        seen: list[int] = []
        compactor.on_block(_block(store, 3))  # below idle_min: no timer
        assert compactor._idle_timer is None
        compactor.on_block(_block(store, 3))  # 6 since: compacts once writes pause
        assert compactor._idle_timer is not None
        assert await asyncio.to_thread(store.started.wait, 10)
        await compactor.stop()
        seen.append(store.calls)
        compactor.on_block(_block(store, 2))  # 2 since the last one: not enough
        assert compactor._idle_timer is None
        await compactor.stop()
        seen.append(store.calls)
        return seen

    assert asyncio.run(scenario()) == [1, 1]


def test_the_store_counts_the_index_entries_its_blocks_delete(tmp_path: Any) -> None:
    from chain.crypto import NodeKey
    from node.clock import now_ms
    from node.producer import seal_now
    from node.store import Store
    from tests.support import make_genesis

    key = NodeKey(b"\x07" * 32)
    store = Store(tmp_path / "chain", make_genesis(key.public_hex))
    try:

        def seal(tx_type: str, payload: dict[str, Any]) -> None:
            outcomes, _ = seal_now(store, key, [Transaction(tx_type, payload, now_ms())])
            assert isinstance(outcomes[0], dict), outcomes

        seal("account.create", {"name": "c", "role": "client", "key_hash": "ab" * 32})
        seal("account.create", {"name": "m", "role": "miner", "key_hash": "cd" * 32})
        seal("miner.register", {"miner_id": "gpu", "owner": "m", "capabilities": ["llama3.2"], "gpu_info": None})
        seal("job.submit", {"job_id": "j1", "client": "c", "prompt": "p", "model": "llama3.2", "params": None})
        assert store.index_deletions == 0  # only additions so far
        seal("job.claim", {"job_id": "j1", "miner_id": "gpu", "owner": "m"})
        assert store.index_deletions >= 3  # at least the pending status entries and the pending-by-model entry
    finally:
        store.close()
