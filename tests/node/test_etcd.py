"""node.etcd against a real single-member etcd on 127.0.0.1 (skipped where etcd is not installed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.etcd import Compare, Delete, EtcdClient, EtcdUnavailable, Get, Put, prefix_end
from node.producer import NodeUnavailable
from tests.e2e.group import ETCD, EtcdCluster
from tests.support import free_port

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]  # each test passes a coroutine


def test_keys_ranges_and_deletes(etcd: EtcdCluster) -> None:
    async def go() -> None:
        client = EtcdClient(etcd.urls)
        try:
            for i in range(3):
                await client.put(b"t1/k%d" % i, b"v%d" % i)
            assert (await client.get(b"t1/k1")).value == b"v1"  # type: ignore[union-attr]  # it was just put
            found = await client.range(b"t1/", prefix_end(b"t1/"), limit=2)
            assert [kv.key for kv in found] == [b"t1/k0", b"t1/k1"]
            await client.delete(b"t1/", prefix_end(b"t1/"))
            assert await client.get(b"t1/k2") is None
        finally:
            await client.aclose()

    run(go())


def test_a_txn_takes_its_branch_by_its_compares(etcd: EtcdCluster) -> None:
    async def go() -> None:
        client = EtcdClient(etcd.urls)
        try:
            create = [Compare(b"t2/x", "CREATE", 0)]
            first = await client.txn(create, [Put(b"t2/x", b"1")], [Get(b"t2/x")])
            assert first.succeeded
            second = await client.txn(create, [Put(b"t2/x", b"2")], [Get(b"t2/x")])
            assert not second.succeeded and second.ranges[0][0].value == b"1"
            kv = await client.get(b"t2/x")
            assert kv is not None and kv.create_revision == first.revision
            guarded = await client.txn(
                [Compare(b"t2/x", "CREATE", kv.create_revision), Compare(b"t2/x", "VALUE", b"1")],
                [Put(b"t2/y", b"ok"), Delete(b"t2/x")],
            )
            assert guarded.succeeded and await client.get(b"t2/x") is None
        finally:
            await client.aclose()

    run(go())


def test_a_key_on_a_lease_goes_with_it(etcd: EtcdCluster) -> None:
    async def go() -> None:
        client = EtcdClient(etcd.urls)
        try:
            lease = await client.grant(5)
            await client.put(b"t3/leader", b"me", lease=lease)
            assert await client.keepalive(lease) > 0
            kv = await client.get(b"t3/leader")
            assert kv is not None and kv.lease == lease
            await client.revoke(lease)
            assert await client.get(b"t3/leader") is None
            assert await client.keepalive(lease) == 0  # an expired or revoked lease
        finally:
            await client.aclose()

    run(go())


def test_unreachable_etcd_is_a_node_unavailable(tmp_path: Path) -> None:
    async def go() -> None:
        client = EtcdClient([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"], timeout=0.5)
        try:
            with pytest.raises(EtcdUnavailable) as caught:
                await client.get(b"x")
            assert isinstance(caught.value, NodeUnavailable) and caught.value.error_code == "unavailable"
        finally:
            await client.aclose()

    run(go())


def test_a_dead_endpoint_is_skipped(etcd: EtcdCluster) -> None:
    async def go() -> None:
        client = EtcdClient([f"http://127.0.0.1:{free_port()}", *etcd.urls], timeout=1)
        try:
            await client.put(b"t4/a", b"b")
            assert (await client.get(b"t4/a")) is not None
        finally:
            await client.aclose()

    run(go())


@contextlib.contextmanager
def black_holes(n: int) -> Iterator[list[str]]:
    """n endpoints that take connections and never answer (listening sockets never accepted from:
    the kernel completes the handshake, nobody reads the request), as a hung network path."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=16)) for _ in range(n)]
        yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in socks]


def test_a_call_with_a_deadline_gives_up_by_it_when_every_endpoint_is_a_black_hole() -> None:
    async def go() -> None:
        with black_holes(3) as urls:
            client = EtcdClient(urls, timeout=5)
            try:
                # Without the deadline this call takes 3 x 5 s; the liveness bound is generous.
                with pytest.raises(EtcdUnavailable) as caught:
                    await asyncio.wait_for(client.keepalive(1, within=0.3), timeout=4)
                assert "no answer within" in caught.value.detail or "ReadTimeout" in caught.value.detail
                with pytest.raises(EtcdUnavailable):
                    await asyncio.wait_for(client.txn([], [Put(b"t5/x", b"1")], within=0.3), timeout=4)
            finally:
                await client.aclose()

    run(go())
