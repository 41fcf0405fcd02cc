"""Caps on open WebSocket connections, per client address and in total, and on what a client may
send over one, shared by every feed (the API's block feed for followers and the website's live
feed), and the close codes they send. (The size of one inbound message is capped by the server:
node.server passes --ws-max-message-bytes to uvicorn, which closes with 1009 past it.)"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

TRY_AGAIN_LATER = 1013
"""Close code: "overloaded; try again later" (RFC 6455, IANA registry): the node is at its caps,
or the client fell behind its feed and was dropped."""
POLICY_VIOLATION = 1008
"""Close code: the client broke the feed's rules (RFC 6455 section 7.4.1), e.g. a refused key."""


class WebSocketLimiter:
    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip = per_ip
        self.total = total
        self._open: Counter[str] = Counter()

    @property
    def open_connections(self) -> int:
        return sum(self._open.values())

    def refusal(self, ip: str) -> str | None:
        """Why a new connection from ip may not open now, or None when it may."""
        if self.open_connections >= self.total:
            return f"the node already serves {self.total} live connections"
        if self._open[ip] >= self.per_ip:
            return f"your address already has {self.per_ip} live connections"
        return None

    @contextmanager
    def hold(self, ip: str) -> Iterator[None]:
        self._open[ip] += 1
        try:
            yield
        finally:
            self._open[ip] -= 1
            if self._open[ip] <= 0:
                del self._open[ip]


def client_ip(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client else "unknown"


async def refuse_if_over(websocket: WebSocket, limiter: WebSocketLimiter) -> bool:
    """When the limits are reached: accept, close with 1013 and the reason, and say so (True)."""
    reason = limiter.refusal(client_ip(websocket))
    if reason is None:
        return False
    await websocket.accept()
    await websocket.close(code=TRY_AGAIN_LATER, reason=reason)
    return True


def limited(serve: Callable[[WebSocket], Awaitable[None]]) -> Callable[[WebSocket], Awaitable[None]]:
    """Wrap a WebSocket endpoint so that it runs only within the app's connection caps."""

    async def endpoint(websocket: WebSocket) -> None:
        limiter: WebSocketLimiter = websocket.app.state.ws_limiter
        if await refuse_if_over(websocket, limiter):
            return
        with limiter.hold(client_ip(websocket)):
            await serve(websocket)

    return endpoint


MESSAGE_BURST = 10
"""Inbound messages a client may send at once before --ws-messages-per-s applies."""


class MessageBudget:
    """A token bucket over the messages a client sends on one connection."""

    def __init__(self, rate: float, burst: int = MESSAGE_BURST, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def spend(self) -> bool:
        """Take one message's token; False when the client is over its rate (0 = no limit)."""
        if self.rate <= 0:
            return True
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


async def receive_within(websocket: WebSocket, budget: MessageBudget) -> Message | None:
    """The client's next message, or None once it has gone: it disconnected, or it sent faster
    than its budget allows and was closed with 1008 and the reason."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    if budget.spend():
        return message
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.close(POLICY_VIOLATION, f"more than {budget.rate:g} messages a second")
    return None


def message_budget(websocket: WebSocket) -> MessageBudget:
    """The budget of one connection, at the node's --ws-messages-per-s."""
    return MessageBudget(websocket.app.state.node.config.ws_messages_per_s)
