"""Attacks by clients without a key, and how the node answers everyone else meanwhile.

Each attack runs for a bounded time from its own loopback addresses (127.0.0.2 and up), against
a fresh node, while a probe on 127.0.0.1 asks /health and makes an authenticated write every
PROBE_EVERY_S. Printed per attack: the probe's latencies (p50 and max of /health and of the
write), requests that failed, and the node's peak resident memory.

  python -m bench abuse                         # every attack, 10 s each
  python -m bench abuse --attack slow-headers --seconds 5

tests/e2e/test_abuse.py runs the same attacks and asserts liveness and the memory bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

PROBE_EVERY_S = 0.2
LIVENESS_S = 5.0
"""How long a probe request may take during an attack before it counts as not answered."""
RSS_BOUND_MB = 512
"""The node's resident memory stays under this during every attack (README, Limits)."""
WRITER_KEY = {"key": "abuse-writer-key-0f3a9c2e7b41d8", "role": "client", "name": "writer"}


@dataclass
class Probe:
    health_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def line(self, name: str) -> str:
        def fig(values: list[float]) -> str:
            if not values:
                return "none answered"
            return f"p50 {1000 * statistics.median(values):7.1f} ms, max {1000 * max(values):7.1f} ms"

        return (
            f"{name:22} /health {fig(self.health_s)} ({len(self.health_s)}); "
            f"write {fig(self.write_s)} ({len(self.write_s)}); failures {len(self.failures)}; "
            f"peak RSS {self.peak_rss_mb:.0f} MB"
        )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def probe(base: str, pid: int, seconds: float) -> Probe:
    """/health and an authenticated job submission every PROBE_EVERY_S, from 127.0.0.1."""
    result = Probe()
    deadline = time.monotonic() + seconds
    writer = {"X-Api-Key": WRITER_KEY["key"]}
    async with httpx.AsyncClient(base_url=base, timeout=LIVENESS_S) as http:
        while time.monotonic() < deadline:
            calls: tuple[tuple[str, Callable[[], Awaitable[httpx.Response]]], ...] = (
                ("health", lambda: http.get("/health")),
                ("write", lambda: http.post("/v1/jobs", json={"prompt": "p"}, headers=writer)),
            )
            for kind, call in calls:
                started = time.monotonic()
                try:
                    answer = await call()
                except httpx.HTTPError as exc:
                    result.failures.append(f"{kind}: {type(exc).__name__}")
                    continue
                took = time.monotonic() - started
                if answer.status_code not in (200, 201):
                    result.failures.append(f"{kind}: {answer.status_code} {answer.text[:80]}")
                else:
                    (result.health_s if kind == "health" else result.write_s).append(took)
            result.peak_rss_mb = max(result.peak_rss_mb, rss_mb(pid))
            await asyncio.sleep(PROBE_EVERY_S)
    return result


# -- the attacks: each returns when its time is up -------------------------------------------
async def _open(host: str, port: int, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, local_addr=(address, 0))


async def ws_large_messages(host: str, port: int, seconds: float) -> str:
    """64 explorer websockets from two addresses, each sending one 15 MB message."""

    async def one(address: str) -> str:
        try:
            async with connect(
                f"ws://{host}:{port}/explorer/ws", local_addr=(address, 0), max_size=None, open_timeout=LIVENESS_S
            ) as ws:
                await ws.recv()
                await asyncio.wait_for(ws.send("x" * 15_000_000), seconds)
                async with asyncio.timeout(seconds):
                    while True:
                        await ws.recv()  # block messages, until the node closes
        except ConnectionClosed as closed:
            return f"closed {closed.rcvd.code}" if closed.rcvd is not None else "closed without a code"
        except (WebSocketException, OSError, TimeoutError) as exc:
            return type(exc).__name__

    outcomes = await asyncio.gather(*(one(f"127.0.0.{2 + i % 2}") for i in range(64)))
    return f"64 connections: {dict(sorted((o, outcomes.count(o)) for o in set(outcomes)))}"


