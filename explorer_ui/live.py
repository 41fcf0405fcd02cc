"""The live feed at /explorer/ws: a snapshot on connect, then one message per new block.

Blocks come from the node's BlockFeed on the event loop. Each block's message is serialised
once and offered to every subscriber's bounded queue without waiting; a subscriber whose
queue is full is too slow and is dropped, so no client can slow block production. `seq` is
the block height: it only increases, and a gap tells a client it missed blocks (it may send
{"type": "snapshot"} for a fresh snapshot, or reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from chain.blocks import Block
from node.ledger import explorer
from node.ledger.activity import Activity, activity_for
from node.websocket_limits import TRY_AGAIN_LATER, limited, message_budget, receive_within

log = logging.getLogger("aitbc.explorer")

SNAPSHOT_BLOCKS = 10
CLOSE_GRACE_S = 2.0
MAX_CLIENT_MESSAGE_CHARS = 1024


class Subscriber:
    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.dropped = asyncio.Event()
        self.seq = -1
        """The highest block height sent (or in its snapshot); older blocks are not sent again."""

    def offer(self, message: str) -> bool:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True


class LiveFeed:
    """The subscribers of one app, fed from its node's BlockFeed."""

    def __init__(self, node: Any, activity: Activity, queue_size: int) -> None:
        self.node = node
        self.activity = activity
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0
        node.feed.subscribe(self.on_block)

    def _stats(self) -> dict[str, Any]:
        return explorer.stats_data(self.node.store, self.activity, self.node.clock())

    def snapshot(self, sub: Subscriber) -> str:
        store = self.node.store
        blocks = explorer.blocks_data(store, SNAPSHOT_BLOCKS, None)
        sub.seq = max(sub.seq, blocks[0]["height"] if blocks else -1)
        return json.dumps({"type": "snapshot", "seq": sub.seq, "blocks": blocks, "stats": self._stats()})

    def join(self) -> Subscriber:
        """A new subscriber, its queue holding the snapshot. (How many may join is capped by the
        app's WebSocketLimiter, --ws-max in total and --ws-per-ip per address.)"""
        sub = Subscriber(self.queue_size)
        sub.offer(self.snapshot(sub))
        self.subscribers.add(sub)
        return sub

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def on_block(self, block: Block) -> None:
        """Called on the event loop once a block is durable; never waits."""
        self.activity.ingest(block)
        waiting = [s for s in self.subscribers if s.seq < block.height]
        if not waiting:
            return
        message = json.dumps(
            {"type": "block", "seq": block.height, "block": explorer.block_summary(block), "stats": self._stats()}
        )
        for sub in waiting:
            if sub.offer(message):
                sub.seq = block.height
            else:
                self.drop(sub)

    def drop(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.dropped += 1
        sub.dropped.set()
        log.warning("explorer live feed: dropped a slow client (its queue of %d messages was full)", self.queue_size)


def live_feed(app: Any) -> LiveFeed:
    feed: LiveFeed | None = getattr(app.state, "explorer_live", None)
    if feed is None:
        node = app.state.node
        feed = LiveFeed(node, activity_for(app), node.config.explorer_ws_queue)
        app.state.explorer_live = feed
    return feed


async def _send(websocket: WebSocket, sub: Subscriber) -> None:
    while True:
        await websocket.send_text(await sub.queue.get())


async def _listen(websocket: WebSocket, feed: LiveFeed, sub: Subscriber) -> None:
    """Read what the client sends: a snapshot request, or its goodbye."""
    budget = message_budget(websocket)
    while True:
        message = await receive_within(websocket, budget)
        if message is None:
            return
        text = message.get("text")
        if not isinstance(text, str) or len(text) > MAX_CLIENT_MESSAGE_CHARS:
            continue
        with contextlib.suppress(ValueError):
            request = json.loads(text)
            if isinstance(request, dict) and request.get("type") == "snapshot" and not sub.offer(feed.snapshot(sub)):
                feed.drop(sub)


@limited
async def feed_endpoint(websocket: WebSocket) -> None:
    feed = live_feed(websocket.app)
    await websocket.accept()
    sub = feed.join()
    tasks = [
        asyncio.create_task(_send(websocket, sub)),
        asyncio.create_task(_listen(websocket, feed, sub)),
        asyncio.create_task(sub.dropped.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        feed.leave(sub)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if sub.dropped.is_set():
        # The close frame waits behind what the client has not read; do not wait for it long.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(
                websocket.close(TRY_AGAIN_LATER, "too slow: fell behind the block feed"), CLOSE_GRACE_S
            )
