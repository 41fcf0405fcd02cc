"""An authority group: one sequencer at a time, elected through etcd, with fencing.

Every member holds an authority key of the chain. Keys live under /aitbc/<genesis hash>/ in etcd:

- `leader`: {"key", "url"} of the sequencer, bound to its lease. A member campaigns by creating
  it (a transaction that succeeds only while it does not exist); the etcd revision that
  created it is the election's term.
- `blocks/<height>`: the last --etcd-tail-blocks committed blocks (canonical bytes, compressed with
  zlib: etcd's append takes less time the fewer bytes it carries; see etcd_value), and `head`:
  the height of the last one.
- `members/<key>`: each member's URL, written as it starts, for a member that has to catch up
  over HTTP.

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

A member whose tip is below etcd's oldest block (it was stopped while the others sealed more than
the tail) fetches what it lacks over HTTP from the other members, with --peer-key, verifying
every block as a follower does (node.sync.catch_up_from), then applies from etcd again. Until then
it cannot seal, so it does not campaign; why it cannot catch up (no peer key, no member
answering) is in /health (group.halted) and the log, and it retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.blocks import Block
from chain.crypto import NodeKey
from chain.errors import EncodingError, LedgerError
from node.catchup import BlockPipeline
from node.etcd import (
    Compare,
    Delete,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    Get,
    KeyValue,
    Put,
    TxnResult,
    prefix_end,
)
from node.producer import NodeUnavailable
from node.store import Changes, PreparedBlock, Store
from node.sync import (
    Forwarded,
    Forwarder,
    ForwardUnavailable,
    UpstreamError,
    catch_up_from,
)

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("aitbc.group")

POLL_S = 0.05
"""How often a standby looks for new blocks and for the leader key in etcd."""
APPLY_BATCH = 100
"""Blocks read from etcd per range request."""
COMPACT_EVERY = 200
"""Every this many blocks, the sequencer compacts etcd's history (keeping as many revisions as
the tail has blocks)."""
CATCH_UP_RETRY_S = 1.0
"""After a failed catch-up over HTTP, the first wait before the next; it doubles up to CATCH_UP_RETRY_MAX_S."""
CATCH_UP_RETRY_MAX_S = 15.0
MAX_ETCD_BLOCK_BYTES = 64 << 20
"""The most a block read from etcd may inflate to: far above any block etcd's request limit lets in."""
WAIT_FOR_WRITE_S = 5.0
"""How long a forwarded write waits for its block to reach this standby."""


def block_key(prefix: bytes, height: int) -> bytes:
    """blocks/<height>, zero-padded so that etcd's key order is height order."""
    return prefix + b"blocks/" + b"%020d" % height


def etcd_value(block: Block) -> bytes:
    """A block as etcd holds it: its canonical bytes compressed with zlib, at level 1, the fastest
    (canonical JSON shrinks about fourfold). The fewer bytes, the less time etcd's append takes
    (its JSON gateway, its raft log and both followers carry them), and standbys read them back
    on every block."""
    return zlib.compress(block.encode(), 1)


