"""Abuse limits: per-key rate limit, slow senders, security headers and CORS."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN, CLIENT_A, CLIENT_B, NodeProcess


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(
        tmp_path_factory.mktemp("limits") / "data",
        api_keys=[CLIENT_A, CLIENT_B, ADMIN],
        extra_args=(
            "--rate-limit",
            "2",
            "--rate-burst",
            "5",
            "--unauth-rate-limit",
            "2",
            "--unauth-rate-burst",
            "5",
            "--request-timeout",
            "1",
            "--cors-origin",
            "https://app.example",
            "--max-body-bytes",
            "4096",
            "--max-page-size",
            "5",
            "--keep-alive-timeout",
            "1",
        ),
    )
    with node:
        yield node


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_are_unaffected(limited: NodeProcess) -> None:
    with limited.client(CLIENT_A["key"]) as a, limited.client(CLIENT_B["key"]) as b:
        statuses = [a.get("/v1/jobs").status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5
        assert 429 in statuses[5:]
        r = a.get("/v1/jobs")
        assert r.status_code == 429
        assert r.json()["error_code"] == "rate_limited" and "rate limit" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert b.get("/v1/jobs").status_code == 200


def test_requests_without_a_valid_key_are_limited_per_address_and_keyed_clients_are_not(
    limited: NodeProcess,
) -> None:
    def from_address(address: str, key: str | None = None) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(
            base_url=limited.url, transport=transport, timeout=30, headers={"X-Api-Key": key} if key else {}
        )

    with from_address("127.0.0.2", "not-a-key-of-this-node") as guesser, from_address("127.0.0.3") as keyless:
        guesses = [guesser.get("/v1/jobs").status_code for _ in range(12)]
        assert guesses[:5] == [401] * 5 and set(guesses[5:]) == {429}
        limited_answer = guesser.get("/v1/jobs")
        assert limited_answer.json()["error_code"] == "rate_limited" and "address" in limited_answer.json()["detail"]
        assert int(limited_answer.headers["Retry-After"]) >= 1
        assert keyless.get("/v1/jobs").status_code == 401  # another address has its own budget
    with from_address("127.0.0.2", ADMIN["key"]) as keyed:  # a valid key from the same address still works
        assert keyed.get("/v1/jobs").status_code == 200


def _closed_by_server(sock: socket.socket, trickle: bytes, limit_s: float) -> bool:
    """Send `trickle` one byte at a time (slowloris) until the server closes, or limit_s passes."""
    sock.settimeout(0.25)
    end = time.monotonic() + limit_s
    for byte in trickle:
        if time.monotonic() > end:
            return False
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


def test_a_request_trickled_byte_by_byte_is_cut_off(limited: NodeProcess) -> None:
    slow = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        assert _closed_by_server(sock, slow, limit_s=15)
    with limited.client() as http:  # the node still serves everyone else
        assert http.get("/health").status_code == 200


def test_a_later_request_on_a_kept_alive_connection_trickled_is_cut_off(limited: NodeProcess) -> None:
    """The deadline of each request counts, not only the connection's first one."""
    slow = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.settimeout(15)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert _closed_by_server(sock, slow, limit_s=15)


