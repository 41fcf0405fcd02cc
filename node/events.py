"""The block feed: whoever makes a block durable (producer or sync) publishes it here.

Listeners run on the event loop, right after the block is on disk; they must be quick and
never block (the explorer's websocket and the chain websocket hand off to bounded queues).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chain.blocks import Block

log = logging.getLogger("aitbc.events")

Listener = Callable[[Block], None]


class BlockFeed:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def subscribers(self) -> int:
        return len(self._listeners)

    def publish(self, block: Block) -> None:
        for listener in list(self._listeners):
            try:
                listener(block)
            except Exception:
                log.exception("a block listener failed")
