"""Group commit on the authority: a mempool, and a loop that seals what is pending.

A request is answered only after the block holding its transaction is durable. Many
concurrent submissions share one block, bounded by params.max_block_txs and
params.block_max_wait_ms; a block is sealed sooner once submissions pause (QUIET_S) while
the log has room for it (BlockLog.depth: one block committing at a time on a single
authority, two in a group), since waiting longer would only delay its answers. An idle
node seals nothing, except lease expiries when due.

A block's encoding is also kept within max_block_bytes (a group's blocks must fit in one etcd
request): the transactions that would take it beyond wait, in order, for the next block.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chain import indexes
from chain.blocks import Block, BlockHeader
from chain.context import NOTHING_CHECKED, ApplyContext, Signers
from chain.crypto import NodeKey
from chain.encoding import decode
from chain.errors import LedgerError, TooLarge
from chain.genesis import Genesis
from chain.jobs import job_key
from chain.state import ReadableState, WorkingState
from chain.transactions import Transaction
from chain.transition import apply_tx, open_block, seal_block
from node.clock import Clock, now_ms
from node.config import BLOCK_FRAME_BYTES
from node.events import BlockFeed
from node.metrics import NodeMetrics
from node.offers import DEFAULT_OFFER_MS, MAKES_PENDING, Offers
from node.store import Changes, Store

log = logging.getLogger("aitbc.producer")

QUIET_S = 0.0005
"""A block being filled is sealed once no transaction has arrived for this long and the block
before it is durable; block_max_wait_ms still bounds the wait. Under uvloop this is less than a
timer tick, so it amounts to one pass of the event loop. ~11% more lifecycles/s than always
waiting block_max_wait_ms: `python -m bench load --workload lifecycle`."""


class NodeUnavailable(Exception):
    """The node cannot take writes right now (shutting down, mempool full, storage failed)."""

    error_code = "unavailable"

    def __init__(self, detail: str, *, error_code: str = "unavailable") -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_code = error_code


Finalize = Callable[[dict[str, Any]], dict[str, Any]]

IDEMPOTENCY: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("aitbc_idempotency", default=None)
"""Set by the API (api/idempotency.py) while it serves a write sent with an Idempotency-Key:
the record {"account", "key_hash", "request"} that submit() puts into the write's transaction
(chain.idempotency), so that the key's hash is stored on chain with what it produced."""
UNKEYED = frozenset(("miner.heartbeat", "job.requeue"))
"""Transactions a request causes on the side (a poll's heartbeat): they never carry its key."""


class BlockLog(Protocol):
    """The sequencer's commit step: makes a sealed block durable before any write in it is
    answered. LocalLog writes it to the store; node.group.EtcdLog first appends it to etcd,
    fenced by the leadership the node was elected with, then writes it to the store."""

    depth: int
    """How many sealed blocks may be committing at once. Above 1, commit is called for the next
    block while the one before is still committing: the log keeps them in order, and a block
    whose predecessor failed fails too (it was built on it)."""

    async def commit(self, block: Block, changes: Changes) -> None:
        """Make the block durable, or raise (NodeUnavailable: nothing of it is acknowledged)."""
        ...


class LocalLog:
    """A single authority: the block is durable once its synced LevelDB batch is written. One
    block at a time: the next block's batch derives from the stored one (its counts, its
    block-tree nodes), and a local fsync leaves little to overlap."""

    depth = 1

    def __init__(self, store: Store) -> None:
        self.store = store

    async def commit(self, block: Block, changes: Changes) -> None:
        await asyncio.to_thread(self.store.write_block, block, changes)


CLAIMS = frozenset(("job.claim", "job.claim_next"))
"""Transaction types that start a lease, which this sequencer expires when it is due."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class _Pending:
    tx: Transaction
    future: asyncio.Future[dict[str, Any]] | None
    signers: Signers | None = None
    """For a job.complete this node signed: its receipt's signers, checked at signing."""
    finalize: Finalize | None = None
    """Completes the payload just before the transaction enters a block (Producer.submit)."""


