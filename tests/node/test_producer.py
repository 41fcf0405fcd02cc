from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import node.producer as producer_module
from chain.accounts import account_key
from chain.blocks import Block
from chain.crypto import NodeKey, hash_hex
from chain.errors import Conflict, TooLarge, ValidationError
from chain.genesis import Genesis
from chain.jobs import job_key
from chain.transactions import Transaction
from node.config import BLOCK_FRAME_BYTES
from node.producer import NodeUnavailable, Producer
from node.store import Store
from tests.support import make_genesis

LEASE_WAIT_S = 30


def account(name: str, role: str = "client") -> dict[str, str]:
    return {"name": name, "role": role, "key_hash": hash_hex(name.encode())}


def stored_tx_for(store: Store, tx_type: str, payload: dict[str, Any]) -> tuple[Transaction, tuple[int, int] | None]:
    """Find the stored transaction carrying this payload, newest block first, and its indexed location."""
    for height in range(store.tip().height, 0, -1):
        block = store.block(height)
        assert block is not None
        for tx in block.transactions:
            if tx.type == tx_type and tx.payload == payload:
                return tx, store.tx_location(tx.hash.hex())
    raise AssertionError(f"no stored {tx_type} transaction with payload {payload}")


def stored_blocks(store: Store, after: int) -> list[Block]:
    blocks = []
    for height in range(after + 1, store.tip().height + 1):
        block = store.block(height)
        assert block is not None
        blocks.append(block)
    return blocks


@pytest.fixture
def lease_genesis(node_key: NodeKey) -> Genesis:
    return make_genesis(node_key.public_hex, max_block_txs=10, lease_seconds=1)


@pytest.fixture
def lease_store(tmp_path: Path, lease_genesis: Genesis) -> Iterator[Store]:
    s = Store(tmp_path / "lease-chain", lease_genesis)
    try:
        yield s
    finally:
        s.close()


def submit_together(store: Store, node_key: NodeKey, *accounts: dict[str, str]) -> list[Any]:
    """Submit account.create transactions at once to a fresh producer; each result or error."""
    return submit_all(Producer(store, node_key), list(accounts))


def submit_all(producer: Producer, payloads: list[dict[str, Any]]) -> list[Any]:
    """Start producer, submit account.create transactions at once (all in the mempool before the
    first block is built), stop it; each result or error, in order."""

    async def scenario() -> list[Any]:
        producer.start()
        try:
            outcomes: list[Any] = await asyncio.gather(
                *(producer.submit("account.create", p) for p in payloads), return_exceptions=True
            )
            return outcomes
        finally:
            await producer.stop()

    return asyncio.run(scenario())


def test_concurrent_submissions_share_blocks_within_max_block_txs(store: Store, node_key: NodeKey) -> None:
    assert store.genesis.params.max_block_txs == 10
    start_height = store.tip().height
    names = [f"user-{i:03d}" for i in range(200)]
    announced: list[Block] = []

    async def submit_and_check(producer: Producer, name: str) -> tuple[int, int]:
        payload = account(name)
        result = await producer.submit("account.create", payload)
        # Answered only once durable: the tx is indexed and its state is in the store.
        _, location = stored_tx_for(store, "account.create", payload)
        assert location is not None
        assert store.get_record(account_key(name)) == result
        return location

    async def scenario() -> list[tuple[int, int]]:
        producer = Producer(store, node_key)
        producer.feed.subscribe(announced.append)
        producer.start()
        try:
            return await asyncio.gather(*(submit_and_check(producer, n) for n in names))
        finally:
            await producer.stop()

    locations = asyncio.run(scenario())

    blocks = stored_blocks(store, start_height)
    assert sum(len(b.transactions) for b in blocks) == len(names)
    assert len(blocks) < len(names)
    assert len(blocks) >= len(names) // 10
    assert all(1 <= len(b.transactions) <= 10 for b in blocks)
    assert len(set(locations)) == len(names)
    assert {h for h, _ in locations} == {b.height for b in blocks}
    assert [b.hash for b in announced] == [b.hash for b in blocks]
    assert store.tx_count() == len(names)