def test_a_connection_that_never_sends_a_request_is_closed(limited: NodeProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.settimeout(15)
        assert sock.recv(1024) == b""


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/health", "/explorer/stats"])
def test_responses_carry_security_headers_without_inline_script(limited: NodeProcess, path: str) -> None:
    with limited.client() as http:
        r = http.get(path)
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"


def test_cors_allows_only_the_configured_origin(limited: NodeProcess) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    with limited.client() as http:
        ok = http.options("/v1/jobs", headers={"Origin": "https://app.example", **preflight})
        assert ok.headers.get("Access-Control-Allow-Origin") == "https://app.example"
        other = http.options("/v1/jobs", headers={"Origin": "https://evil.example", **preflight})
        assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_headers_reach_answers_of_every_route(limited: NodeProcess) -> None:
    with limited.client() as http:
        for path in ("/health", "/explorer/stats", "/v1/jobs"):  # served directly, and by the Router
            r = http.get(path, headers={"Origin": "https://app.example"})
            assert r.headers.get("Access-Control-Allow-Origin") == "https://app.example", path
            assert "x-request-id" in r.headers
            assert (
                "Access-Control-Allow-Origin" not in http.get(path, headers={"Origin": "https://evil.example"}).headers
            )


def test_cors_is_closed_by_default(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", api_keys=[CLIENT_A]) as node, node.client(CLIENT_A["key"]) as http:
        r = http.get("/v1/jobs", headers={"Origin": "https://app.example"})
        assert r.status_code == 200
        assert "Access-Control-Allow-Origin" not in r.headers


def test_websocket_connections_beyond_the_per_address_cap_are_closed_with_1013(tmp_path: Path) -> None:
    import asyncio

    import websockets

    node = NodeProcess(tmp_path / "data", api_keys=[CLIENT_A], extra_args=("--ws-per-ip", "2", "--ws-max", "10"))

    async def scenario() -> None:
        url = f"ws://127.0.0.1:{node.port}/explorer/ws"
        async with websockets.connect(url) as first, websockets.connect(url) as second:
            await first.recv()
            await second.recv()  # both got their snapshot
            async with websockets.connect(url) as third:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                assert "live connections" in closed.value.rcvd.reason
        # Once the others have gone (the server notices shortly after), a new connection is served.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            async with websockets.connect(url) as again:
                try:
                    assert await asyncio.wait_for(again.recv(), 10)
                    break
                except websockets.ConnectionClosed:
                    assert asyncio.get_running_loop().time() < deadline, "the freed slots were never reused"

    with node:
        asyncio.run(scenario())


def test_body_and_page_size_limits_are_configurable(limited: NodeProcess) -> None:
    with limited.client(ADMIN["key"]) as admin:
        too_big = admin.post("/v1/jobs", content=b'{"prompt": "' + b"x" * 5000 + b'"}')
        assert too_big.status_code == 413 and too_big.json()["error_code"] == "payload_too_large"
        assert admin.get("/v1/jobs", params={"limit": 5}).status_code == 200
        over = admin.get("/v1/jobs", params={"limit": 6})
        assert over.status_code == 400 and "limit" in over.json()["detail"]
    with limited.client() as public:
        assert public.get("/explorer/blocks", params={"limit": 6}).status_code == 400


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(limited: NodeProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(15)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break  # the server closed the idle connection
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(
        tmp_path_factory.mktemp("guarded") / "data",
        api_keys=[CLIENT_A, ADMIN],
        extra_args=(
            "--header-timeout",
            "1",
            "--request-timeout",
            "6",
            "--max-header-bytes",
            "8192",
            "--max-pending-per-ip",
            "8",
        ),
    )
    with node:
        yield node


def _connect_from(address: str, node: NodeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10, source_address=(address, 0))
    return sock


def test_a_head_over_the_cap_gets_431_with_the_error_body(guarded: NodeProcess) -> None:
    with _connect_from("127.0.0.5", guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"error_code":"headers_too_large"' in answer and b"8192" in answer
    with guarded.client() as http:
        long_but_fine = http.get("/health", headers={"X-Fine": "b" * 4000})
        assert long_but_fine.status_code == 200


def test_headers_have_a_shorter_deadline_than_the_body(guarded: NodeProcess) -> None:
    body = b'{"prompt": "slow body"}'
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Api-Key: "
        + CLIENT_A["key"].encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with _connect_from("127.0.0.6", guarded) as slow_head:  # 2 s on the head: over the 1 s cap
        assert _closed_by_server(slow_head, head, limit_s=5)
    with _connect_from("127.0.0.6", guarded) as slow_body:  # the head at once, the body over 2 s
        slow_body.sendall(head)
        for byte in body:
            slow_body.sendall(bytes([byte]))
            time.sleep(2 / len(body))  # pacing the trickle itself, not waiting for the node
        answer = slow_body.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:100]


def test_one_address_cannot_hold_more_than_its_share_of_connections(guarded: NodeProcess) -> None:
    held = [_connect_from("127.0.0.7", guarded) for _ in range(20)]
    try:
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # a request begun, never finished
        closed = 0
        for sock in held:
            sock.settimeout(0.5)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 12  # all but the 8 the address may hold were closed at once
        with guarded.client() as http:  # everyone else is served
            assert http.get("/health").status_code == 200
        with _connect_from("127.0.0.8", guarded) as other:  # and another address has its own share
            other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()
