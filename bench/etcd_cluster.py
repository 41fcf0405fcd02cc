"""A real etcd cluster on loopback, and the keys of an authority group, for the group bench
(`python -m bench load --workload group`) and the group tests (tests/e2e/group.py).

EtcdCluster runs n members of the `etcd` binary (Debian's etcd-server) on free 127.0.0.1 ports,
each with its own data dir; members can be killed and started again one by one.
write_group_genesis writes a genesis naming n authority keys, and one key file per member.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from chain.crypto import NodeKey

ETCD = shutil.which("etcd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdCluster:
    """n etcd members on free loopback ports, each with its own data dir under base, with etcd's
    default request limit (1.5 MiB): the group keeps its blocks under it (--max-block-bytes)."""

    def __init__(self, base: Path, n: int = 3) -> None:
        if ETCD is None:
            raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
        self.base = base
        self.names = [f"e{i}" for i in range(n)]
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, i: int | None = None, deadline_s: float = 30) -> EtcdCluster:
        """Start every member (or member i), then wait until the cluster has a quorum."""
        cluster = ",".join(
            f"{name}=http://127.0.0.1:{port}" for name, port in zip(self.names, self.peer_ports, strict=True)
        )
        for j in range(len(self.names)) if i is None else [i]:
            data = self.base / f"etcd-{self.names[j]}"
            log = open(self.base / f"etcd-{self.names[j]}.log", "ab")  # noqa: SIM115
            self.procs[j] = subprocess.Popen(
                [
                    ETCD or "etcd",
                    "--name", self.names[j],
                    "--data-dir", str(data),
                    "--listen-client-urls", self.urls[j],
                    "--advertise-client-urls", self.urls[j],
                    "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[j]}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[j]}",
                    "--initial-cluster", cluster,
                    "--initial-cluster-state", "new",
                    "--initial-cluster-token", "aitbc-test",
                    "--heartbeat-interval", "50",
                    "--election-timeout", "500",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
        deadline = time.monotonic() + deadline_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd had no quorum within {deadline_s} s (logs in {self.base})")
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        for url in self.urls:
            try:
                if httpx.get(url + "/health", timeout=1).json().get("health") == "true":
                    return True
            except (httpx.HTTPError, ValueError):
                continue
        return False

    def member_healthy(self, i: int) -> bool:
        """Whether member i is up and part of a cluster with a quorum."""
        try:
            return bool(httpx.get(self.urls[i] + "/health", timeout=1).json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def leader(self, deadline_s: float = 30) -> int:
        """The index of the member that leads the etcd cluster now (waiting until one does)."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            for i, url in enumerate(self.urls):
                try:
                    status = httpx.post(url + "/v3/maintenance/status", json={}, timeout=1).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if status.get("leader") and status["leader"] == status.get("header", {}).get("member_id"):
                    return i
            time.sleep(0.05)
        raise AssertionError(f"etcd had no leader within {deadline_s} s (logs in {self.base})")

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill(i)


def write_group_genesis(base: Path, doc: dict[str, Any], n: int = 3) -> tuple[Path, list[Path]]:
    """`doc` (a genesis) with n authority keys, written to base/group-genesis.json, and each
    member's key file (its seed in hex, mode 0600). The keys are fixed: these are test chains."""
    keys = [NodeKey(bytes([i + 1]) * 32) for i in range(n)]
    genesis = base / "group-genesis.json"
    genesis.write_text(json.dumps({**doc, "authorities": [k.public_hex for k in keys]}))
    key_files = []
    for i, k in enumerate(keys):
        path = base / f"member-{i}.key"
        path.write_text(k.seed.hex())
        path.chmod(0o600)
        key_files.append(path)
    return genesis, key_files