def test_a_block_stays_within_max_block_bytes_and_what_does_not_fit_waits_for_the_next(
    store: Store, node_key: NodeKey
) -> None:
    cap = BLOCK_FRAME_BYTES + 700  # room for four account.create transactions of about 150 bytes
    names = [f"user-{i:03d}" for i in range(60)]
    start_height = store.tip().height

    outcomes = submit_all(Producer(store, node_key, max_block_bytes=cap), [account(n) for n in names])

    assert [o["name"] for o in outcomes] == names  # every one answered with its result
    blocks = stored_blocks(store, start_height)
    assert [tx.payload["name"] for b in blocks for tx in b.transactions] == names  # none lost, in order
    assert max(len(b.encode()) for b in blocks) <= cap
    assert max(len(b.transactions) for b in blocks) >= 2  # blocks are still shared
    assert len(blocks) > len(names) // store.genesis.params.max_block_txs  # more than the count alone needs


def test_a_transaction_larger_than_a_block_is_sealed_alone_outside_a_group(store: Store, node_key: NodeKey) -> None:
    cap = BLOCK_FRAME_BYTES + 700
    big = {**account("big"), "note": "x" * 2000}
    start_height = store.tip().height

    outcomes = submit_all(Producer(store, node_key, max_block_bytes=cap), [account("before"), big, account("after")])

    assert [o["name"] for o in outcomes] == ["before", "big", "after"]
    blocks = stored_blocks(store, start_height)
    assert [[tx.payload["name"] for tx in b.transactions] for b in blocks] == [["before"], ["big"], ["after"]]


def test_in_a_group_a_transaction_larger_than_a_block_is_refused_and_the_others_commit(
    store: Store, node_key: NodeKey
) -> None:
    cap = BLOCK_FRAME_BYTES + 700
    big = {**account("big"), "note": "x" * 2000}
    start_height = store.tip().height
    producer = Producer(store, node_key, max_block_bytes=cap, refuse_oversize=True)

    before, refused, after = submit_all(producer, [account("before"), big, account("after")])

    assert before["name"] == "before" and after["name"] == "after"
    assert isinstance(refused, TooLarge) and refused.error_code == "payload_too_large"
    assert "more than a block holds" in refused.detail
    blocks = stored_blocks(store, start_height)
    assert [tx.payload["name"] for b in blocks for tx in b.transactions] == ["before", "after"]
    assert store.get(account_key("big")) is None


def test_rejected_tx_raises_its_error_while_the_rest_of_its_block_commits(store: Store, node_key: NodeKey) -> None:
    good_a, good_b = account("alice"), account("bob")
    bad_role = {"name": "mallory", "role": "wizard", "key_hash": hash_hex(b"mallory")}

    a, bad, b = submit_together(store, node_key, good_a, bad_role, good_b)

    assert isinstance(bad, ValidationError)
    assert "role" in bad.detail
    assert a["name"] == "alice" and b["name"] == "bob"
    _, loc_a = stored_tx_for(store, "account.create", good_a)
    _, loc_b = stored_tx_for(store, "account.create", good_b)
    assert loc_a is not None and loc_b is not None
    assert loc_a[0] == loc_b[0] == store.tip().height  # one block, holding only the valid two
    tip = store.block(store.tip().height)
    assert tip is not None and tip.header.tx_count == 2
    assert store.get(account_key("mallory")) is None


def test_conflicting_submissions_one_wins_one_gets_conflict(store: Store, node_key: NodeKey) -> None:
    first = account("alice")
    second = {"name": "alice", "role": "client", "key_hash": hash_hex(b"another key")}

    won, lost = submit_together(store, node_key, first, second)

    assert won["key_hash"] == first["key_hash"]
    assert isinstance(lost, Conflict) and lost.error_code == "account_exists"
    assert store.get_record(account_key("alice"))["key_hash"] == first["key_hash"]


