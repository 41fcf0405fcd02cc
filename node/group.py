"""An authority group: one sequencer at a time, elected through etcd, with fencing.

Every member holds an authority key of the chain. Keys live under /aitbc/<genesis hash>/ in etcd:

- `leader`: {"key", "url"} of the sequencer, bound to its lease. A member campaigns by creating
  it (a transaction that succeeds only while it does not exist); the etcd revision that
  created it is the election's term.
- `blocks/<height>`: the last TAIL_BLOCKS committed blocks (canonical bytes), and `head`: the
  height of the last one.

The sequencer commits block h with one transaction (EtcdLog.commit) that succeeds only if the
leader key is still the one it created (same create_revision and value: its lease has not
expired, nobody else was elected since), no block h exists and the head is h-1. Only then is
the block written to LevelDB and its writes answered. A sequencer that was paused past its
lease, or cut off from etcd, can therefore never add a block: its transaction fails, its
waiting requests get 503, and it steps down to standby.

A standby applies every block committed to etcd beyond its tip (polling), verifying each as a
follower does (node.catchup.BlockPipeline), serves reads, and forwards writes to the URL the
leader key advertises (Relay). When the leader key disappears (its lease expired or was
revoked), standbys campaign; the winner applies every block in etcd beyond its tip before it
seals from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from chain.blocks import Block
from chain.crypto import NodeKey
from chain.errors import LedgerError
from node.catchup import BlockPipeline
from node.etcd import Compare, Delete, EtcdClient, EtcdError, EtcdUnavailable, Get, KeyValue, Put, prefix_end
from node.producer import NodeUnavailable
from node.store import Changes, Store
from node.sync import (
    FORWARD_TIMEOUT,
    MAX_FORWARD_BYTES,
    Forwarded,
    ForwardTimeout,
    ForwardUnavailable,
    forwarded_answer,
)

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("aitbc.group")

POLL_S = 0.05
"""How often a standby looks for new blocks and for the leader key in etcd."""
TAIL_BLOCKS = 1000
"""Blocks kept in etcd; older ones are deleted as new ones are appended. A member further
behind than this catches up from the others over HTTP."""
APPLY_BATCH = 100
"""Blocks read from etcd per range request."""
COMPACT_EVERY = 200
"""Every this many blocks, the sequencer compacts etcd's history (keeping TAIL_BLOCKS revisions)."""
WAIT_FOR_WRITE_S = 5.0
"""How long a forwarded write waits for its block to reach this standby."""


def block_key(prefix: bytes, height: int) -> bytes:
    """blocks/<height>, zero-padded so that etcd's key order is height order."""
    return prefix + b"blocks/" + b"%020d" % height


@dataclass(frozen=True)
class Leadership:
    """What this node was elected with: the fencing token of each block it commits."""

    term: int
    """The etcd revision that created the leader key (its create_revision)."""
    lease: int
    value: bytes
    """The leader key's value: this node's key and URL."""


@dataclass(frozen=True)
class Leader:
    key: str
    url: str
    term: int


