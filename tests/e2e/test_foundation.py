"""The node as an operator meets it: real `aitbc-node` processes on 127.0.0.1."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plyvel
import pytest

from node import __version__
from tests.support import ALL_KEYS, CLIENT_A, NodeProcess, free_port, run_cli

EXTRA = {"key": "extra-key-000000000000000000", "role": "client", "name": "extra"}


def health(node: NodeProcess) -> dict[str, Any]:
    with node.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def output(node: NodeProcess) -> str:
    return "".join(node.output)


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", "--data-dir", str(data_dir))


def assert_one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- start, health, restart ------------------------------------------------------------


def test_health_reports_status_version_chain_height_and_role(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", api_keys=ALL_KEYS) as node:
        body = health(node)
    assert body == {
        "status": "ok",
        "version": __version__,
        "chain_id": "aitbc-devnet",
        "height": 1,  # block 0 from genesis, block 1 provisions the --api-keys accounts
        "role": "authority",
    }


def test_kill_9_then_restart_keeps_the_height_and_the_chain_verifies(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = NodeProcess(data_dir, api_keys=ALL_KEYS).start()
    try:
        height = health(node)["height"]
    finally:
        node.kill9()
    assert node.proc is not None and node.proc.returncode == -signal.SIGKILL

    with NodeProcess(data_dir, api_keys=ALL_KEYS) as again:
        assert health(again)["height"] == height
        assert "admin key" not in output(again)
    assert verify(data_dir).returncode == 0


def test_restart_with_a_new_api_key_seals_exactly_one_block(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with NodeProcess(data_dir, api_keys=ALL_KEYS) as node:
        first = health(node)["height"]
    with NodeProcess(data_dir, api_keys=[*ALL_KEYS, EXTRA]) as node:
        second = health(node)["height"]
    with NodeProcess(data_dir, api_keys=[*ALL_KEYS, EXTRA]) as node:
        third = health(node)["height"]
    assert (first, second, third) == (1, 2, 2)


def test_second_process_on_the_same_data_dir_exits_with_one_clear_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with NodeProcess(data_dir, api_keys=ALL_KEYS) as node:
        proc = run_cli("start", "--data-dir", str(data_dir), "--port", str(free_port()), timeout=60)
        line = assert_one_line_failure(proc)
        assert "data dir" in line and "already in use" in line
        assert str(data_dir) in line
        assert health(node)["status"] == "ok"  # the first node is unharmed


def test_port_already_in_use_gives_one_clear_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("start", "--data-dir", str(data_dir), "--port", str(port), timeout=60)
    line = assert_one_line_failure(proc)
    assert f"port {port}" in line and "already in use" in line
    # The failed start released the data dir.
    with NodeProcess(data_dir) as node:
        assert health(node)["status"] == "ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly_and_the_chain_verifies(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    node = NodeProcess(data_dir, api_keys=ALL_KEYS).start()
    try:
        height = health(node)["height"]
    finally:
        code = node.stop(sig)
    assert code == 0, output(node)
    assert "Traceback" not in output(node)
    assert "Aborted" not in output(node)
    checked = verify(data_dir)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: {height + 1} blocks")


def test_fresh_start_prints_admin_key_once_and_urls_and_restart_does_not(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with NodeProcess(data_dir) as node:
        first = output(node)
        base = node.url
    admin_key = (data_dir / "admin_key").read_text().strip()
    assert first.count(admin_key) == 1
    assert re.search(rf"admin key:\s+{re.escape(admin_key)}$", first, re.MULTILINE)
    for label, url in [("API", f"{base}/v1"), ("docs", f"{base}/docs (the API)"), ("explorer", f"{base}/")]:
        assert re.search(rf"^\s*{label}:\s+{re.escape(url)}", first, re.MULTILINE), first

    with NodeProcess(data_dir) as node:
        second = output(node)
    assert admin_key not in second
    assert "admin key" not in second
    assert f"{node.url}/docs" in second


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "aitbc-node"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


def test_health_needs_no_api_key_and_client_key_is_accepted(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", api_keys=ALL_KEYS) as node:
        with node.client(CLIENT_A["key"]) as client:
            response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- verify ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain_of_five_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped data dir with blocks 0..4: genesis, provisioning, three offline key creations."""
    data_dir = tmp_path_factory.mktemp("chain") / "data"
    with NodeProcess(data_dir, api_keys=ALL_KEYS):
        pass
    for name in ("carol", "dave", "erin"):
        created = run_cli("keys", "create", "--role", "client", "--name", name, "--data-dir", str(data_dir))
        assert created.returncode == 0, created.stderr
    return data_dir