def block_from_etcd(raw: bytes) -> Block:
    """The block etcd holds: compressed (etcd_value), or plain canonical JSON as members wrote it
    before blocks were compressed. A value that does not decode, or that would inflate beyond
    MAX_ETCD_BLOCK_BYTES, raises EncodingError."""
    if raw[:1] == b"{":
        return Block.decode(raw)
    inflate = zlib.decompressobj()
    try:
        encoded = inflate.decompress(raw, MAX_ETCD_BLOCK_BYTES)
    except zlib.error as exc:
        raise EncodingError(f"a block in etcd is neither canonical JSON nor zlib data: {exc}") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise EncodingError(f"a block in etcd is cut short, or inflates beyond {MAX_ETCD_BLOCK_BYTES} bytes")
    return Block.decode(encoded)


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
    then the local LevelDB write.

    Two blocks may be on their way at once (depth 2): block h+1 is sent to etcd while h's append
    is still a round trip away, so that one block's etcd latency no longer holds the next block
    back. etcd applies them in the order they reach it. If h+1 overtakes h, its compare on the
    head fails while the leader key is still this node's: it is sent again once h is in. Each
    block is written to the store after the block below it, and fails if that one failed."""

    depth = 2

    def __init__(self, group: Group, leadership: Leadership) -> None:
        self.group = group
        self.leadership = leadership
        self.lost = False
        self._stored: asyncio.Future[bool] | None = None
        """The last block given to commit: resolved True once it is in the store, False if it failed."""

    async def commit(self, block: Block, changes: Changes) -> None:
        previous, stored = self._stored, asyncio.get_running_loop().create_future()
        self._stored = stored
        try:
            await self._commit(block, changes, previous)
        except BaseException:
            stored.set_result(False)
            raise
        stored.set_result(True)

    async def _commit(self, block: Block, changes: Changes, previous: asyncio.Future[bool] | None) -> None:
        group, lead = self.group, self.leadership
        if self.lost:
            raise NodeUnavailable("this node is no longer the sequencer; retry shortly", error_code="unavailable")
        h = block.height
        leader, head = group.prefix + b"leader", group.prefix + b"head"
        compare = [
            Compare(leader, "CREATE", lead.term),
            Compare(leader, "VALUE", lead.value),
            Compare(block_key(group.prefix, h), "CREATE", 0),
            Compare(head, "VALUE", b"%d" % (h - 1)),
        ]
        ops: list[Put | Delete] = [Put(block_key(group.prefix, h), etcd_value(block)), Put(head, b"%d" % h)]
        if h > group.tail_blocks:  # everything below the tail (one key, or more if the tail was shortened)
            ops.append(Delete(block_key(group.prefix, 0), block_key(group.prefix, h - group.tail_blocks + 1)))
        # LevelDB's batch is built while etcd takes the block (once the block below is stored: the
        # batch derives from it), and written only once etcd has it; written without waiting for
        # the disk, since etcd holding the block is what makes it durable.
        prepared = asyncio.ensure_future(self._prepare(block, changes, previous))
        started = time.perf_counter()
        try:
            while True:
                left = group.lease_left()
                if left <= 0:  # not renewed in time: etcd has let the lease go, and the append would be fenced
                    self.lose(f"the lease ran out before block {h} could be committed")
                    raise NodeUnavailable(
                        "this node is no longer the sequencer; retry shortly", error_code="unavailable"
                    )
                result = await group.etcd.txn(compare, ops, [Get(leader), Get(head)], within=left)
                if result.succeeded or not self._overtaken(result, h, previous):
                    break
                assert previous is not None  # _overtaken says so
                group.node.metrics.etcd_resent.inc()
                await asyncio.wait([previous])  # block h-1 is still on its way: h goes once it is in
                if not previous.result():
                    break  # h-1 failed: h, built on it, fails with it (below)
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
        if h % COMPACT_EVERY == 0 and result.revision > group.tail_blocks:
            group.spawn(group.etcd.compact(result.revision - group.tail_blocks))
        batch = await prepared
        if batch is None:  # in etcd, but the block below did not reach the store: applied from etcd as a standby
            self.lose(f"block {h} is in etcd but block {h - 1} did not reach the store")
            raise NodeUnavailable(
                f"block {h} was committed but this node could not store the block below it; retry shortly",
                error_code="unavailable",
            )
        try:
            await asyncio.to_thread(group.store.commit, batch)
        except Exception as exc:  # in etcd, not in the store: this node must not build on its own state
            self.lose(f"block {h} is in etcd but could not be stored: {exc}")
            raise

    async def _prepare(
        self, block: Block, changes: Changes, previous: asyncio.Future[bool] | None
    ) -> PreparedBlock | None:
        """The block's LevelDB batch, once the block below is in the store (None: it failed)."""
        if previous is not None:
            await asyncio.wait([previous])
            if not previous.result():
                return None
        return await asyncio.to_thread(self.group.store.prepare_block, block, changes, synced=False)

    def _overtaken(self, result: TxnResult, h: int, previous: asyncio.Future[bool] | None) -> bool:
        """Whether block h's append was refused only because h-1's, sent just before, has not
        reached etcd yet: the leader key is still the one this node was elected with, and the
        head is h-2."""
        if previous is None or self.lost or len(result.ranges) != 2:
            return False
        leader, head = result.ranges
        lead = self.leadership
        return (
            len(leader) == 1
            and leader[0].create_revision == lead.term
            and leader[0].value == lead.value
            and len(head) == 1
            and head[0].value == b"%d" % (h - 2)
        )

    def lose(self, reason: str) -> None:
        if not self.lost:
            self.lost = True
            log.warning("%s; stepping down", reason)
            self.group.wake()