async def huge_header(host: str, port: int, seconds: float) -> str:
    """One header line streamed as fast as the node reads it, up to 64 MB."""
    reader, writer = await _open(host, port, "127.0.0.2")
    sent, chunk = 0, b"a" * 65536
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        deadline = time.monotonic() + seconds
        while sent < 64 * 1024 * 1024 and time.monotonic() < deadline and not reader.at_eof():
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), seconds)
            sent += len(chunk)
    except (OSError, TimeoutError):
        pass
    try:
        answer = await asyncio.wait_for(reader.read(200), LIVENESS_S)
    except (OSError, TimeoutError):
        answer = b""
    writer.close()
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed without an answer"
    return f"sent {sent / 1e6:.1f} MB of one header; node answered: {status}"


async def slow_headers(host: str, port: int, seconds: float) -> str:
    """2,500 connections from one address, each trickling its headers a byte a second."""
    conns: list[asyncio.StreamWriter] = []
    refused = 0
    for _ in range(2500):
        try:
            _, writer = await asyncio.wait_for(_open(host, port, "127.0.0.2"), LIVENESS_S)
            writer.write(b"GET /health HTTP/1.1\r\nX-Slow: ")
            conns.append(writer)
        except (OSError, TimeoutError):
            refused += 1
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for writer in conns:
            if not writer.is_closing():
                writer.write(b"a")
        await asyncio.sleep(1)
    open_still = sum(1 for w in conns if not w.is_closing() and not w.transport.is_closing())
    for writer in conns:
        writer.close()
    return f"2500 slow connections: {refused} refused at connect, {open_still} still open at the end"


async def snapshot_flood(host: str, port: int, seconds: float) -> str:
    """32 explorer websockets asking for a fresh snapshot as fast as they can."""

    async def one() -> int:
        asked = 0
        try:
            async with connect(f"ws://{host}:{port}/explorer/ws", local_addr=("127.0.0.2", 0)) as ws:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    await ws.send('{"type": "snapshot"}')
                    asked += 1
                    await asyncio.sleep(0)
        except (WebSocketException, OSError):
            pass
        return asked

    asked = await asyncio.gather(*(one() for _ in range(32)))
    return f"32 connections sent {sum(asked)} snapshot requests before being closed or the time ran out"


async def wrong_keys(host: str, port: int, seconds: float) -> str:
    """Requests with random keys from one address, 8 at a time."""
    codes: dict[int, int] = {}
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", transport=transport, timeout=LIVENESS_S) as http:
        deadline = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < deadline:
                try:
                    r = await http.get("/v1/jobs", headers={"X-Api-Key": secrets.token_hex(16)})
                except httpx.HTTPError:
                    continue
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        await asyncio.gather(*(one() for _ in range(8)))
    return f"answers to random keys: {dict(sorted(codes.items()))}"


ATTACKS: dict[str, Callable[[str, int, float], Coroutine[Any, Any, str]]] = {
    "ws-large-messages": ws_large_messages,
    "huge-header": huge_header,
    "slow-headers": slow_headers,
    "snapshot-flood": snapshot_flood,
    "wrong-keys": wrong_keys,
}


def run_attack(attack: str, host: str, port: int, seconds: float) -> str:
    """One attack to its end, in the process that calls it."""
    return asyncio.run(ATTACKS[attack](host, port, seconds))


async def under_attack(base: str, pid: int, attack: str, seconds: float) -> tuple[str, Probe]:
    """Run the attack (in a process of its own, so that its work does not slow the probe's
    event loop) and the probe side by side; the attack's summary and the probe."""
    host, port = base.removeprefix("http://").split(":")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        attacking = asyncio.wrap_future(pool.submit(run_attack, attack, host, int(port), seconds))
        probed = await probe(base, pid, seconds)
        done = await asyncio.wait_for(attacking, seconds + 60)
    return done, probed


def keys_file(directory: Path) -> Path:
    path = directory / "abuse-keys.json"
    path.write_text(json.dumps([WRITER_KEY]))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench abuse", description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=[*ATTACKS, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    from tests.support import NodeProcess

    for name in ATTACKS if args.attack == "all" else [args.attack]:
        with tempfile.TemporaryDirectory(prefix="aitbc-abuse-") as work:
            node = NodeProcess(Path(work) / "data", extra_args=("--api-keys", str(keys_file(Path(work)))))
            with node:
                assert node.proc is not None
                summary, probed = asyncio.run(under_attack(node.url, node.proc.pid, name, args.seconds))
        print(probed.line(name), flush=True)
        print(f"{'':22} {summary}", flush=True)
    print(f"\n(liveness bound {LIVENESS_S:g} s a request; memory bound {RSS_BOUND_MB} MB; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
