"""aitbc-node reindex rebuilds state, indexes and counters from the blocks, and survives interruption."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from chain.crypto import NodeKey
from chain.genesis import Genesis
from chain.transactions import Transaction
from node.clock import now_ms
from node.datadir import api_key_hash
from node.producer import seal_now
from node.reindex import reindex_store
from node.store import Store
from node.verify import verify_store


def _fill(store: Store, key: NodeKey, blocks: int) -> None:
    t = now_ms()
    create = Transaction(
        "account.create", {"name": "alice", "role": "client", "key_hash": api_key_hash("alice-key-000000000")}, t
    )
    seal_now(store, key, [create])
    for b in range(blocks):
        txs = [
            Transaction(
                "job.submit",
                {
                    "job_id": f"job-{b}-{i}",
                    "client": "alice",
                    "prompt": f"p {b} {i}",
                    "model": "llama3.2",
                    "params": {},
                },
                t,
            )
            for i in range(3)
        ]
        outcomes, block = seal_now(store, key, txs)
        assert block is not None and not any(isinstance(o, Exception) for o in outcomes)


def _snapshot(store: Store) -> tuple[dict[bytes, bytes], int, bytes | None]:
    last = store.block(store.tip().height)
    assert last is not None
    return dict(store.iter_all_state()), store.tx_count(), store.tx_location(last.transactions[0].hash.hex()) and b"ok"


def test_reindex_rebuilds_identical_state_indexes_and_counters(store: Store, node_key: NodeKey) -> None:
    _fill(store, node_key, 20)
    before = _snapshot(store)
    report = reindex_store(store)
    assert report.height == store.tip().height and report.resumed_from is None
    assert _snapshot(store) == before
    assert store.reindex_pending is None
    verify_store(store)


def test_reindex_repairs_a_damaged_state_entry(store: Store, node_key: NodeKey) -> None:
    _fill(store, node_key, 5)
    before = dict(store.iter_all_state())
    some_key = next(iter(before))
    store._db.put(b"s" + some_key, b"garbage")  # noqa: SLF001 - simulate damage below the API
    store._db.put(b"s" + b"stray\x00entry", b"1")  # noqa: SLF001
    reindex_store(store)
    assert dict(store.iter_all_state()) == before


def test_interrupted_reindex_blocks_start_and_a_second_run_completes(
    store_path: Path, genesis: Genesis, node_key: NodeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(store_path, genesis)
    _fill(store, node_key, 12)
    before = _snapshot(store)
    real = Store.write_derived
    calls = {"n": 0}

    def crash_after_some_blocks(self: Store, block, changes) -> None:  # type: ignore[no-untyped-def]  # Store.write_derived's own arguments
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("simulated interruption")
        real(self, block, changes)

    monkeypatch.setattr(Store, "write_derived", crash_after_some_blocks)
    with pytest.raises(KeyboardInterrupt):
        reindex_store(store)
    monkeypatch.setattr(Store, "write_derived", real)
    assert store.reindex_pending == b"6"
    store.close()

    store = Store(store_path, genesis)
    try:
        report = reindex_store(store)
        assert report.resumed_from == 6
        assert _snapshot(store) == before
        verify_store(store)
    finally:
        store.close()


def test_node_refuses_to_start_while_a_reindex_is_unfinished_until_reindex_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.datadir import DataDir
    from tests.support import ALL_KEYS, CLIENT_A, NodeProcess, run_cli

    node = NodeProcess(tmp_path / "data", api_keys=ALL_KEYS)
    with node:
        with node.client(CLIENT_A["key"]) as c:
            for i in range(20):
                assert c.post("/v1/jobs", json={"prompt": f"job {i}"}).status_code == 201
    datadir = DataDir(node.data_dir)
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    monkeypatch.setattr(Store, "write_derived", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        reindex_store(store)
    monkeypatch.undo()
    store.close()

    refused = subprocess.run(node.args(), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "interrupted reindex" in refused.stderr and "Traceback" not in refused.stderr
    again = run_cli("reindex", "--data-dir", str(node.data_dir))
    assert again.returncode == 0, again.stderr
    assert run_cli("verify", "--data-dir", str(node.data_dir)).returncode == 0
    node.start()
    try:
        with node.client(CLIENT_A["key"]) as c:
            assert len(c.get("/v1/jobs", params={"limit": 100}).json()) == 20
    finally:
        node.stop()
