"""Helpers for the authority-group tests: a real etcd cluster and group members on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from bench.etcd_cluster import ETCD, EtcdCluster, write_group_genesis
from chain.crypto import hash_hex
from chain.genesis import parse_genesis
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


Cut = Literal["refuse", "blackhole"]


class _Link:
    """One proxy port on 127.0.0.1 in front of one etcd member's client port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.cut: Cut | None = None
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        """Both ends of every connection passing through, and the held (blackholed) ones."""

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut == "refuse":
            writer.transport.abort()  # a reset: the client fails at once
            return
        self.open.add(writer)
        if self.cut == "blackhole":
            return  # accepted and never answered: the client waits for its own timeout
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:  # the etcd member is down
            self._drop(writer)
            return
        self.open.add(up_writer)
        if self.cut is not None:  # cut while connecting
            self._drop(writer, up_writer)
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        self._drop(writer, up_writer)

    def _drop(self, *writers: asyncio.StreamWriter) -> None:
        for w in writers:
            w.transport.abort()
            self.open.discard(w)

    def drop_all(self) -> None:
        self._drop(*self.open)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass
    finally:
        dst.transport.abort()


class EtcdProxies:
    """TCP proxies on 127.0.0.1 between the group members and etcd, which the test controls: one
    listening port per etcd member per group member, so that member i's --etcd URLs
    (urls(i)) all go through ports of its own.

    cut(i) drops member i's open connections to etcd, then resets its new ones ("refuse") or
    accepts them and never answers ("blackhole", as a hung network path does) until
    restore(i). The proxies run on an asyncio loop in one daemon thread; close() (or leaving the
    `with` block) stops it."""

    def __init__(self, etcd: EtcdCluster, members: int) -> None:
        self._links = [[_Link(port) for port in etcd.client_ports] for _ in range(members)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="etcd-proxies", daemon=True)

    def __enter__(self) -> EtcdProxies:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the etcd proxies did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def urls(self, member: int) -> list[str]:
        return [f"http://127.0.0.1:{link.port}" for link in self._links[member]]

    def cut(self, member: int, how: Cut = "blackhole") -> None:
        self._call(member, how)

    def restore(self, member: int) -> None:
        self._call(member, None)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the etcd proxies did not stop")

    def _call(self, member: int, cut: Cut | None) -> None:
        """Set member's links to cut (None: pass traffic) and drop their connections, on the loop."""

        async def apply() -> None:
            for link in self._links[member]:
                link.cut = cut
                link.drop_all()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(timeout=10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        links = [link for member in self._links for link in member]
        for link in links:
            await link.listen()
        self._ready.set()
        await self._stop.wait()
        for link in links:
            assert link.server is not None
            link.server.close()
            link.drop_all()
        for link in links:
            assert link.server is not None
            await link.server.wait_closed()


def group_genesis(base: Path, n: int = 3, **params: Any) -> tuple[Path, list[Path]]:
    """A genesis naming n authorities (and the test accounts, a peer among them), and their key files."""
    raw: dict[str, Any] = json.loads(REPO_GENESIS.read_text(encoding="utf-8"))
    raw["params"] = {**raw["params"], **params}
    raw["accounts"] = [
        {"name": a["name"], "role": a["role"], "key_hash": hash_hex(a["key"].encode())} for a in [*ALL_KEYS, PEER]
    ]
    return write_group_genesis(base, raw, n)


def member(
    base: Path,
    i: int,
    genesis: Path,
    key_file: Path,
    etcd: EtcdCluster | Sequence[str],
    *args: str,
    peer_key: bool = True,
) -> NodeProcess:
    """Group member i, reaching etcd at the cluster's URLs (or the URLs given, e.g. proxies');
    peer_key=False starts it without --peer-key (it cannot catch up over HTTP)."""
    etcd_urls = etcd.urls if isinstance(etcd, EtcdCluster) else etcd
    return NodeProcess(
        base / f"member-{i}",
        extra_args=(
            "--genesis", str(genesis),
            "--node-key", str(key_file),
            "--etcd", ",".join(etcd_urls),
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