def test_a_lone_submission_is_sealed_once_nothing_more_arrives_not_after_the_longest_wait(
    tmp_path: Path, node_key: NodeKey
) -> None:
    """With block_max_wait_ms at its largest (10 s), a submission that nothing follows is
    sealed after a quiet pause: it must be answered long before those 10 s."""
    store = Store(tmp_path / "patient", make_genesis(node_key.public_hex, max_block_txs=10, block_max_wait_ms=10_000))

    async def scenario() -> dict[str, Any]:
        producer = Producer(store, node_key)
        producer.start()
        try:
            return await asyncio.wait_for(producer.submit("account.create", account("alone")), timeout=5)
        finally:
            await producer.stop()

    try:
        assert asyncio.run(scenario())["name"] == "alone"
        assert store.tip().height == 1
    finally:
        store.close()


def test_while_a_block_is_written_the_next_waits_for_that_write_not_in_quiet_pauses(
    tmp_path: Path, node_key: NodeKey
) -> None:
    """Block 1 is held in its write. B arrives and the producer waits for block 1's write
    (taking no quiet_s steps meanwhile: sealing B alone would only have made C wait for a
    third block), then C arrives: B and C share block 2. (block_max_wait_ms is long, so only
    the write decides.)"""
    store = Store(tmp_path / "held", make_genesis(node_key.public_hex, max_block_txs=10, block_max_wait_ms=10_000))
    release = threading.Event()
    real_write = store.write_block
    holding: list[Any] = []  # (loop, event): set once block 1's write is being held

    def held_write(block: Block, changes: Any, **kwargs: Any) -> None:
        if block.transactions[0].payload["name"] == "first":
            loop, held = holding[0]
            loop.call_soon_threadsafe(held.set)
            release.wait(timeout=30)
        real_write(block, changes, **kwargs)

    store.write_block = held_write  # type: ignore[method-assign]  # a write held by the test
    start = store.tip().height
    quiet_steps_while_held: list[float] = []

    async def scenario() -> None:
        producer = Producer(store, node_key, quiet_s=0.0005)
        real_sleep = producer._sleep
        waiting_for_write = asyncio.Event()

        async def watched(seconds: float | None, until: Any = None) -> None:
            if until is not None and producer.mempool_size:
                waiting_for_write.set()
            elif held.is_set() and not release.is_set() and seconds == producer.quiet_s:
                quiet_steps_while_held.append(seconds)
            await real_sleep(seconds, until)

        producer._sleep = watched  # type: ignore[method-assign]  # a sleep watched by the test
        held = asyncio.Event()
        holding.append((asyncio.get_running_loop(), held))
        producer.start()
        try:
            first = asyncio.ensure_future(producer.submit("account.create", account("first")))
            await asyncio.wait_for(held.wait(), timeout=10)  # block 1 sealed and held in its write
            b = asyncio.ensure_future(producer.submit("account.create", account("b")))
            await asyncio.wait_for(waiting_for_write.wait(), timeout=10)  # B is waiting on block 1's write
            # C's task is queued before the write's completion can be (the thread reports it
            # through the loop), so C is in the mempool when the producer sees block 1 durable.
            c = asyncio.ensure_future(producer.submit("account.create", account("c")))
            release.set()
            await asyncio.gather(first, b, c)
        finally:
            release.set()
            await producer.stop()

    try:
        asyncio.run(scenario())
        blocks = stored_blocks(store, start)
        assert [[tx.payload["name"] for tx in blk.transactions] for blk in blocks] == [["first"], ["b", "c"]]
        assert quiet_steps_while_held == []
    finally:
        store.close()