@pytest.fixture
def chain_copy(chain_of_five_blocks: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(chain_of_five_blocks, target)
    return target


def test_verify_passes_on_a_healthy_data_dir(chain_copy: Path) -> None:
    proc = verify(chain_copy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: 5 blocks, 8 transactions")


def _next_char(c: str) -> str:
    if c.isdigit():
        return str((int(c) + 1) % 10)
    if c in "abcdef":
        return "abcdef"[("abcdef".index(c) + 1) % 6]
    if c.isalpha():
        return chr((ord(c.lower()) - ord("a") + 1) % 26 + ord("a"))
    raise AssertionError(f"no alteration for {c!r}")


def _change_char(after: str, offset: int = 0) -> Callable[[str], str]:
    """Change the character `offset` places after the first occurrence of `after`."""

    def alter(text: str) -> str:
        at = text.index(after) + len(after) + offset
        return text[:at] + _next_char(text[at]) + text[at + 1 :]

    return alter


def _last_digit_of_header_timestamp(text: str) -> str:
    match = re.search(r'"header":\{[^}]*"timestamp":(\d+)', text)
    assert match is not None
    at = match.end(1) - 1
    return text[:at] + _next_char(text[at]) + text[at + 1 :]


def _tx_timestamp_digit(text: str) -> str:
    match = re.compile(r'"timestamp":(\d+)').search(text, text.index('"transactions":['))
    assert match is not None
    at = match.end(1) - 1
    return text[:at] + _next_char(text[at]) + text[at + 1 :]


ALTERATIONS: dict[str, Callable[[str], str]] = {
    "header-timestamp-digit": _last_digit_of_header_timestamp,
    "header-prev-hash": _change_char('"prev_hash":"', 5),
    "header-state-root": _change_char('"state_root":"', 63),
    "header-tx-root": _change_char('"tx_root":"', 0),
    "signature": _change_char('"signature":"', 10),
    "tx-payload-name": _change_char('"name":"', 1),
    "tx-payload-key-hash": _change_char('"key_hash":"', 7),
    "tx-timestamp-digit": _tx_timestamp_digit,
}


def alter_stored_block(data_dir: Path, height: int, alter: Callable[[str], str]) -> None:
    db = plyvel.DB(str(data_dir / "chain"))
    try:
        block_key = b"b" + height.to_bytes(8, "big")
        raw = db.get(block_key)
        assert raw is not None
        changed = alter(raw.decode("utf-8")).encode("utf-8")
        assert len(changed) == len(raw)
        assert sum(a != b for a, b in zip(raw, changed, strict=True)) == 1  # exactly one byte differs
        db.put(block_key, changed, sync=True)
    finally:
        db.close()


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
@pytest.mark.parametrize("height", [1, 3])
def test_verify_names_the_block_with_one_altered_byte(chain_copy: Path, alteration: str, height: int) -> None:
    alter_stored_block(chain_copy, height, ALTERATIONS[alteration])

    proc = verify(chain_copy)

    line = assert_one_line_failure(proc)
    assert "verification failed" in line
    assert re.search(rf"\bblock {height}\b", line), line


@pytest.mark.parametrize("alteration", ["header-timestamp-digit", "signature", "tx-payload-name"])
def test_verify_names_the_altered_tip_block(chain_copy: Path, alteration: str) -> None:
    alter_stored_block(chain_copy, 4, ALTERATIONS[alteration])
    line = assert_one_line_failure(verify(chain_copy))
    assert re.search(r"\bblock 4\b", line), line


def test_verify_detects_a_deleted_block(chain_copy: Path) -> None:
    db = plyvel.DB(str(chain_copy / "chain"))
    try:
        db.delete(b"b" + (2).to_bytes(8, "big"), sync=True)
    finally:
        db.close()
    line = assert_one_line_failure(verify(chain_copy))
    assert re.search(r"\bblock 2\b", line), line


def test_restart_on_a_chain_built_offline_serves_its_height(chain_copy: Path) -> None:
    with NodeProcess(chain_copy, api_keys=ALL_KEYS) as node:
        assert health(node)["height"] == 4


def _threads(pid: int) -> list[tuple[str, int]]:
    """(name, nice value) of each thread of the process."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.append(((task / "comm").read_text().strip(), int(stat[16])))  # field 19: nice
    return out


def test_leveldb_compaction_runs_below_the_nodes_priority_after_every_start(tmp_path: Path) -> None:
    """A flush or compaction takes the CPU the event loop leaves instead of half of it: the
    authority's LevelDB background thread is named and runs at nice 10, every other thread at
    the node's own priority, on a fresh data dir and after a restart on a written one."""
    for _ in range(2):
        with NodeProcess(tmp_path / "data", api_keys=ALL_KEYS) as node:
            assert node.proc is not None
            threads = _threads(node.proc.pid)
        assert [t for t in threads if t[0] == "leveldb-compact"] == [("leveldb-compact", 10)], threads
        assert all(nice == 0 for name, nice in threads if name != "leveldb-compact"), threads