class EtcdLog:
    """The sequencer's commit step in a group (node.producer.BlockLog): the fenced etcd append,
    then the local LevelDB write."""

    def __init__(self, group: Group, leadership: Leadership) -> None:
        self.group = group
        self.leadership = leadership
        self.lost = False

    async def commit(self, block: Block, changes: Changes) -> None:
        group, lead = self.group, self.leadership
        if self.lost:
            raise NodeUnavailable("this node is no longer the sequencer; retry shortly", error_code="unavailable")
        h = block.height
        leader = group.prefix + b"leader"
        compare = [
            Compare(leader, "CREATE", lead.term),
            Compare(leader, "VALUE", lead.value),
            Compare(block_key(group.prefix, h), "CREATE", 0),
            Compare(group.prefix + b"head", "VALUE", b"%d" % (h - 1)),
        ]
        ops: list[Put | Delete] = [
            Put(block_key(group.prefix, h), block.encode()),
            Put(group.prefix + b"head", b"%d" % h),
        ]
        if h > TAIL_BLOCKS:
            ops.append(Delete(block_key(group.prefix, h - TAIL_BLOCKS)))
        # LevelDB's batch is built while etcd takes the block, and written only once etcd has it.
        prepared = asyncio.ensure_future(asyncio.to_thread(group.store.prepare_block, block, changes))
        started = time.perf_counter()
        try:
            result = await group.etcd.txn(compare, ops)
        except BaseException as exc:
            await _settled(prepared)
            if not isinstance(exc, EtcdUnavailable | EtcdError):
                raise
            # The block may or may not be in etcd: this node must not build on it either way.
            self.lose(f"etcd did not take block {h}: {exc}")
            raise NodeUnavailable(
                f"block {h} could not be committed to etcd ({exc}); retry shortly", error_code="unavailable"
            ) from None
        group.node.metrics.etcd_commit.observe(time.perf_counter() - started)
        if not result.succeeded:
            await _settled(prepared)
            self.lose(f"fenced at block {h}: another member leads, or the lease expired")
            raise NodeUnavailable(
                "this node lost the sequencer role before the block was committed; nothing of it was applied, "
                "retry shortly",
                error_code="unavailable",
            )
        if h % COMPACT_EVERY == 0 and result.revision > TAIL_BLOCKS:
            group.spawn(group.etcd.compact(result.revision - TAIL_BLOCKS))
        await asyncio.to_thread(group.store.commit, await prepared)

    def lose(self, reason: str) -> None:
        if not self.lost:
            self.lost = True
            log.warning("%s; stepping down", reason)
            self.group.wake()


