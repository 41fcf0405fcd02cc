"""Which pending job a miner gets: the oldest one whose model it serves, however many models it
serves and however many other jobs wait ahead of it; and the store's in-memory queue heads
(node.store.QueueHeads), which answer that without reading LevelDB, always agreeing with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.indexes import PENDING_QUEUES
from chain.jobs import job_key
from chain.state import key
from chain.transactions import Transaction
from node.ledger import reads as queries
from node.producer import seal_now
from node.store import QueueHeads, Store
from tests.chain.devchain import AUTHORITY, T0, key_hash, make_genesis

MODELS = ["m0", "m1", "m2", "m3", "m4"]
GENESIS = make_genesis(
    params={
        "max_block_txs": 500,
        "lease_seconds": 60,
        "max_attempts": 2,
        "prices": {m: {"tokens": "0.000001"} for m in MODELS},
    }
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "chain", GENESIS)
    try:
        seal_now(
            s,
            AUTHORITY,
            [Transaction("account.create", {"name": "c", "role": "client", "key_hash": key_hash("c")}, T0)],
            clock=lambda: T0,
        )
        yield s
    finally:
        s.close()


def submit(store: Store, models: list[str]) -> list[str]:
    at = store.tip().timestamp + 1
    ids = [f"job-{store.tip().height}-{i}" for i in range(len(models))]
    txs = [
        Transaction("job.submit", {"job_id": j, "client": "c", "prompt": "p", "model": m, "params": {}}, at)
        for j, m in zip(ids, models, strict=True)
    ]
    outcomes, block = seal_now(store, AUTHORITY, txs, clock=lambda: at)
    assert block is not None and all(isinstance(o, dict) for o in outcomes), outcomes
    return ids


def oldest(store: Store, models: list[str]) -> Any:
    job = queries.oldest_pending_for_models(store, models)
    return None if job is None else job["job_id"]


@pytest.mark.parametrize("served", [["m4"], ["m3", "m4"], ["m2", "m3", "m4"], MODELS[1:]])
def test_the_oldest_job_of_a_served_model_wins_even_behind_many_others(store: Store, served: list[str]) -> None:
    submit(store, ["m0"] * 40)  # more jobs nobody here serves than a queue head holds
    first = submit(store, ["m4", "m3", "m2", "m1"])
    assert (
        oldest(store, served)
        == first[["m4", "m3", "m2", "m1"].index(next(m for m in ["m4", "m3", "m2", "m1"] if m in served))]
    )


def test_a_served_job_within_the_walk_is_found_and_none_is_none(store: Store) -> None:
    assert oldest(store, MODELS) is None
    ids = submit(store, ["m0", "m1", "m2"])
    assert oldest(store, ["m1", "m2", "m3"]) == ids[1]
    assert oldest(store, ["m4", "m3", "m2"]) == ids[2]
    assert oldest(store, ["m3", "m4", "m9"]) is None


# -- the queue heads held in memory ---------------------------------------------------------


def seal(store: Store, txs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    at = store.tip().timestamp + 1
    outcomes, _ = seal_now(store, AUTHORITY, [Transaction(t, p, at) for t, p in txs], clock=lambda: at)
    return outcomes


def truth(store: Store, model: str) -> tuple[bytes, bytes] | None:
    """The queue's first entry, read from LevelDB itself."""
    return next(iter(store.iter_state(PENDING_QUEUES + model.encode() + b"\x00")), None)


@pytest.fixture
def market(store: Store) -> Store:
    seal(store, [("account.create", {"name": "w", "role": "miner", "key_hash": key_hash("w")})])
    seal(store, [("miner.register", {"miner_id": f"g-{m}", "owner": "w", "capabilities": [m]}) for m in MODELS])
    return store


