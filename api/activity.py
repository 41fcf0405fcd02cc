"""Recent chain activity for the explorer: per-minute counts over the last hour, recent block sizes.

Kept in memory and fed by the node's BlockFeed, so a stats read costs the same on a chain of
any length. On first use it loads the last hour from the store: a binary search for the
first block of the hour (block timestamps never decrease), then a forward read, capped at
WARM_UP_BLOCKS blocks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.blocks import Block
from node.store import Store

MINUTE_MS = 60_000
WINDOW_MINUTES = 60
RECENT_BLOCKS = 60
WARM_UP_BLOCKS = 20_000


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
        self._warm_up()

    def _first_height_since(self, since_ms: int) -> int:
        """The lowest height whose block is not older than since_ms (tip + 1 if none is)."""
        low, high = 0, self.store.tip().height + 1
        while low < high:
            mid = (low + high) // 2
            block = self.store.block(mid)
            if block is not None and block.header.timestamp < since_ms:
                low = mid + 1
            else:
                high = mid
        return low

    def _warm_up(self) -> None:
        tip = self.store.tip().height
        since = (self.clock() // MINUTE_MS - WINDOW_MINUTES + 1) * MINUTE_MS
        start = min(self._first_height_since(since), max(tip - RECENT_BLOCKS + 1, 0))
        start = max(start, tip - WARM_UP_BLOCKS + 1, 0)
        for height in range(start, tip + 1):
            block = self.store.block(height)
            if block is not None:
                self.ingest(block)

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
    """The app's Activity, created on first use and subscribed to the node's block feed."""
    activity: Activity | None = getattr(app.state, "explorer_activity", None)
    if activity is None:
        node = app.state.node
        activity = Activity(node.store, node.clock)
        node.feed.subscribe(activity.ingest)
        app.state.explorer_activity = activity
    return activity
