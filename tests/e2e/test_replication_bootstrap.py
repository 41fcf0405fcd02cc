"""A follower bootstraps from a backup of the authority taken while it runs, then syncs the rest."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.replication import authority, converged, follower, health, wait_until
from tests.support import ADMIN, CLIENT_A, run_cli


def test_a_follower_restored_from_a_live_backup_resumes_from_it_and_converges(tmp_path: Path) -> None:
    auth = authority(tmp_path)
    with auth:
        with auth.client(CLIENT_A["key"]) as client:
            for i in range(30):
                assert client.post("/v1/jobs", json={"prompt": f"before {i}"}).status_code == 201
        backup = tmp_path / "chain.backup"
        taken = run_cli(
            "backup",
            "--data-dir",
            str(auth.data_dir),
            "--to",
            str(backup),
            "--node",
            auth.url,
            "--admin-key",
            ADMIN["key"],
        )
        assert taken.returncode == 0, taken.stderr
        with auth.client(CLIENT_A["key"]) as client:
            for i in range(20):
                assert client.post("/v1/jobs", json={"prompt": f"after {i}"}).status_code == 201
        node = follower(tmp_path, "follower", auth.url, auth.data_dir / "genesis.json")
        restored = run_cli("restore", str(backup), "--data-dir", str(node.data_dir))
        assert restored.returncode == 0, restored.stderr
        with node:
            assert health(node)["height"] >= 30  # started from the backup, not from genesis
            wait_until(lambda: converged([auth, node]), "the restored follower to converge")
            with node.client(CLIENT_A["key"]) as client:
                assert len(client.get("/v1/jobs", params={"limit": 100}).json()) == 50
    assert run_cli("verify", "--data-dir", str(node.data_dir)).returncode == 0
