"""A group's sequencer with two blocks on their way to etcd at once (node.group.EtcdLog, depth 2),
against a real single-member etcd: a block that reaches etcd before the block below it is sent
again once that one is in, and a block whose predecessor etcd did not take fails with it.
Skipped where etcd is not installed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from chain.blocks import Block
from chain.crypto import NodeKey, hash_hex
from chain.transactions import Transaction
from node.clock import now_ms
from node.etcd import Compare, EtcdClient, EtcdUnavailable, Operation, Put, TxnResult
from node.group import EtcdLog, Group, block_from_etcd, block_key
from node.producer import NodeUnavailable, apply_and_seal
from node.store import Changes, Store
from tests.e2e.group import ETCD, EtcdCluster
from tests.node.test_group_lease import Member

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

LEASE_TTL = 5


class Steered(EtcdClient):
    """An etcd client whose block appends the test orders: the append of block `held` waits until
    the append of block `held + 1` has been answered once; with `refuse`, it then fails as if
    etcd were unreachable. Every block append's answer is recorded (height, succeeded)."""

    def __init__(self, urls: Sequence[str], prefix: bytes, held: int, refuse: bool = False) -> None:
        super().__init__(urls)
        self.prefix, self.held, self.refuse = prefix, held, refuse
        self.answers: list[tuple[int, bool]] = []
        self.next_answered = asyncio.Event()

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Operation],
        failure: Sequence[Operation] = (),
        *,
        within: float | None = None,
    ) -> TxnResult:
        first = success[0] if success else None
        height = None
        if isinstance(first, Put) and first.key.startswith(self.prefix + b"blocks/"):
            height = int(first.key.rsplit(b"/", 1)[1])
        if height == self.held:
            await asyncio.wait_for(self.next_answered.wait(), timeout=10)
            if self.refuse:
                raise EtcdUnavailable("refused by the test")
        result = await super().txn(compare, success, failure, within=within)
        if height is not None:
            self.answers.append((height, result.succeeded))
            if height == self.held + 1:
                self.next_answered.set()
        return result


def two_blocks(store: Store, key: NodeKey) -> list[tuple[Block, Changes]]:
    """Blocks h and h+1 (built on h) over the store's tip, not yet stored."""
    made: list[tuple[Block, Changes]] = []
    base: Any = store
    tip = store.tip()
    for name in ("first", "second"):
        account = {"name": name, "role": "client", "key_hash": hash_hex(name.encode())}
        _, block, state = apply_and_seal(
            base, tip, store.genesis, key, [Transaction("account.create", account, now_ms())]
        )
        assert block is not None
        made.append((block, state.changes()))
        base, tip = state, block.header
    return made


async def elected(store: Store, key: NodeKey, etcd: EtcdCluster, refuse: bool) -> tuple[Member, Group, Steered]:
    member = Member(store)
    prefix = b"/aitbc/" + store.genesis.hash[:32].encode("ascii") + b"/"
    client = Steered(etcd.urls, prefix, store.tip().height + 1, refuse)
    group = Group(member, key, client, LEASE_TTL)  # type: ignore[arg-type]  # Member has what Group uses of a Node
    group.start()
    await asyncio.wait_for(member.elected.wait(), timeout=30)
    return member, group, client


def test_a_block_that_overtakes_the_one_below_it_is_sent_again_once_that_one_is_in(
    store: Store, node_key: NodeKey, etcd: EtcdCluster
) -> None:
    async def go() -> None:
        member, group, client = await elected(store, node_key, etcd, refuse=False)
        try:
            assert isinstance(member.log, EtcdLog) and member.log.depth == 2
            (lower, lower_changes), (upper, upper_changes) = two_blocks(store, node_key)
            h = lower.height
            first = asyncio.ensure_future(member.log.commit(lower, lower_changes))
            second = asyncio.ensure_future(member.log.commit(upper, upper_changes))
            await asyncio.wait_for(asyncio.gather(first, second), timeout=20)
            # h+1 reached etcd first and was refused (the head was h-1), h went in, then h+1 again.
            assert client.answers == [(h + 1, False), (h, True), (h + 1, True)]
            assert "aitbc_etcd_appends_resent_total 1.0" in member.metrics.exposition().decode().splitlines()
            assert not member.log.lost and group.health()["sequencer"] is not None
            assert store.tip().height == h + 1 and store.block(h + 1) == upper
            head = await client.get(group.prefix + b"head")
            assert head is not None and head.value == b"%d" % (h + 1)
            stored = await client.get(block_key(group.prefix, h + 1))
            assert stored is not None and block_from_etcd(stored.value) == upper
        finally:
            await group.stop()

    asyncio.run(go())


def test_a_block_whose_predecessor_etcd_did_not_take_fails_with_it(
    store: Store, node_key: NodeKey, etcd: EtcdCluster
) -> None:
    async def go() -> None:
        member, group, client = await elected(store, node_key, etcd, refuse=True)
        try:
            assert isinstance(member.log, EtcdLog)
            tip = store.tip()
            (lower, lower_changes), (upper, upper_changes) = two_blocks(store, node_key)
            first = asyncio.ensure_future(member.log.commit(lower, lower_changes))
            second = asyncio.ensure_future(member.log.commit(upper, upper_changes))
            for refused in (first, second):
                with pytest.raises(NodeUnavailable) as caught:
                    await asyncio.wait_for(refused, timeout=20)
                assert caught.value.error_code == "unavailable"
            assert member.log.lost
            assert store.tip() == tip  # nothing of either block was stored
            assert await client.get(block_key(group.prefix, upper.height)) is None
            assert client.answers == [(upper.height, False)]  # h+1 was not sent again
        finally:
            await group.stop()

    asyncio.run(go())
