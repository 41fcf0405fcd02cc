"""Helpers for the authority-group tests: a real etcd cluster and group members on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench.etcd_cluster import ETCD, EtcdCluster, write_group_genesis
from chain.crypto import hash_hex
from tests.e2e.replication import PEER, wait_until
from tests.support import ALL_KEYS, REPO_GENESIS, NodeProcess

__all__ = [
    "ETCD",
    "EtcdCluster",
    "LEASE_TTL",
    "group_genesis",
    "member",
    "monotonic_s",
    "role_of",
    "sequencer",
    "tip_hash",
]

LEASE_TTL = 2


def group_genesis(base: Path, n: int = 3, **params: Any) -> tuple[Path, list[Path]]:
    """A genesis naming n authorities (and the test accounts, a peer among them), and their key files."""
    raw: dict[str, Any] = json.loads(REPO_GENESIS.read_text(encoding="utf-8"))
    raw["params"] = {**raw["params"], **params}
    raw["accounts"] = [
        {"name": a["name"], "role": a["role"], "key_hash": hash_hex(a["key"].encode())} for a in [*ALL_KEYS, PEER]
    ]
    return write_group_genesis(base, raw, n)


def member(base: Path, i: int, genesis: Path, key_file: Path, etcd: EtcdCluster, *args: str) -> NodeProcess:
    return NodeProcess(
        base / f"member-{i}",
        extra_args=(
            "--genesis", str(genesis),
            "--node-key", str(key_file),
            "--etcd", ",".join(etcd.urls),
            "--lease-ttl", str(LEASE_TTL),
            "--peer-key", PEER["key"],
            "--rate-limit", "0",
            "--log-level", "info",
            *args,
        ),
        stderr_file=base / f"member-{i}.log",
    )  # fmt: skip


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
