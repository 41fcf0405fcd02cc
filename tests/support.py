"""Shared test support: run a real aitbc-node process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from chain.genesis import Genesis

READY_TIMEOUT_S = 60
REPO_GENESIS = Path(__file__).resolve().parent.parent / "genesis.json"
CLIENT_A = {"key": "client-a-key-0000000000000000", "role": "client", "name": "client-a"}
CLIENT_B = {"key": "client-b-key-0000000000000000", "role": "client", "name": "client-b"}
MINER_1 = {"key": "miner-1-key-00000000000000000", "role": "miner", "name": "miner-1"}
MINER_2 = {"key": "miner-2-key-00000000000000000", "role": "miner", "name": "miner-2"}
ADMIN = {"key": "admin-key-0000000000000000000", "role": "admin", "name": "ops"}
ALL_KEYS = [CLIENT_A, CLIENT_B, MINER_1, MINER_2, ADMIN]


def genesis_doc(authority_hex: str, **params: Any) -> dict[str, Any]:
    """The repo's genesis.json with this authority and some params overridden (as a dict)."""
    raw: dict[str, Any] = json.loads(REPO_GENESIS.read_text(encoding="utf-8"))
    raw["authorities"] = [authority_hex]
    raw["params"] = {**raw["params"], **params}
    return raw


def make_genesis(authority_hex: str, **params: Any) -> Genesis:
    """A parsed Genesis from genesis_doc(); e.g. make_genesis(key.public_hex, max_block_txs=10)."""
    from chain.genesis import parse_genesis

    return parse_genesis(genesis_doc(authority_hex, **params))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aitbc_node(*args: str) -> list[str]:
    """The command line that runs the CLI with this interpreter."""
    return [sys.executable, "-m", "node", *args]


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aitbc_node(*args), capture_output=True, text=True, timeout=timeout, env=env)


class NodeProcess:
    """`aitbc-node start` as a child process. Readiness is read from its own output."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        api_keys: list[dict[str, str]] | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        stderr_file: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.keys_file: Path | None = None
        if api_keys is not None:
            self.keys_file = self.data_dir.parent / f"{self.data_dir.name}-keys.json"
            self.keys_file.write_text(json.dumps(api_keys))
        self.extra_args = extra_args
        self.env = env
        self.stderr_file = stderr_file
        """When set, the node's stderr (its log) is appended there instead of mixed into output."""
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        args = ["start", "--data-dir", str(self.data_dir), "--port", str(self.port), "--log-level", "warning"]
        if self.keys_file is not None:
            args += ["--api-keys", str(self.keys_file)]
        return aitbc_node(*args, *self.extra_args)

    def start(self) -> NodeProcess:
        self._ready.clear()
        self.output = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        stderr = open(self.stderr_file, "a") if self.stderr_file is not None else None  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.args(), stdout=subprocess.PIPE, stderr=stderr or subprocess.STDOUT, text=True, env=env
            )
        finally:
            if stderr is not None:
                stderr.close()
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self.proc.poll() is not None:
            self.kill9()
            raise RuntimeError("node did not become ready:\n" + "".join(self.output))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            if line.strip().startswith("health:"):
                self._ready.set()
        self._ready.set()  # process ended: let start() notice

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        """Close our end of the output pipe once the reader is done (filterwarnings=error)."""
        if (
            self.proc is not None
            and self.proc.stdout is not None
            and (self._reader is None or not self._reader.is_alive())
        ):
            self.proc.stdout.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._close_pipe()
        return code

    def client(self, api_key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-Api-Key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        else:
            self.kill9()  # already ended: just collect the reader and close the pipe


def running_node(tmp_path: Path, **kwargs: Any) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data", **kwargs)
    node.start()
    try:
        yield node
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()
        else:
            node.kill9()


def stats_at_any_minute(stats: dict[str, Any]) -> dict[str, Any]:
    """/explorer/stats without what only the wall-clock minute decides: its last hour is bucketed by
    minute, so two reads either side of a minute boundary list the same activity under a shifted
    window. The minutes that saw activity, and everything else, must still be equal."""
    active = [m for m in stats["last_hour"] if m["blocks"] or m["transactions"] or m["jobs"] or m["receipts"]]
    return {**stats, "last_hour": active}