class Producer:
    def __init__(
        self,
        store: Store,
        key: NodeKey,
        *,
        feed: BlockFeed | None = None,
        mempool_limit: int = 20_000,
        clock: Clock = now_ms,
        metrics: NodeMetrics | None = None,
        quiet_s: float = QUIET_S,
        offer_ms: int = DEFAULT_OFFER_MS,
        log: BlockLog | None = None,
        max_block_bytes: int | None = None,
        refuse_oversize: bool = False,
    ) -> None:
        self.store = store
        self.log: BlockLog = log or LocalLog(store)
        """Where a sealed block is made durable (the store; in a group, etcd first)."""
        self.metrics = metrics
        self.feed = feed or BlockFeed()
        self.clock = clock
        """Unix milliseconds; block and transaction times come from here (tests pass a fake)."""
        self.key = key
        self.params = store.genesis.params
        self.mempool_limit = mempool_limit
        self.quiet_s = quiet_s
        self.block_budget = None if max_block_bytes is None else max_block_bytes - BLOCK_FRAME_BYTES
        """Bytes a block's transactions may take (None: no limit)."""
        self.refuse_oversize = refuse_oversize
        """A transaction that alone is over block_budget is refused (in a group, whose blocks
        etcd would refuse); otherwise it is sealed in a block of its own."""
        self._mempool: deque[_Pending] | None = None
        """Submitted, not yet taken into a block; None until started."""
        self._waiter: asyncio.Future[None] | None = None
        """While the loop sleeps in _collect: resolved to wake it early."""
        self._idle = False
        """The loop is waiting for a first transaction (rather than filling a block)."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._leases: list[tuple[int, str]] = []
        self.offers = Offers(offer_ms, clock)
        """Which pending job each polling miner is shown (node.offers); woken by every block
        that may have made a job pending."""

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._seed_leases()
        self._mempool = deque()
        self._stopping = False
        if self.offers.closed:
            self.offers = Offers(self.offers.window_ms, self.clock)
        self._task = asyncio.create_task(self._run(), name="aitbc-producer")

    async def stop(self) -> None:
        """Finish the block being written, refuse what is still queued, then return."""
        self._stopping = True
        self.wake()
        self.offers.close()
        if self._task is not None:
            await self._task
            self._task = None

    def wake(self) -> None:
        """Look at lease expiries now (after the clock moved) rather than at the planned time."""
        if self._waiter is not None:
            _resolve(self._waiter)

    @property
    def mempool_size(self) -> int:
        return 0 if self._mempool is None else len(self._mempool)

    # -- submission ----------------------------------------------------------------
    async def submit(
        self,
        tx_type: str,
        payload: dict[str, Any],
        *,
        signers: Signers | None = None,
        finalize: Finalize | None = None,
    ) -> dict[str, Any]:
        """Queue a transaction; return its result once its block is durable.

        signers: for a job.complete whose receipt this node has just signed (and whose miner
        co-signature it has just checked), what chain.receipts.completion_signers would find,
        so that applying it checks neither signature again.
        finalize: called with the payload as the transaction's block is built, it returns the
        payload the transaction gets (what only the sequencer knows at that moment)."""
        mempool = self._mempool
        if mempool is None or self._stopping:
            raise NodeUnavailable("the node is shutting down", error_code="shutting_down")
        if len(mempool) >= self.mempool_limit:
            raise NodeUnavailable("the mempool is full; retry shortly", error_code="mempool_full")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        idempotency = IDEMPOTENCY.get()
        if idempotency is not None and tx_type not in UNKEYED:
            payload = {**payload, "idempotency": idempotency}
        tx = Transaction(tx_type, payload, self.clock())
        mempool.append(_Pending(tx, future, signers, finalize))
        if self._idle or len(mempool) >= self.params.max_block_txs:
            self.wake()  # a first transaction, or a full block: no reason to wait longer
        return await future

    # -- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        """Collect, apply and seal on the event loop; commit through self.log, up to its depth
        of blocks at once.

        While block N is being committed, block N+1 is collected and applied on top of N's
        changes (its state reads through N's). With depth 1 (a local fsync), N+1's commit
        starts once N is durable; with depth 2 (etcd, a network round trip away), N+1 is sent
        while N is on its way, and the log keeps them in order. Each block's requests are
        answered only when that block is durable. When a block fails, those sealed on top of it
        fail with it, and the block being built is built again on the store.
        """
        assert self._mempool is not None
        mempool = self._mempool
        depth = max(1, self.log.depth)
        writes: deque[tuple[asyncio.Task[bool], WorkingState]] = deque()
        """Blocks being committed, oldest first, with the state each was sealed with."""
        tip = self.store.tip()
        while not self._stopping:
            batch = await self._collect(mempool, writes[0][0] if len(writes) >= depth else None)
            batch = [p for p in batch if p.future is not None and not p.future.done()]
            # Expired leases go first, so a claim in the same block sees the job pending again.
            batch = self._due_requeues(len(batch), writes[-1][1] if writes else self.store) + batch
            if not batch:
                continue
            started = time.perf_counter()
            batch = self._within_budget(batch, mempool)
            if not batch:
                continue
            txs, checked = [p.tx for p in batch], checked_at_signing(batch)
            outcomes, block, state = apply_and_seal(
                writes[-1][1] if writes else self.store, tip, self.store.genesis, self.key, txs, self.clock, checked
            )
            self._note_claims(batch, outcomes)
            # Settle the commits that are over, and the oldest while `depth` are under way; all of
            # them when nothing is sealed (the refusals were decided on their state: they are
            # answered once it is durable).
            failed = False
            while writes and (writes[0][0].done() or len(writes) >= depth or block is None or failed):
                written = await writes.popleft()[0]
                if not written:
                    failed = True
                elif not failed:  # the block above reads the store from now on
                    (writes[0][1] if writes else state).rebase(self.store)
            if failed:  # this batch was built on a block that was not committed: build it on the store
                tip = self.store.tip()
                outcomes, block, state = apply_and_seal(
                    self.store, tip, self.store.genesis, self.key, txs, self.clock, checked
                )
                self._note_claims(batch, outcomes)
            if block is None:
                self._answer(batch, outcomes)
                continue
            tip = block.header
            writes.append((asyncio.create_task(self._write_and_answer(batch, outcomes, block, state, started)), state))
        while writes:
            await writes.popleft()[0]
        while mempool:
            pending = mempool.popleft()
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(NodeUnavailable("the node is shutting down", error_code="shutting_down"))

    async def _write_and_answer(
        self, batch: list[_Pending], outcomes: list[Any], block: Block, state: WorkingState, started: float
    ) -> bool:
        try:
            await self.log.commit(block, state.changes())
        except Exception as exc:  # storage failure or fenced: nothing of this block was acknowledged
            if self.metrics is not None:
                self.metrics.block_write_failures.inc()
            if isinstance(exc, NodeUnavailable):  # the group refused the block (deposed, etcd unreachable)
                log.warning("block %d not committed: %s; %d transactions refused", block.height, exc, len(batch))
                refusal = exc
            else:
                log.exception("writing block %d failed; %d transactions refused", block.height, len(batch))
                refusal = NodeUnavailable(f"the block could not be stored: {exc}", error_code="storage_error")
            for p in batch:
                if p.future is not None and not p.future.done():
                    p.future.set_exception(refusal)
            return False
        log.debug("sealed block %d with %d transactions", block.height, block.header.tx_count)
        self._answer(batch, outcomes)
        if self.metrics is not None:
            self._observe(batch, outcomes, block, time.perf_counter() - started)
        self.feed.publish(block)
        if not MAKES_PENDING.isdisjoint(tx.type for tx in block.transactions):
            self.offers.notify()
        return True

    def _within_budget(self, batch: list[_Pending], mempool: deque[_Pending]) -> list[_Pending]:
        """The head of batch that fits in one block, finalized; the rest goes back to the head of
        the mempool (a lease expiry to the lease heap), in order, for the next block."""
        taken, waiting = take_within(batch, self.block_budget)
        for p in reversed(waiting):
            if p.future is None:
                heapq.heappush(self._leases, (p.tx.payload["lease_deadline"], p.tx.payload["job_id"]))
            else:
                mempool.appendleft(p)
        if self.refuse_oversize and len(taken) == 1 and not fits(taken[0].tx, self.block_budget):
            lone = taken[0]
            if lone.future is not None and not lone.future.done():
                lone.future.set_exception(
                    TooLarge(
                        f"this write's transaction takes {len(lone.tx.encoded)} bytes, more than a block holds "
                        f"({self.block_budget}); send a smaller one"
                    )
                )
            return []
        return taken

    def _answer(self, batch: list[_Pending], outcomes: list[Any]) -> None:
        for p, outcome in zip(batch, outcomes, strict=True):
            if p.future is None or p.future.done():
                continue
            if isinstance(outcome, LedgerError):
                p.future.set_exception(outcome)
            else:
                p.future.set_result(outcome)

    async def _collect(self, mempool: deque[_Pending], inflight: asyncio.Task[bool] | None) -> list[_Pending]:
        """Wait for work (or the next lease expiry), then gather up to one block's worth.

        After a first transaction, more are gathered until the block is full, or
        block_max_wait_ms has passed since the wait began, or the log has room for the block
        (`inflight`: the oldest block being committed when the log's depth is taken, else None)
        and then a step of quiet_s brings nothing. While that block is still being committed,
        sealing could only make what arrives meanwhile wait for a block more: the loop waits for
        the commit itself, not in quiet_s steps (which cost a turn of the event loop each, up to
        ten per block)."""
        if not mempool:
            self._idle = True
            try:
                await self._sleep(self._seconds_to_next_lease())
            finally:
                self._idle = False
            if not mempool:
                return []
        limit = self.params.max_block_txs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.params.block_max_wait_ms / 1000
        while len(mempool) < limit and not self._stopping:
            left = deadline - loop.time()
            if left <= 0:
                break
            if inflight is not None and not inflight.done():
                await self._sleep(left, until=inflight)
                continue
            before = len(mempool)
            await self._sleep(min(self.quiet_s, left))
            if len(mempool) == before:
                break
        return [mempool.popleft() for _ in range(min(limit, len(mempool)))]

    async def _sleep(self, seconds: float | None, until: asyncio.Future[Any] | None = None) -> None:
        """Sleep for seconds (None: until woken), or until wake(), or until `until` is done."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, _resolve, waiter)
        if until is not None:
            until.add_done_callback(waiter_done := lambda _: _resolve(waiter))
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
            if until is not None:
                until.remove_done_callback(waiter_done)

    # -- lease expiry ----------------------------------------------------------------
    # Running jobs' lease deadlines, soonest first, kept in memory: seeded from the lease index
    # once at start, then from every claim this producer seals. A busy chain churns that index
    # (a put per claim, a delete per completion), and scanning its deletions on every block
    # would cost more the longer the chain. Stale entries (the job completed, failed or was
    # requeued since) are dropped when they come due.
    def _seed_leases(self) -> None:
        self._leases = []
        for k, _ in self.store.iter_state(indexes.LEASES):
            deadline_hex, job_id = k.split(b"\x00", 1)
            self._leases.append((int(deadline_hex, 16), job_id.decode("utf-8")))
        heapq.heapify(self._leases)

    def _note_claims(self, batch: list[_Pending], outcomes: list[Any]) -> None:
        for p, outcome in zip(batch, outcomes, strict=True):
            if p.tx.type in CLAIMS and isinstance(outcome, dict):
                heapq.heappush(self._leases, (outcome["lease_deadline"], outcome["job_id"]))
                self.offers.claimed(outcome["job_id"], outcome["miner_id"])

    def _seconds_to_next_lease(self) -> float | None:
        if not self._leases:
            return None
        return max(0.0, (self._leases[0][0] - self.clock()) / 1000) + 0.001

    def _due_requeues(self, used: int, view: ReadableState) -> list[_Pending]:
        due: list[_Pending] = []
        room = self.params.max_block_txs - used
        cutoff = self.clock()
        while self._leases and self._leases[0][0] <= cutoff and len(due) < room:
            deadline, job_id = heapq.heappop(self._leases)
            raw = view.get(job_key(job_id))
            job = None if raw is None else decode(raw)
            if job is None or job["status"] != "running" or job["lease_deadline"] != deadline:
                continue  # the lease ended some other way
            payload = {"job_id": job_id, "lease_deadline": deadline}
            due.append(_Pending(Transaction("job.requeue", payload, cutoff), None))
        return due

    def _observe(self, batch: list[_Pending], outcomes: list[Any], block: Block | None, seconds: float) -> None:
        assert self.metrics is not None
        for p, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, LedgerError):
                self.metrics.transaction_rejected(p.tx.type, outcome.error_code)
        if block is not None:
            self.metrics.block_committed(block, seconds, self.params.max_block_txs)


def take_within(batch: list[_Pending], budget: int | None) -> tuple[list[_Pending], list[_Pending]]:
    """Split batch, in order, into the transactions that fit in budget bytes of a block (at least
    the first) and those that wait. Those taken get their final payload, from what the sequencer
    knows as their block is built (job.claim_next: the jobs on offer to polling miners); those
    that wait keep theirs to make when their block is built."""
    used = 0
    for i, p in enumerate(batch):
        tx = p.tx if p.finalize is None else Transaction(p.tx.type, p.finalize(p.tx.payload), p.tx.timestamp)
        used += len(tx.encoded) + 1  # and the comma before the next one
        if i and budget is not None and used > budget:
            return batch[:i], batch[i:]
        p.tx, p.finalize = tx, None
    return batch, []


def fits(tx: Transaction, budget: int | None) -> bool:
    return budget is None or len(tx.encoded) + 1 <= budget


def checked_at_signing(batch: list[_Pending]) -> Mapping[str, Signers]:
    """The receipt signers of the batch's completions this node signed, by transaction hash."""
    checked = {p.tx.hash.hex(): p.signers for p in batch if p.signers is not None}
    return checked or NOTHING_CHECKED


def apply_and_seal(
    base: ReadableState,
    prev: BlockHeader,
    genesis: Genesis,
    key: NodeKey,
    txs: list[Transaction],
    clock: Clock = now_ms,
    checked: Mapping[str, Signers] = NOTHING_CHECKED,
) -> tuple[list[dict[str, Any] | LedgerError], Block | None, WorkingState]:
    """Apply txs over `base` (whose tip is `prev`) and seal the valid ones into a block (not yet stored)."""
    timestamp = max(clock(), prev.timestamp, max(tx.timestamp for tx in txs))
    ctx = ApplyContext(time_ms=timestamp, genesis=genesis, checked=checked)
    state = open_block(base, timestamp, genesis)
    accepted: list[Transaction] = []
    outcomes: list[dict[str, Any] | LedgerError] = []
    for tx in txs:
        try:
            outcomes.append(apply_tx(state, tx, ctx))
            accepted.append(tx)
        except LedgerError as exc:
            outcomes.append(exc)
    if not accepted:
        return outcomes, None, state
    return outcomes, seal_block(prev, accepted, state, timestamp, key), state


def seal_now(
    store: Store, key: NodeKey, txs: list[Transaction], clock: Clock = now_ms
) -> tuple[list[dict[str, Any] | LedgerError], Block | None]:
    """Apply txs on the tip, seal the valid ones into one durable block, report each outcome."""
    outcomes, block, state = apply_and_seal(store, store.tip(), store.genesis, key, txs, clock)
    if block is not None:
        store.write_block(block, state.changes())
        log.debug("sealed block %d with %d transactions", block.height, len(block.transactions))
    return outcomes, block
