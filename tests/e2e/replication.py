"""Helpers for the replication tests: an authority with a peer account, followers, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

from tests.support import ALL_KEYS, NodeProcess

PEER = {"key": "peer-key-replica-000000000000", "role": "peer", "name": "follower"}
DEADLINE_S = 60.0


def authority(base: Path) -> NodeProcess:
    return NodeProcess(base / "authority", api_keys=[*ALL_KEYS, PEER])


def follower(base: Path, name: str, upstream: str, genesis: Path, peer_key: str = PEER["key"]) -> NodeProcess:
    return NodeProcess(
        base / name,
        extra_args=("--follow", upstream, "--genesis", str(genesis), "--peer-key", peer_key, "--log-level", "info"),
    )


def send_json(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """Answer a fake upstream's request with 200 and a JSON body."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def wait_until(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll condition until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def health(node: NodeProcess) -> dict[str, Any]:
    with httpx.Client(base_url=node.url, timeout=10) as http:
        answer: dict[str, Any] = http.get("/health").json()
        return answer


def head_hash(node: NodeProcess) -> str | None:
    """The node's head block hash, or None while it cannot say: a follower that has just started
    refuses the peer key (401) until it has synced the block that created that account."""
    with node.client(PEER["key"]) as http:
        r = http.get("/v1/chain/head")
    if r.status_code == 401 and r.json()["error_code"] == "unauthorized":
        return None
    assert r.status_code == 200, r.text
    answer: str | None = r.json()["hash"]
    return answer


def converged(nodes: list[NodeProcess]) -> bool:
    hashes = {head_hash(n) for n in nodes}
    return None not in hashes and len(hashes) == 1