OPS = st.lists(
    st.tuples(
        st.sampled_from(["submit", "claim", "fail", "cancel", "read"]), st.sampled_from(MODELS[:3]), st.integers(0, 5)
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(OPS, min_size=1, max_size=25))
def test_queue_heads_always_agree_with_the_store(
    market: Store, blocks: list[list[tuple[str, str, int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submissions, claims, failures (a failed job goes back to its place in the queue, ahead of
    newer ones) and cancellations, several per block, with queues held only two deep: after
    every block, each model's head is the store's first pending entry of that model."""
    monkeypatch.setattr(QueueHeads, "DEPTH", 2)
    market._queues.clear()
    for block in blocks:
        txs: list[tuple[str, dict[str, Any]]] = []
        for op, model, pick in block:
            pending = [v.decode() for _, v in market.iter_state(PENDING_QUEUES + model.encode() + b"\x00")]
            running = [v.decode() for _, v in market.iter_state(key("ix", "js", "running", ""))]
            if op == "submit":
                txs.append(
                    (
                        "job.submit",
                        {
                            "job_id": f"j{market.tip().height}-{len(txs)}",
                            "client": "c",
                            "prompt": "p",
                            "model": model,
                            "params": {},
                        },
                    )
                )
            elif op == "claim" and pending:
                txs.append(
                    ("job.claim", {"job_id": pending[pick % len(pending)], "miner_id": f"g-{model}", "owner": "w"})
                )
            elif op == "fail" and running:
                job = market.get_record(job_key(running[pick % len(running)]))
                txs.append(
                    ("job.fail", {"job_id": job["job_id"], "miner_id": job["miner_id"], "owner": "w", "error": "x"})
                )
            elif op == "cancel" and pending:
                txs.append(("job.cancel", {"job_id": pending[pick % len(pending)], "sender": "c"}))
            elif op == "read":
                market.queue_head(model)  # hold this queue from now on
        if txs:
            seal(market, txs)
        for model in MODELS:
            assert market.queue_head(model) == truth(market, model)


def test_a_queue_read_that_races_a_commit_is_not_kept(store: Store) -> None:
    """LevelDB answers with the queue before a block, the block (claiming its head) is committed
    before the reader keeps what it read: the reader's answer is the old head, but the store
    must not keep it."""
    seal(store, [("account.create", {"name": "w", "role": "miner", "key_hash": key_hash("w")})])
    seal(store, [("miner.register", {"miner_id": "g", "owner": "w", "capabilities": ["m1"]})])
    first, second = submit(store, ["m1", "m1"])
    real = store._db

    class CommitDuringRead:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def iterator(self, **kwargs: Any) -> Any:
            it = real.iterator(**kwargs)  # a LevelDB iterator reads the store as it is now
            store._db = real
            assert (
                seal(store, [("job.claim", {"job_id": first, "miner_id": "g", "owner": "w"})])[0]["status"] == "running"
            )
            return it

    store._db = CommitDuringRead()
    try:
        assert oldest(store, ["m1"]) == first
    finally:
        store._db = real
    assert oldest(store, ["m1"]) == second


def test_a_change_applied_twice_changes_nothing_and_queues_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue read after a batch was written but before its commit told the heads holds the
    batch's changes already; applying them again must leave it as it is."""
    heads = QueueHeads(b"q\x00")
    heads.keep(b"q\x00a\x00", [(b"2", b"x"), (b"3", b"y")], True, heads.epoch)
    heads.committed([(b"q\x00a\x001", None), (b"q\x00a\x002", b"x"), (b"q\x00a\x003", b"y")])
    assert heads.queues[b"q\x00a\x00"] == ([(b"2", b"x"), (b"3", b"y")], True)
    heads.committed([(b"q\x00a\x002", None), (b"q\x00a\x003", None), (b"q\x00b\x001", b"z")])
    assert heads.held(b"q\x00a\x00")[:2] == ([], True)  # known to be empty
    assert heads.held(b"q\x00b\x00")[:2] == (None, False)  # never read: not held
    heads.keep(b"q\x00c\x00", [], True, heads.epoch)
    heads.committed([(b"q\x00c\x00%d" % i, b"v") for i in range(QueueHeads.DEPTH + 1)])
    assert heads.queues[b"q\x00c\x00"][1] is False  # past DEPTH: no longer the whole queue
    assert len(heads.queues[b"q\x00c\x00"][0]) == QueueHeads.DEPTH
    monkeypatch.setattr(QueueHeads, "MAX_QUEUES", 3)
    for i in range(10):
        heads.keep(b"q\x00%d\x00" % i, [], True, heads.epoch)
        assert len(heads.queues) <= 3