def test_a_write_slower_than_block_max_wait_ms_does_not_hold_the_next_block_past_it(
    tmp_path: Path, node_key: NodeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block 1's write is held past block_max_wait_ms: block 2 is still sealed (applied, its
    transaction's outcome decided) at its deadline, and written once block 1 is durable."""
    store = Store(tmp_path / "slow", make_genesis(node_key.public_hex, max_block_txs=10, block_max_wait_ms=20))
    release = threading.Event()
    real_write = store.write_block
    events: dict[str, Any] = {}  # the loop, and the events the threads set on it

    def held_write(block: Block, changes: Any, **kwargs: Any) -> None:
        if block.transactions[0].payload["name"] == "first":
            events["loop"].call_soon_threadsafe(events["held"].set)
            release.wait(timeout=30)
        real_write(block, changes, **kwargs)

    store.write_block = held_write  # type: ignore[method-assign]  # a write held by the test
    start = store.tip().height
    real_apply = producer_module.apply_and_seal
    applied: list[list[str]] = []

    def watched_apply(*args: Any) -> Any:
        applied.append([tx.payload["name"] for tx in args[4]])
        if len(applied) == 2:
            events["second_applied"].set()  # on the event loop: the producer applies there
        return real_apply(*args)

    monkeypatch.setattr(producer_module, "apply_and_seal", watched_apply)

    async def scenario() -> None:
        events.update(loop=asyncio.get_running_loop(), held=asyncio.Event(), second_applied=asyncio.Event())
        producer = Producer(store, node_key)
        producer.start()
        try:
            first = asyncio.ensure_future(producer.submit("account.create", account("first")))
            await asyncio.wait_for(events["held"].wait(), timeout=10)
            second = asyncio.ensure_future(producer.submit("account.create", account("second")))
            await asyncio.wait_for(events["second_applied"].wait(), timeout=10)  # sealed while block 1 is held
            assert not first.done() and not second.done()
            release.set()
            await asyncio.gather(first, second)
        finally:
            release.set()
            await producer.stop()

    try:
        asyncio.run(scenario())
        assert applied[:2] == [["first"], ["second"]]
        assert [[tx.payload["name"] for tx in blk.transactions] for blk in stored_blocks(store, start)] == [
            ["first"],
            ["second"],
        ]
    finally:
        store.close()


def test_idle_producer_seals_no_blocks(store: Store, node_key: NodeKey) -> None:
    start_height = store.tip().height
    announced: list[Block] = []

    async def scenario() -> None:
        producer = Producer(store, node_key)
        producer.feed.subscribe(announced.append)
        producer.start()
        # One at a time: each needs exactly one block, and between them the loop is idle.
        for i in range(5):
            await producer.submit("account.create", account(f"one-by-one-{i}"))
        await producer.stop()

    asyncio.run(scenario())

    assert store.tip().height == start_height + 5
    assert len(announced) == 5
    assert all(len(b.transactions) == 1 for b in stored_blocks(store, start_height))


def test_started_then_stopped_producer_writes_nothing(store: Store, node_key: NodeKey) -> None:
    before = (store.tip(), list(store.iter_all_state()))

    async def scenario() -> None:
        producer = Producer(store, node_key)
        producer.start()
        await producer.stop()

    asyncio.run(scenario())

    assert (store.tip(), list(store.iter_all_state())) == before


def test_submission_after_stop_is_refused(store: Store, node_key: NodeKey) -> None:
    async def scenario() -> None:
        producer = Producer(store, node_key)
        producer.start()
        await producer.stop()
        with pytest.raises(NodeUnavailable) as info:
            await producer.submit("account.create", account("late"))
        assert info.value.error_code == "shutting_down"

    asyncio.run(scenario())
    assert store.get(account_key("late")) is None
    assert store.tip().height == 0


async def _wait_for_job_status(store: Store, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + LEASE_WAIT_S
    while time.monotonic() < deadline:
        job: dict[str, Any] = store.get_record(job_key(job_id))
        if job["status"] == status:
            return job
        await asyncio.sleep(0.05)  # poll the condition; the deadline bounds the wait
    raise AssertionError(f"job {job_id} did not become {status} within {LEASE_WAIT_S}s: {job}")


def test_expired_lease_is_requeued_without_any_submission(lease_store: Store, node_key: NodeKey) -> None:
    store = lease_store
    assert store.genesis.params.lease_seconds == 1

    async def scenario() -> tuple[dict[str, Any], int, dict[str, Any]]:
        producer = Producer(store, node_key)
        producer.start()
        try:
            await producer.submit("account.create", account("alice"))
            await producer.submit("account.create", account("rig-owner", "miner"))
            await producer.submit(
                "miner.register",
                {"miner_id": "gpu-1", "owner": "rig-owner", "capabilities": ["llama3.2"], "gpu_info": None},
            )
            await producer.submit(
                "job.submit", {"job_id": "job-1", "client": "alice", "prompt": "hello", "model": "llama3.2"}
            )
            claimed = await producer.submit("job.claim", {"miner_id": "gpu-1", "owner": "rig-owner", "job_id": "job-1"})
            height_after_claim = store.tip().height
            requeued = await _wait_for_job_status(store, "job-1", "pending")
            return claimed, height_after_claim, requeued
        finally:
            await producer.stop()

    claimed, height_after_claim, requeued = asyncio.run(scenario())

    assert claimed["status"] == "running"
    assert claimed["lease_deadline"] is not None
    assert requeued["error"] == "lease expired"
    assert requeued["attempts"] == 1
    assert requeued["miner_id"] is None and requeued["lease_deadline"] is None
    # The producer sealed exactly one block on its own, holding only the requeue.
    assert store.tip().height == height_after_claim + 1
    block = store.block(store.tip().height)
    assert block is not None
    assert [(tx.type, tx.payload) for tx in block.transactions] == [
        ("job.requeue", {"job_id": "job-1", "lease_deadline": claimed["lease_deadline"]})
    ]
    assert block.header.timestamp >= claimed["lease_deadline"]


class HeldLog:
    """A BlockLog of depth 2 whose commits the test releases (or fails) one by one. Like
    node.group.EtcdLog, it stores each block after the one below it, and fails a block whose
    predecessor failed (it was built on it); a block built again on the store follows none."""

    depth = 2

    def __init__(self, store: Store) -> None:
        self.store = store
        self.started: list[int] = []
        self.gates: dict[int, asyncio.Future[bool]] = {}
        """Per commit, in the order they began: resolved by the test, True to commit, False to fail."""
        self.began = asyncio.Event()
        self._stored: tuple[int, asyncio.Future[bool]] | None = None

    def gate(self, n: int) -> asyncio.Future[bool]:
        return self.gates.setdefault(n, asyncio.get_running_loop().create_future())

    def release_all(self) -> None:
        """Let every commit, begun or to come, go (as the test ends, pass or fail)."""
        for n in range(len(self.started) + 64):
            if not self.gate(n).done():
                self.gate(n).set_result(True)

    async def commit(self, block: Block, changes: Any) -> None:
        below, stored = self._stored, asyncio.get_running_loop().create_future()
        previous = below[1] if below is not None and below[0] == block.height - 1 else None
        self._stored = (block.height, stored)
        self.started.append(block.height)
        self.began.set()
        try:
            ok = await self.gate(len(self.started) - 1)
            if previous is not None:
                await asyncio.wait([previous])
                ok = ok and previous.result()
            if not ok:
                raise NodeUnavailable(f"block {block.height} was not committed", error_code="unavailable")
            self.store.write_block(block, changes)
        except BaseException:
            stored.set_result(False)
            raise
        stored.set_result(True)

    async def until_started(self, count: int) -> None:
        while len(self.started) < count:
            self.began.clear()
            await asyncio.wait_for(self.began.wait(), timeout=10)


def with_held_log(
    tmp_path: Path, node_key: NodeKey, steps: Callable[[Producer, HeldLog, int], Awaitable[None]]
) -> list[list[str]]:
    """Run steps(producer, log, start height) on a producer committing through a HeldLog (every
    commit let go as it ends); the names of the accounts in each block stored, in order."""
    store = Store(tmp_path / "held", make_genesis(node_key.public_hex, max_block_txs=10, block_max_wait_ms=10_000))
    start = store.tip().height

    async def scenario() -> None:
        held = HeldLog(store)
        producer = Producer(store, node_key, log=held)
        producer.start()
        try:
            await steps(producer, held, start)
        finally:
            held.release_all()
            await producer.stop()

    try:
        asyncio.run(scenario())
        return [[tx.payload["name"] for tx in blk.transactions] for blk in stored_blocks(store, start)]
    finally:
        store.close()


def test_with_a_log_of_depth_two_the_next_block_commits_while_the_one_below_is_under_way(
    tmp_path: Path, node_key: NodeKey
) -> None:
    """Block 1 is held in its commit; B is sealed into block 2, whose commit starts meanwhile;
    C then waits, the log's depth being taken, until block 1 is in. Each is answered only once
    its own block is stored, and the blocks are stored in order."""

    async def steps(producer: Producer, held: HeldLog, start: int) -> None:
        a = asyncio.ensure_future(producer.submit("account.create", account("a")))
        await held.until_started(1)
        b = asyncio.ensure_future(producer.submit("account.create", account("b")))
        await held.until_started(2)  # block 2's commit began while block 1's is under way
        assert held.started == [start + 1, start + 2] and not a.done() and not b.done()
        c = asyncio.ensure_future(producer.submit("account.create", account("c")))
        await asyncio.sleep(0)
        held.gate(1).set_result(True)  # block 2 may go, but it waits for block 1 to be stored
        for _ in range(20):  # turns of the loop: C would be sealed and block 2 stored in fewer
            await asyncio.sleep(0)
        assert not b.done() and held.started == [start + 1, start + 2]  # C is not sealed: depth 2 is taken
        held.gate(0).set_result(True)
        await asyncio.wait_for(asyncio.gather(a, b), timeout=10)
        await held.until_started(3)
        assert held.started[2] == start + 3
        held.gate(2).set_result(True)
        await asyncio.wait_for(c, timeout=10)

    assert with_held_log(tmp_path, node_key, steps) == [["a"], ["b"], ["c"]]


def test_a_failed_block_fails_the_block_sealed_on_it_and_the_next_is_built_on_the_store(
    tmp_path: Path, node_key: NodeKey
) -> None:
    """Blocks 1 (A) and 2 (B, built on block 1) are both under way, and C waits for room; block 1
    fails: B is refused with it, nothing of either is stored, and C, built on block 2's state at
    first, is built again on the store and stored at height 1."""

    async def steps(producer: Producer, held: HeldLog, start: int) -> None:
        a = asyncio.ensure_future(producer.submit("account.create", account("a")))
        await held.until_started(1)
        b = asyncio.ensure_future(producer.submit("account.create", account("b")))
        await held.until_started(2)
        c = asyncio.ensure_future(producer.submit("account.create", account("c")))
        for _ in range(5):
            await asyncio.sleep(0)  # C reaches the mempool; the producer waits for block 1
        held.gate(1).set_result(True)
        held.gate(0).set_result(False)
        for refused in (a, b):
            with pytest.raises(NodeUnavailable):
                await asyncio.wait_for(refused, timeout=10)
        await held.until_started(3)
        assert held.started[2] == start + 1  # C's block: built again on the store's tip
        held.gate(2).set_result(True)
        await asyncio.wait_for(c, timeout=10)

    assert with_held_log(tmp_path, node_key, steps) == [["c"]]
