"""Keep the churny secondary indexes compact, so that reads over them stay flat as the chain grows.

Status, lease and pending indexes take a put and a delete for every job that moves on.
LevelDB keeps each delete as a tombstone until a compaction reaches the bottom level, and an
iterator has to step over every tombstone between two live keys; on a long chain that makes a
listing cost grow with history. This compacts the index key range in a worker thread: once
shortly after start, then after every `every` index entries deleted (the store counts them as
it writes blocks; a job's claim and its completion delete several each), and whenever writes
pause after a burst of them. Blocks that only add entries (a burst of submissions) cost no
compaction: there is nothing in them for one to clear. LevelDB drops a tombstone for a key
written only recently at its first compaction; the sooner that comes, the fewer a newest-first
listing steps over. `GET /v1/jobs?status=pending` after a burst of job churn: ~0.25 ms a
request, against ~1.9 ms compacting every 50,000 transactions (`python -m bench scale`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from chain.blocks import Block
from node.store import Store

log = logging.getLogger("aitbc.compaction")


class IndexCompactor:
    """Compacts after every `every` index deletions, and also once writes pause for
    `idle_after_s` with at least `idle_min` since the last time, so that a burst of job
    churn does not leave its tombstones in the way of the reads that follow it."""

    def __init__(self, store: Store, every: int = 20_000, *, idle_after_s: float = 2.0, idle_min: int = 2_000) -> None:
        self.store = store
        self.every = every
        self.idle_after_s = idle_after_s
        self.idle_min = idle_min
        self._since = every  # compact once soon after start: a restart may find old tombstones
        self._counted = store.index_deletions
        self._running: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._running is not None and not self._running.done()

    def on_block(self, block: Block) -> None:
        counted = self.store.index_deletions
        self._since += counted - self._counted
        self._counted = counted
        self.maybe_start()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = None
        if self._since >= self.idle_min:
            self._idle_timer = asyncio.get_running_loop().call_later(self.idle_after_s, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self._since >= self.idle_min:
            self._start()

    def maybe_start(self) -> None:
        if self._since >= self.every:
            self._start()

    def _start(self) -> None:
        if self._running is not None and not self._running.done():
            return
        self._since = 0
        self._running = asyncio.get_running_loop().run_in_executor(None, self._compact)

    def _compact(self) -> None:
        started = time.perf_counter()
        self.store.compact_indexes()
        log.info("compacted the secondary indexes in %.2f s", time.perf_counter() - started)

    async def stop(self) -> None:
        """Wait for a compaction in progress: the store must not close under it."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
