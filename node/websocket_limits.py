"""Caps on open WebSocket connections, per client address and in total, shared by every feed
(the API's block feed for followers and the website's live feed), and the close codes they send."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from starlette.websockets import WebSocket

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