class Relay:
    """A standby's writes: forwarded to the sequencer the leader key names."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self._http: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=FORWARD_TIMEOUT,
                headers={"Accept-Encoding": "identity"},
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
                follow_redirects=False,
            )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def forward(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Forwarded:
        leader = self.group.leader
        if leader is None or leader.key == self.group.key.public_hex:
            raise ForwardUnavailable("no sequencer is elected right now; retry shortly")
        self.start()
        assert self._http is not None
        url = leader.url + path + (f"?{query}" if query else "")
        try:
            resp = await self._http.request(method, url, headers=headers, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ForwardUnavailable(
                f"the sequencer at {leader.url} cannot be reached ({type(exc).__name__}); nothing was sent"
            ) from None
        except httpx.HTTPError:
            raise ForwardTimeout() from None
        content = resp.content[: MAX_FORWARD_BYTES + 1]
        if len(content) > MAX_FORWARD_BYTES:
            raise ForwardTimeout()
        return forwarded_answer(resp, content)

    async def wait_for_height(self, height: int, timeout: float = WAIT_FOR_WRITE_S) -> bool:
        """Wait until this standby has applied block `height` (a forwarded write's block)."""
        return await self.group.wait_for_height(height, timeout)


class Group:
    """This node's membership of an authority group: the election, the standby's apply loop,
    keep-alives while it leads, and the switch between sequencer and standby (Node)."""

    def __init__(self, node: Node, key: NodeKey, etcd: EtcdClient, lease_ttl: int) -> None:
        self.node = node
        self.store: Store = node.store
        self.key = key
        self.etcd = etcd
        self.lease_ttl = lease_ttl
        self.prefix = b"/aitbc/" + node.store.genesis.hash[:32].encode("ascii") + b"/"
        self.relay = Relay(self)
        self.leader: Leader | None = None
        """The sequencer as last seen in etcd (None: none is elected)."""
        self.leadership: Leadership | None = None
        """Set while this node is the sequencer."""
        self.log: EtcdLog | None = None
        self.etcd_ok = False
        self.halted: str | None = None
        """Why this member stopped applying blocks (a block it cannot verify or decode)."""
        self._pipeline = BlockPipeline(node.store, node.store.genesis)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._renewed = 0.0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self._stopping = False
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        self._pipeline.start()
        self._task = asyncio.create_task(self._run(), name="aitbc-group")

    async def stop(self) -> None:
        """Stop campaigning and applying; a sequencer steps down and gives its lease back, so
        another member takes over at once rather than after the lease's TTL."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.leadership is not None:
            await self._step_down("the node is stopping")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.relay.stop()
        await self.etcd.aclose()
        self._pipeline.close()

    def wake(self) -> None:
        self._wake.set()

    def spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    # -- the loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                if self.leadership is None:
                    await self._standby_round()
                    await self._sleep(POLL_S)
                else:
                    await self._sequencer_round()
            except EtcdUnavailable as exc:
                if self.etcd_ok:
                    log.warning("%s", exc.detail)
                self.etcd_ok = False
                if self.leadership is not None and time.monotonic() - self._renewed > self.lease_ttl:
                    await self._step_down("etcd unreachable for longer than the lease")
                await self._sleep(POLL_S * 4)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the member alive; the next round retries
                log.exception("group round failed")
                await self._sleep(POLL_S * 4)

    async def _standby_round(self) -> None:
        await self._apply_from_etcd()
        found = await self.etcd.get(self.prefix + b"leader")
        self.etcd_ok = True
        self._see_leader(found)
        if found is None and self.halted is None:
            await self._campaign()
        elif found is not None and self.leader is not None and self.leader.key == self.key.public_hex:
            # This node's own leadership from before a restart: give it up at once.
            log.info("revoking the leadership this node held before it restarted")
            await self.etcd.revoke(found.lease)

    async def _sequencer_round(self) -> None:
        lead = self.leadership
        assert lead is not None
        if self.log is not None and self.log.lost:
            await self._step_down("fenced")
            return
        ttl = await self.etcd.keepalive(lead.lease)
        self.etcd_ok = True
        if ttl <= 0:
            await self._step_down("the lease expired")
            return
        self._renewed = time.monotonic()
        await self._sleep(self.lease_ttl / 3)

    def _see_leader(self, found: KeyValue | None) -> None:
        if found is None:
            self.leader = None
            return
        try:
            raw = json.loads(found.value)
            leader = Leader(str(raw["key"]), str(raw["url"]).rstrip("/"), found.create_revision)
        except (ValueError, KeyError, TypeError):
            log.error("the leader key in etcd is malformed: %r", found.value[:200])
            self.leader = None
            return
        if self.leader is None or self.leader.term != leader.term:
            self.node.metrics.group_term.set(leader.term)
            log.info("sequencer: %s (%s…), term %d", leader.url, leader.key[:16], leader.term)
        self.leader = leader

    # -- election -----------------------------------------------------------------------
    async def _campaign(self) -> None:
        leader_key = self.prefix + b"leader"
        value = json.dumps({"key": self.key.public_hex, "url": self.node.url}, sort_keys=True).encode()
        lease = await self.etcd.grant(self.lease_ttl)
        try:
            result = await self.etcd.txn(
                [Compare(leader_key, "CREATE", 0)], [Put(leader_key, value, lease)], [Get(leader_key)]
            )
        except BaseException:
            await _quietly(self.etcd.revoke(lease))
            raise
        if not result.succeeded:
            await self.etcd.revoke(lease)
            self._see_leader(result.ranges[0][0] if result.ranges and result.ranges[0] else None)
            return
        lead = Leadership(result.revision, lease, value)
        self._renewed = time.monotonic()
        try:
            ready = await self._prepare_to_lead(lead)
        except BaseException:
            await _quietly(self.etcd.revoke(lease))
            raise
        if not ready:
            await self.etcd.revoke(lease)
            return
        self.leadership = lead
        self.log = EtcdLog(self, lead)
        self.leader = Leader(self.key.public_hex, self.node.url, lead.term)
        self.node.metrics.group_term.set(lead.term)
        self.node.metrics.sequencer_changes.inc()
        await self.node.become_sequencer(self.key, self.log)
        log.info("elected sequencer at height %d, term %d", self.store.tip().height, lead.term)

    async def _prepare_to_lead(self, lead: Leadership) -> bool:
        """Apply every block in etcd beyond this node's tip; the head must then be the tip."""
        while await self._apply_from_etcd():
            pass
        if self.halted is not None:
            return False
        head_key = self.prefix + b"head"
        tip = self.store.tip().height
        head = await self.etcd.get(head_key)
        if head is None:  # the group's first sequencer: etcd's log starts at its tip
            started = await self.etcd.txn(
                [Compare(self.prefix + b"leader", "CREATE", lead.term), Compare(head_key, "CREATE", 0)],
                [Put(head_key, b"%d" % tip)],
            )
            return started.succeeded
        if int(head.value) != tip:
            log.error(
                "elected at height %d but etcd's head is %s: this member is behind etcd's tail and cannot "
                "seal; it stays a standby",
                tip,
                head.value.decode("ascii", "replace"),
            )
            self.halted = f"behind etcd's tail (height {tip}, etcd head {head.value.decode('ascii', 'replace')})"
            return False
        return True

    async def _step_down(self, reason: str) -> None:
        lead, self.leadership, self.log = self.leadership, None, None
        if lead is None:
            return
        log.warning("stepping down as sequencer: %s", reason)
        self.leader = None
        self.node.metrics.sequencer_changes.inc()
        await self.node.become_standby(self.key)
        try:
            await self.etcd.revoke(lead.lease)
        except EtcdUnavailable:
            pass  # the lease expires by itself

    # -- applying committed blocks ------------------------------------------------------
    async def _apply_from_etcd(self) -> bool:
        """Apply the next run of blocks committed to etcd; whether a full batch was applied."""
        if self.halted is not None:
            return False
        tip = self.store.tip().height
        found = await self.etcd.range(
            block_key(self.prefix, tip + 1), prefix_end(self.prefix + b"blocks/"), limit=APPLY_BATCH
        )
        if not found:
            return False
        first = int(found[0].key.rsplit(b"/", 1)[1])
        if first != tip + 1:
            self.halted = f"behind etcd's tail: tip {tip}, etcd's oldest block {first}"
            log.error("this member is %s; catch it up from a member over HTTP", self.halted)
            return False
        try:
            blocks = [Block.decode(kv.value) for kv in found]
        except LedgerError as exc:
            self.halted = f"a block in etcd does not decode: {exc.detail}"
            log.error("%s", self.halted)
            return False
        job = asyncio.ensure_future(asyncio.to_thread(self._pipeline.run, blocks, lambda: self._stopping))
        try:
            stored, rejected = await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait([job])  # the block being written is finished before the store closes
            raise
        for block in stored:
            self.node.feed.publish(block)
        if stored:
            self._advanced.set()
            self._advanced = asyncio.Event()
        if rejected is not None:
            self.halted = f"block {rejected.height} from etcd was rejected ({rejected.check}): {rejected.detail}"
            log.error("%s", self.halted)
            return False
        return len(found) == APPLY_BATCH

    async def wait_for_height(self, height: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.store.tip().height < height:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), timeout=remaining)
            except TimeoutError:
                pass
        return True

    # -- what operators see -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        leader = self.leader
        info: dict[str, Any] = {
            "sequencer": None if leader is None else {"key": leader.key, "url": leader.url},
            "term": None if leader is None else leader.term,
            "etcd": "ok" if self.etcd_ok else "unreachable",
        }
        if self.halted is not None:
            info["halted"] = self.halted
        return info


async def _settled(task: asyncio.Future[Any]) -> None:
    """Wait for a block's batch that will not be written (no thread is left reading the store)."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so that asyncio does not log it: an unwritten batch does not matter


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception:  # best effort: a lease that is not revoked expires by itself
        pass
