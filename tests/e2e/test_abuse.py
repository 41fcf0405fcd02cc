"""Clients without a key cannot stall the node: during each attack of bench/abuse.py (run from
127.0.0.2 and up, bounded in time), /health and an authenticated write from 127.0.0.1 keep
answering within the liveness bound, and the node's memory stays under its bound."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.abuse import ATTACKS, LIVENESS_S, RSS_BOUND_MB, WRITER_KEY, keys_file, under_attack
from tests.support import NodeProcess

ATTACK_S = 6.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path / "data", extra_args=("--api-keys", str(keys_file(tmp_path)))) as running:
        yield running


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_others_are_served_and_memory_stays_bounded_during_the_attack(node: NodeProcess, attack: str) -> None:
    assert node.proc is not None
    summary, probed = asyncio.run(under_attack(node.url, node.proc.pid, attack, ATTACK_S))
    print(probed.line(attack), summary)
    assert probed.failures == [], probed.failures  # every probe answered 2xx within LIVENESS_S
    assert probed.health_s and probed.write_s
    assert max(probed.health_s) < LIVENESS_S and max(probed.write_s) < LIVENESS_S
    assert probed.peak_rss_mb < RSS_BOUND_MB
    with node.client() as http:  # and the node is still itself afterwards
        assert http.get("/health").status_code == 200


def test_a_request_path_cannot_forge_a_log_line(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    with NodeProcess(tmp_path / "data", stderr_file=log, extra_args=("--log-level", "info")) as node:
        with socket.create_connection(("127.0.0.1", node.port)) as sock:
            forged = b"/nothing%0a2026-12-02%2017:00:00,000%20ERROR%20aitbc.node:%20FORGED%20LINE%00"
            sock.sendall(b"GET " + forged + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 404")
        with node.client() as http:  # a request after it, so that its line has been written
            http.get("/health")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    assert [line for line in lines if "FORGED LINE" in line]
    assert not [line for line in lines if line.startswith("2026-12-02 17:00:00")]
    assert "\x00" not in log.read_text(encoding="utf-8", errors="replace")


def test_a_body_over_the_cap_gets_its_413_and_error_body_every_time(node: NodeProcess) -> None:
    body = b'{"prompt": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"X-Api-Key: "
        + WRITER_KEY["key"].encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", node.port), timeout=LIVENESS_S * 2) as sock:
            sock.sendall(head)
            try:
                sock.sendall(body)  # the node may answer and stop reading before all of it is sent
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"error_code":"payload_too_large"' in answer
    assert httpx.get(node.url + "/health", timeout=LIVENESS_S).status_code == 200