class Relay:
    """A standby's writes: forwarded to the sequencer the leader key names."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self._forwarder = Forwarder()

    async def stop(self) -> None:
        await self._forwarder.close()

    async def forward(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Forwarded:
        leader = self.group.leader
        if leader is None or leader.key == self.group.key.public_hex:
            raise ForwardUnavailable("no sequencer is elected right now; retry shortly")
        try:
            return await self._forwarder.send(leader.url, method, path, query, headers, body)
        except ForwardUnavailable as exc:
            raise ForwardUnavailable(f"the sequencer at {exc}") from None

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
        self.tail_blocks: int = node.config.etcd_tail_blocks
        """Blocks kept in etcd; older ones are deleted as blocks are appended."""
        self.behind: str | None = None
        """Set while this member's tip is below etcd's oldest block: it catches up over HTTP."""
        self.catch_up_error: str | None = None
        """Why the last catch-up over HTTP failed (no peer key, no member answering)."""
        self._catch_up_at = 0.0
        self._catch_up_wait = CATCH_UP_RETRY_S
        self._registered = False
        self._pipeline = BlockPipeline(node.store, node.store.genesis, synced=False)  # etcd holds the blocks
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
                    tip = self.store.tip().height
                    await self._standby_round()
                    if self.store.tip().height == tip:  # nothing new: wait; otherwise more may be there
                        await self._sleep(POLL_S)
                else:
                    await self._sequencer_round()
            except EtcdUnavailable as exc:
                if self.etcd_ok:
                    log.warning("%s", exc.detail)
                self.etcd_ok = False
                if self.leadership is not None and self.lease_left() <= 0:
                    await self._step_down("etcd unreachable for longer than the lease")
                await self._sleep(POLL_S * 4)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the member alive; the next round retries
                log.exception("group round failed")
                await self._sleep(POLL_S * 4)

    async def _standby_round(self) -> None:
        if not self._registered:
            await self.etcd.put(self.prefix + b"members/" + self.key.public_hex.encode(), self.node.url.encode())
            self._registered = True
        await self._apply_from_etcd()
        if self.behind is not None:
            await self._catch_up_over_http()
        found = await self.etcd.get(self.prefix + b"leader")
        self.etcd_ok = True
        self._see_leader(found)
        if found is None and self.halted is None and self.behind is None:
            await self._campaign()
        elif found is not None and self.leader is not None and self.leader.key == self.key.public_hex:
            # This node's own leadership from before a restart, or from before it stepped down
            # while etcd was out of reach (the revoke failed then): give it up at once.
            log.info("revoking the leadership this node held before it restarted or stepped down")
            await self.etcd.revoke(found.lease)

    async def _sequencer_round(self) -> None:
        lead = self.leadership
        assert lead is not None
        if self.log is not None and self.log.lost:
            await self._step_down("fenced")
            return
        left = self.lease_left()
        if left <= 0:
            await self._step_down("the lease ran out before it could be renewed")
            return
        # A keep-alive that answers after the lease ran out is of no use: give up then, not
        # after the timeout of each etcd endpoint in turn (EtcdUnavailable, handled by _run).
        sent = time.monotonic()
        ttl = await self.etcd.keepalive(lead.lease, within=left)
        self.etcd_ok = True
        if ttl <= 0:
            await self._step_down("the lease expired")
            return
        self._renewed = sent
        await self._sleep(self.lease_ttl / 3)

    def lease_left(self) -> float:
        """Seconds until this sequencer's lease may run out in etcd unless it is renewed: counted
        from when the last keep-alive (or the grant) was sent, since etcd renewed it after that.
        Past it the sequencer neither appends nor keeps on leading."""
        return self._renewed + self.lease_ttl - time.monotonic()

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
        granted = time.monotonic()
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
        self._renewed = granted
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
        if self.halted is not None or self.behind is not None:
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
        etcd_head = int(head.value)
        if etcd_head > tip:  # the blocks between are gone from etcd: the other members have them
            self._fell_behind(f"behind etcd (height {tip}, etcd's head {etcd_head}, the blocks between gone from it)")
            return False
        if etcd_head < tip:
            self.halted = (
                f"etcd's head ({etcd_head}) is below this member's tip ({tip}): etcd lost blocks this member "
                "holds; it stays a standby"
            )
            log.error("elected, but %s", self.halted)
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
        try:  # so that another member takes over at once; past its TTL the lease is gone anyway
            await self.etcd.revoke(lead.lease, within=self.lease_ttl)
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
            if self.behind is not None:  # level with etcd's head (not merely past its last block key)?
                head = await self.etcd.get(self.prefix + b"head")
                if head is not None and int(head.value) > tip:
                    return False
            self.behind = self.catch_up_error = None
            return False
        first = int(found[0].key.rsplit(b"/", 1)[1])
        if first != tip + 1:
            self._fell_behind(f"behind etcd's tail (height {tip}, etcd's oldest block {first})")
            return False
        self.behind = self.catch_up_error = None
        try:
            blocks = [block_from_etcd(kv.value) for kv in found]
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

    # -- catching up over HTTP from the other members ---------------------------------
    def _fell_behind(self, reason: str) -> None:
        if self.behind is None:
            log.warning("this member is %s: it catches up over HTTP from the other members", reason)
            self._catch_up_at = 0.0
            self._catch_up_wait = CATCH_UP_RETRY_S
        self.behind = reason

    async def _catch_up_over_http(self) -> None:
        """Fetch the blocks this member lacks from another member over HTTP (the sequencer first),
        verifying each as a follower does; on failure, say why and retry later."""
        if time.monotonic() < self._catch_up_at:
            return
        peer_key = self.node.config.peer_key
        if not peer_key:
            self._cannot_catch_up(
                "catching up over HTTP from the other members needs --peer-key (AITBC_PEER_KEY), which is not set: "
                "restart this member with --peer-key KEY (an API key with the role peer on the group)"
            )
            return
        urls = await self._member_urls()
        if not urls:
            self._cannot_catch_up("no other member has registered a URL in etcd to catch up from")
            return
        try:
            served = await catch_up_from(self.store, self.node.feed, urls, peer_key, self._pipeline)
        except UpstreamError as exc:
            self._cannot_catch_up(f"no member could serve the blocks it lacks: {exc}")
            return
        finally:
            self._advanced.set()  # forwarded writes waiting for a height look again
            self._advanced = asyncio.Event()
        self.catch_up_error = None
        self._catch_up_wait = CATCH_UP_RETRY_S
        log.info("caught up over HTTP from %s to height %d; applying from etcd", served, self.store.tip().height)

    def _cannot_catch_up(self, detail: str) -> None:
        if detail != self.catch_up_error:
            log.error("this member is %s and cannot catch up: %s; retrying", self.behind, detail)
        self.catch_up_error = detail
        self._catch_up_at = time.monotonic() + self._catch_up_wait
        self._catch_up_wait = min(self._catch_up_wait * 2, CATCH_UP_RETRY_MAX_S)

    async def _member_urls(self) -> list[str]:
        """The other members' URLs: the sequencer's first (it holds every block), then the rest."""
        self._see_leader(await self.etcd.get(self.prefix + b"leader"))
        urls = []
        if self.leader is not None and self.leader.key != self.key.public_hex:
            urls.append(self.leader.url)
        members = self.prefix + b"members/"
        for kv in await self.etcd.range(members, prefix_end(members)):
            url = kv.value.decode("utf-8", "replace").rstrip("/")
            if kv.key[len(members) :] != self.key.public_hex.encode() and url not in urls:
                urls.append(url)
        return urls

    async def wait_for_height(self, height: int, timeout: float) -> bool:
        """Wait until this member has applied block `height`, which the sequencer has committed to
        etcd already: the apply loop looks for it at once rather than at its next poll."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.store.tip().height < height:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.wake()
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
        if self.behind is not None:
            info["catching_up"] = self.behind
        if self.halted is not None:
            info["halted"] = self.halted
        elif self.behind is not None and self.catch_up_error is not None:
            info["halted"] = f"{self.behind}; cannot catch up: {self.catch_up_error}"
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
