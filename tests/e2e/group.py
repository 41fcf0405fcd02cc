"""Helpers for the authority-group tests: a real etcd cluster and group members on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chain.crypto import NodeKey, hash_hex
from chain.genesis import parse_genesis
from tests.e2e.replication import PEER, wait_until
from tests.support import ALL_KEYS, REPO_GENESIS, NodeProcess, free_port

ETCD = shutil.which("etcd")
LEASE_TTL = 2


class EtcdCluster:
    """n etcd members on free loopback ports, each with its own data dir under base, with etcd's
    default request limit (1.5 MiB): the group keeps its blocks under it (--max-block-bytes)."""

    def __init__(self, base: Path, n: int = 3) -> None:
        assert ETCD is not None
        self.base = base
        self.names = [f"e{i}" for i in range(n)]
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, i: int | None = None) -> EtcdCluster:
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
        wait_until(self.healthy, "etcd to have a quorum", 30)
        return self

    def healthy(self) -> bool:
        for url in self.urls:
            try:
                if httpx.get(url + "/health", timeout=1).json().get("health") == "true":
                    return True
            except (httpx.HTTPError, ValueError):
                continue
        return False

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


def group_genesis(base: Path, n: int = 3, **params: Any) -> tuple[Path, list[Path]]:
    """A genesis naming n authorities (and the test accounts, a peer among them), and their key files."""
    raw: dict[str, Any] = json.loads(REPO_GENESIS.read_text(encoding="utf-8"))
    keys = [NodeKey(bytes([i + 1]) * 32) for i in range(n)]
    raw["authorities"] = [k.public_hex for k in keys]
    raw["params"] = {**raw["params"], **params}
    raw["accounts"] = [
        {"name": a["name"], "role": a["role"], "key_hash": hash_hex(a["key"].encode())} for a in [*ALL_KEYS, PEER]
    ]
    genesis = base / "group-genesis.json"
    genesis.write_text(json.dumps(raw))
    key_files = []
    for i, k in enumerate(keys):
        path = base / f"member-{i}.key"
        path.write_text(k.seed.hex())
        path.chmod(0o600)
        key_files.append(path)
    return genesis, key_files


def member(
    base: Path, i: int, genesis: Path, key_file: Path, etcd: EtcdCluster, *args: str, peer_key: bool = True
) -> NodeProcess:
    """Group member i; peer_key=False starts it without --peer-key (it cannot catch up over HTTP)."""
    return NodeProcess(
        base / f"member-{i}",
        extra_args=(
            "--genesis", str(genesis),
            "--node-key", str(key_file),
            "--etcd", ",".join(etcd.urls),
            "--lease-ttl", str(LEASE_TTL),
            *(("--peer-key", PEER["key"]) if peer_key else ()),
            "--rate-limit", "0",
            "--log-level", "info",
            *args,
        ),
        stderr_file=base / f"member-{i}.log",
    )  # fmt: skip


def stop_all(nodes: list[NodeProcess], etcd: EtcdCluster | None = None) -> None:
    """Stop every node (a paused one is resumed first; one that already ended is collected), then etcd."""
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)
            node.stop()
        else:
            node.kill9()
    if etcd is not None:
        etcd.stop()


@dataclass
class RunningGroup:
    base: Path
    etcd: EtcdCluster
    genesis: Path
    members: list[NodeProcess]


@contextmanager
def running_group(base: Path, *args: str, without_peer_key: int | None = None, **params: Any) -> Iterator[RunningGroup]:
    """A 3-member etcd cluster and three group members started with args (genesis params
    overridden by params; member `without_peer_key` started without --peer-key); all stopped after."""
    etcd = EtcdCluster(base).start()
    genesis, keys = group_genesis(base, **params)
    members = [member(base, i, genesis, keys[i], etcd, *args, peer_key=i != without_peer_key) for i in range(3)]
    try:
        for m in members:
            m.start()
        yield RunningGroup(base, etcd, genesis, members)
    finally:
        stop_all(members, etcd)


def role_of(node: NodeProcess) -> str | None:
    try:
        with httpx.Client(base_url=node.url, timeout=2) as http:
            role: str = http.get("/health").json()["role"]
            return role
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def sequencer(nodes: list[NodeProcess], deadline_s: float = 30) -> NodeProcess:
    """The member that reports role sequencer (waiting until one does)."""

    def find() -> NodeProcess | None:
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None and role_of(n) == "sequencer":
                return n
        return None

    found: NodeProcess = wait_until(find, "a sequencer to be elected", deadline_s)
    return found


def tip_hash(node: NodeProcess) -> tuple[int, str]:
    with node.client(PEER["key"]) as http:
        head = http.get("/v1/chain/head").json()
    return int(head["height"]), str(head["hash"])


def monotonic_s() -> float:
    return time.monotonic()


def etcd_block_heights(etcd: EtcdCluster, genesis: Path) -> list[int]:
    """The heights of the blocks the group keeps in etcd (its tail), read through etcd's JSON gateway."""
    digest = parse_genesis(json.loads(genesis.read_text(encoding="utf-8"))).hash
    prefix = b"/aitbc/" + digest[:32].encode("ascii") + b"/blocks/"
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    body = {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode(), "keys_only": True}
    for url in etcd.urls:
        try:
            answer = httpx.post(url + "/v3/kv/range", json=body, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            continue
        return [int(base64.b64decode(kv["key"]).rsplit(b"/", 1)[1]) for kv in answer.get("kvs", [])]
    raise AssertionError("no etcd member answered")
