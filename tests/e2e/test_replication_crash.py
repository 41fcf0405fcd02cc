"""A follower killed with SIGKILL in the middle of catch-up resumes from its own tip."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from chain.transactions import Transaction
from node.datadir import DataDir
from node.producer import seal_now
from node.store import Store
from tests.e2e.replication import authority, converged, follower, health, wait_until
from tests.support import CLIENT_A, run_cli

BLOCKS = 800
TXS_PER_BLOCK = 10


def fixed_clock(ms: int) -> Callable[[], int]:
    """A clock that always reads ms."""
    return lambda: ms


def grow_chain(data_dir: Path) -> int:
    """Seal BLOCKS blocks of job submissions straight into a stopped authority's store."""
    datadir = DataDir(data_dir)
    key = datadir.node_key()
    assert key is not None
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    try:
        for _ in range(BLOCKS):
            t = store.tip().timestamp + 1
            txs = [
                Transaction(
                    "job.submit",
                    {
                        "job_id": "job_" + secrets.token_hex(8),
                        "client": CLIENT_A["name"],
                        "prompt": "p",
                        "model": "llama3.2",
                        "params": {},
                    },
                    t,
                )
                for _ in range(TXS_PER_BLOCK)
            ]
            outcomes, block = seal_now(store, key, txs, clock=fixed_clock(t))
            assert block is not None, outcomes
        return store.tip().height
    finally:
        store.close()


def test_follower_killed_during_catch_up_resumes_converges_and_verifies(tmp_path: Path) -> None:
    auth = authority(tmp_path)
    auth.start()
    auth.stop()
    tip = grow_chain(auth.data_dir)
    with auth:
        node = follower(tmp_path, "follower", auth.url, auth.data_dir / "genesis.json")
        node.start()
        try:
            wait_until(lambda: 0 < health(node)["height"] < tip - 100, "the follower to be in the middle of catch-up")
        finally:
            node.kill9()
        stopped_at = Store(node.data_dir / "chain", DataDir(node.data_dir).genesis(), create=False)
        try:
            assert 0 < stopped_at.tip().height < tip
        finally:
            stopped_at.close()
        with node:
            assert health(node)["height"] > 0  # resumed from its own tip, not from genesis
            wait_until(lambda: converged([auth, node]), "the restarted follower to converge")
            assert health(node)["status"] == "ok"
            # Without a terminal, catch-up reports its progress as log lines, the last one at the tip.
            wait_until(
                lambda: any("catch-up" in line and f"{tip}/{tip} blocks" in line for line in node.output),
                "a catch-up progress line",
            )
    result = run_cli("verify", "--data-dir", str(node.data_dir))
    assert result.returncode == 0, result.stderr
    assert f"ok: {tip + 1} blocks" in result.stdout
