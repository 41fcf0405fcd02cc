"""A group's sequencer cut off from etcd by a black-holed network path (node.group against a real
single-member etcd, through a proxy the test cuts): it steps down once its lease has run out and
refuses the block it was committing (503), rather than after each etcd endpoint's timeout in
turn. Skipped where etcd is not installed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from chain.crypto import NodeKey, hash_hex
from chain.transactions import Transaction
from node.clock import now_ms
from node.config import Config
from node.etcd import EtcdClient
from node.events import BlockFeed
from node.group import EtcdLog, Group
from node.metrics import NodeMetrics
from node.producer import BlockLog, NodeUnavailable, apply_and_seal
from node.store import Store
from tests.e2e.group import ETCD, EtcdCluster, EtcdProxies

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

LEASE_TTL = 1
ENDPOINT_TIMEOUT_S = 6.0
"""What each etcd request may take without a deadline: well past the lease."""


@pytest.fixture
def proxies(etcd: EtcdCluster) -> Iterator[EtcdProxies]:
    with EtcdProxies(etcd, members=1) as p:
        yield p


class Member:
    """What node.group uses of node.runtime.Node: its store, configuration, metrics, feed and URL,
    and the switch between sequencer and standby (recorded here)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.config = Config()
        self.metrics = NodeMetrics()
        self.feed = BlockFeed()
        self.url = "http://127.0.0.1:9"
        self.log: BlockLog | None = None
        self.elected = asyncio.Event()
        self.stepped_down = asyncio.Event()

    async def become_sequencer(self, key: NodeKey, log: BlockLog) -> None:
        self.log = log
        self.elected.set()

    async def become_standby(self, key: NodeKey) -> None:
        self.stepped_down.set()


def test_a_sequencer_cut_off_etcd_steps_down_with_its_lease_and_refuses_its_block(
    store: Store, node_key: NodeKey, proxies: EtcdProxies
) -> None:
    async def go() -> None:
        member = Member(store)
        # The endpoint twice: the cut resets the open connection, and the retry meets the black hole.
        etcd = EtcdClient(proxies.urls(0) * 2, timeout=ENDPOINT_TIMEOUT_S)
        group = Group(member, node_key, etcd, LEASE_TTL)  # type: ignore[arg-type]  # Member has what Group uses of a Node
        group.start()
        try:
            await asyncio.wait_for(member.elected.wait(), timeout=30)
            assert isinstance(member.log, EtcdLog)
            account = {"name": "late", "role": "client", "key_hash": hash_hex(b"late")}
            _, block, state = apply_and_seal(
                store, store.tip(), store.genesis, node_key, [Transaction("account.create", account, now_ms())]
            )
            assert block is not None
            tip = store.tip()
            proxies.cut(0, "blackhole")
            commit = asyncio.ensure_future(member.log.commit(block, state.changes()))
            # Liveness bounds: the lease is 1 s; without a deadline each takes ENDPOINT_TIMEOUT_S.
            await asyncio.wait_for(member.stepped_down.wait(), timeout=ENDPOINT_TIMEOUT_S / 2)
            with pytest.raises(NodeUnavailable) as refused:
                await asyncio.wait_for(commit, timeout=ENDPOINT_TIMEOUT_S / 2)
            assert refused.value.error_code == "unavailable"
            assert store.tip() == tip  # nothing of the refused block was applied
            assert group.health()["sequencer"] is None
        finally:
            proxies.restore(0)
            await group.stop()

    asyncio.run(go())
