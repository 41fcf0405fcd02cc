"""Common mistakes at `aitbc-node start` end in one line that says what to do, and exit non-zero."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from tests.e2e.replication import PEER, authority, follower
from tests.support import NodeProcess, free_port, run_cli


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_data_dir_in_use_names_the_pid_holding_it_and_what_to_do(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data") as running:
        assert running.proc is not None
        second = run_cli("start", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()))
    assert second.returncode != 0
    line = last_line(second.stderr)
    assert f"PID {running.proc.pid}" in line and f"kill {running.proc.pid}" in line
    assert f"--node {running.url}" in line


def test_a_genesis_of_another_chain_shows_both_hashes_and_the_fix(tmp_path: Path) -> None:
    assert run_cli("init", "--data-dir", str(tmp_path / "data")).returncode == 0
    own = json.loads((tmp_path / "data" / "genesis.json").read_text())
    other = json.loads((Path(__file__).resolve().parents[2] / "genesis.json").read_text())
    other["chain_id"] = "another-chain"
    (tmp_path / "other.json").write_text(json.dumps(other))
    refused = run_cli("start", "--data-dir", str(tmp_path / "data"), "--genesis", str(tmp_path / "other.json"))
    assert refused.returncode != 0
    line = last_line(refused.stderr)
    assert own["chain_id"] in line and "another-chain" in line
    assert line.count("genesis hash") == 2 and "start it without --genesis" in line and "--data-dir" in line


def test_a_peer_key_without_follow_is_refused(tmp_path: Path) -> None:
    refused = run_cli("start", "--data-dir", str(tmp_path / "data"), "--peer-key", PEER["key"])
    assert refused.returncode != 0
    assert "--peer-key" in last_line(refused.stderr) and "--follow" in last_line(refused.stderr)
    assert not (tmp_path / "data").exists()


def test_a_follower_whose_peer_key_is_refused_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    with authority(tmp_path) as auth:
        genesis = auth.data_dir / "genesis.json"
        node = follower(tmp_path, "follower", auth.url, genesis, peer_key="not-a-key-of-that-node-000")
        done = subprocess.run(node.args(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    line = last_line(done.stderr)
    assert "refused --peer-key" in line and "401" in line


def test_a_bad_api_keys_file_leaves_a_fresh_data_dir_untouched(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(json.dumps([{"key": "short", "role": "client", "name": "a"}]))
    refused = run_cli("start", "--data-dir", str(tmp_path / "data"), "--api-keys", str(tmp_path / "keys.json"))
    assert refused.returncode != 0 and "keys.json" in last_line(refused.stderr)
    assert not (tmp_path / "data").exists()


def test_the_admin_key_is_shown_until_a_start_succeeds(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = run_cli("start", "--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert failed.returncode != 0 and "admin key" not in failed.stdout
    admin_key = (tmp_path / "data" / "admin_key").read_text().strip()
    with NodeProcess(tmp_path / "data") as first:
        assert any(admin_key in line for line in first.output)
    with NodeProcess(tmp_path / "data") as second:
        assert not any(admin_key in line for line in second.output)


def test_the_banner_points_at_the_api_docs_and_the_manual(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data") as node:
        docs = next(line for line in node.output if line.strip().startswith("docs:"))
    assert f"{node.url}/docs" in docs and "docs/index.md" in docs


def test_a_bad_value_in_the_config_file_names_the_file_and_its_key(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('port = "eighty"\n')
    refused = run_cli("start", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert refused.returncode != 0
    line = last_line(refused.stderr)
    assert str(config) in line and "key 'port'" in line and "AITBC_" not in line
