"""Recent chain activity for the explorer: per-minute counts over the last hour, recent block sizes.

Kept in memory and fed by the node's BlockFeed, so a stats read costs the same on a chain of
any length. When the node starts, a worker thread loads the last hour from the store (a
binary search for the first block of the hour, block timestamps never decreasing, then a
forward read capped at WARM_UP_BLOCKS blocks) and merges it in; requests never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.blocks import Block
from node.store import Store

log = logging.getLogger("aitbc.explorer")

MINUTE_MS = 60_000
WINDOW_MINUTES = 60
RECENT_BLOCKS = 60
WARM_UP_BLOCKS = 5_000


@dataclass
class MinuteCounts:
    blocks: int = 0
    transactions: int = 0
    jobs: int = 0
    receipts: int = 0


class Activity:
    """What happened on chain in each of the last WINDOW_MINUTES minutes."""

    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self.height = -1
        """The highest block counted; a block at or below it is not counted again."""
        self._minutes: dict[int, MinuteCounts] = {}
        self._recent: deque[tuple[int, int, int]] = deque(maxlen=RECENT_BLOCKS)

    def _first_height_since(self, since_ms: int, tip: int) -> int:
        """The lowest height whose block is not older than since_ms (tip + 1 if none is)."""
        low, high = 0, tip + 1
        while low < high:
            mid = (low + high) // 2
            block = self.store.block(mid)
            if block is not None and block.header.timestamp < since_ms:
                low = mid + 1
            else:
                high = mid
        return low

    def history(self, tip: int) -> Activity:
        """The activity of the blocks up to `tip` in the last hour (run in a worker thread)."""
        past = Activity(self.store, self.clock)
        since = (self.clock() // MINUTE_MS - WINDOW_MINUTES + 1) * MINUTE_MS
        start = min(self._first_height_since(since, tip), max(tip - RECENT_BLOCKS + 1, 0))
        for height in range(max(start, tip - WARM_UP_BLOCKS + 1, 0), tip + 1):
            block = self.store.block(height)
            if block is not None:
                past.ingest(block)
        return past

    def merge(self, past: Activity) -> None:
        """Add the history (blocks before any this one counted live)."""
        for minute, counts in past._minutes.items():
            mine = self._minutes.setdefault(minute, MinuteCounts())
            mine.blocks += counts.blocks
            mine.transactions += counts.transactions
            mine.jobs += counts.jobs
            mine.receipts += counts.receipts
        recent = [*past._recent, *self._recent]
        self._recent.clear()
        self._recent.extend(recent)

    def ingest(self, block: Block) -> None:
        """Count a newly durable block (idempotent: a block already counted is ignored)."""
        if block.height <= self.height:
            return
        self.height = block.height
        header = block.header
        self._recent.append((block.height, header.tx_count, header.timestamp))
        counts = self._minutes.setdefault(header.timestamp // MINUTE_MS, MinuteCounts())
        counts.blocks += 1
        counts.transactions += header.tx_count
        counts.jobs += sum(1 for tx in block.transactions if tx.type == "job.submit")
        counts.receipts += sum(1 for tx in block.transactions if tx.type == "job.complete")
        oldest = self.clock() // MINUTE_MS - WINDOW_MINUTES
        for minute in [m for m in self._minutes if m <= oldest]:
            del self._minutes[minute]

    def last_hour(self) -> list[tuple[int, MinuteCounts]]:
        """(minute start in Unix ms, counts) for each of the last 60 minutes, oldest first."""
        now_minute = self.clock() // MINUTE_MS
        minutes = range(now_minute - WINDOW_MINUTES + 1, now_minute + 1)
        return [(m * MINUTE_MS, self._minutes.get(m, MinuteCounts())) for m in minutes]

    def recent_blocks(self) -> list[tuple[int, int, int]]:
        """(height, transaction count, timestamp ms) of up to the last 60 blocks, oldest first."""
        return list(self._recent)


def activity_for(app: Any) -> Activity:
    """The app's Activity: counting live blocks from the node's feed at once, while a worker
    thread loads the last hour before it (registered with the node, which waits for it)."""
    activity: Activity | None = getattr(app.state, "explorer_activity", None)
    if activity is None:
        node = app.state.node
        activity = Activity(node.store, node.clock)
        activity.height = node.store.tip().height
        node.feed.subscribe(activity.ingest)
        app.state.explorer_activity = activity
        task = asyncio.get_running_loop().create_task(_load_history(activity, activity.height), name="explorer history")
        node.background.add(task)
        task.add_done_callback(node.background.discard)
    return activity


async def _load_history(activity: Activity, tip: int) -> None:
    try:
        activity.merge(await asyncio.to_thread(activity.history, tip))
    except Exception:  # the store closed under it (shutdown): the explorer simply starts empty
        log.debug("loading the last hour of activity stopped", exc_info=True)
