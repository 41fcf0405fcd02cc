"""The live feed at /explorer/ws, with the `websockets` client against a real node process."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import ALL_KEYS, CLIENT_A, NodeProcess

DEADLINE_S = 60
QUEUE_BOUND = 2


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    base = tmp_path_factory.mktemp("ws")
    # No request rate limit: a test floods blocks (one submission each) until a slow reader is dropped.
    proc = NodeProcess(
        base / "data",
        api_keys=ALL_KEYS,
        env={"AITBC_EXPLORER_WS_QUEUE": str(QUEUE_BOUND)},
        extra_args=("--rate-limit", "0"),
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def ws_url(node: NodeProcess) -> str:
    return f"ws://127.0.0.1:{node.port}/explorer/ws"


def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return answer


def submit(node: NodeProcess, count: int = 1) -> None:
    with node.client(CLIENT_A["key"]) as http:
        for i in range(count):
            assert http.post("/v1/jobs", json={"prompt": f"live {i}"}).status_code == 201


def test_connect_sends_a_snapshot_of_latest_blocks_and_stats(node: NodeProcess) -> None:
    submit(node)
    with connect(ws_url(node)) as ws:
        snapshot = receive(ws)
    assert snapshot["type"] == "snapshot"
    assert snapshot["blocks"] and snapshot["seq"] == snapshot["blocks"][0]["height"]
    assert snapshot["stats"]["block_height"] == snapshot["seq"]
    assert {"total_jobs", "active_miners", "total_receipts", "jobs_by_status", "last_hour"} <= set(snapshot["stats"])


def test_a_submitted_job_arrives_as_a_block_message_with_increasing_seq(node: NodeProcess) -> None:
    with connect(ws_url(node)) as ws:
        snapshot = receive(ws)
        submit(node, 3)
        messages = [receive(ws) for _ in range(3)]
    seqs = [m["seq"] for m in messages]
    assert all(m["type"] == "block" for m in messages)
    assert seqs == [snapshot["seq"] + 1, snapshot["seq"] + 2, snapshot["seq"] + 3]
    for m in messages:
        assert m["block"]["height"] == m["seq"] and m["block"]["transactions"] == 1
        assert m["stats"]["block_height"] >= m["seq"]
    assert messages[-1]["stats"]["total_jobs"] >= snapshot["stats"]["total_jobs"] + 3


def test_a_client_may_ask_for_a_fresh_snapshot(node: NodeProcess) -> None:
    with connect(ws_url(node)) as ws:
        first = receive(ws)
        ws.send(json.dumps({"type": "snapshot"}))
        ws.send("not json")  # ignored, not fatal
        again = receive(ws)
    assert again["type"] == "snapshot" and again["seq"] >= first["seq"]


def _never_reading_client(node: NodeProcess) -> Any:
    """A client that never reads, with the smallest socket buffer and queue and no compression
    (compressed, the node's send buffer would hold thousands of blocks before filling up)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", node.port))
    return connect(ws_url(node), sock=sock, max_queue=1, compression=None)


def test_a_slow_consumer_is_dropped_while_blocks_and_other_clients_go_on(node: NodeProcess) -> None:
    drops_before = sum("dropped a slow client" in line for line in node.output)
    with _never_reading_client(node) as slow, connect(ws_url(node), max_queue=None) as good:
        start_seq = receive(good)["seq"]
        produced = 0
        deadline = time.monotonic() + DEADLINE_S
        with node.client(CLIENT_A["key"]) as http:
            while sum("dropped a slow client" in line for line in node.output) == drops_before:
                assert time.monotonic() < deadline, f"slow client not dropped after {produced} blocks"
                assert http.post("/v1/jobs", json={"prompt": f"flood {produced}"}).status_code == 201
                produced += 1
            # Block production goes on after the drop.
            for i in range(3):
                assert http.post("/v1/jobs", json={"prompt": f"after {i}"}).status_code == 201
        produced += 3
        # The good client saw every block, in order, with no gap.
        seqs = [receive(good)["seq"] for _ in range(produced)]
        assert seqs == list(range(start_seq + 1, start_seq + produced + 1))

        received = 0
        with pytest.raises(ConnectionClosed):
            while True:  # what the server had already sent, then the connection ends
                slow.recv(timeout=10)
                received += 1
        assert received < produced + 1
        assert slow.close_code in (1013, 1006, None)


def _close_code(ws: ClientConnection) -> int | None:
    """Read until the node closes the connection; its close code."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=DEADLINE_S)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    return None


def test_a_message_over_the_size_cap_closes_the_connection_with_1009(node: NodeProcess) -> None:
    with connect(ws_url(node)) as ws:
        ws.recv(timeout=DEADLINE_S)  # the snapshot
        ws.send("x" * 5000)  # over the default 4096 bytes
        assert _close_code(ws) == 1009
    with connect(ws_url(node)) as ws:  # others are served as before
        assert json.loads(ws.recv(timeout=DEADLINE_S))["type"] == "snapshot"


def test_a_client_sending_faster_than_its_budget_is_closed_with_1008(node: NodeProcess) -> None:
    with connect(ws_url(node)) as ws:
        ws.recv(timeout=DEADLINE_S)
        for _ in range(40):  # a burst of 10 is allowed, then 5 a second
            try:
                ws.send(json.dumps({"type": "snapshot"}))
            except ConnectionClosed:
                break
        assert _close_code(ws) == 1008
