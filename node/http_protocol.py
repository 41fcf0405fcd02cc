"""uvicorn's httptools protocol with a deadline for receiving each whole request.

uvicorn's keep-alive timeout only covers idle time between requests, and it is reset by
every byte received, so a client trickling a request one byte at a time (slowloris) could
hold a connection forever. Here each request (headers and body) must arrive within
`request_timeout` seconds of its first byte, and a new connection must start a request
within the same time; otherwise the connection is closed. Responses, however slow or
long, are never cut: the deadline is disarmed once the request is in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("aitbc.http")


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    request_timeout: float = 30.0
    _due: float | None = None
    """When the request being received must be complete (loop time); None when none is."""
    _deadline: asyncio.TimerHandle | None = None
    """The connection's one timer, at or before _due. A request that ends does not cancel it:
    when it fires it closes the connection only if a request is then overdue, and otherwise
    re-arms for the request in progress, if any, so a request costs no timer of its own."""

    def _arm(self) -> None:
        if self._due is not None:
            return  # a deadline runs already (the connection's, for its first request)
        self._due = self.loop.time() + self.request_timeout
        if self._deadline is None:
            self._deadline = self.loop.call_at(self._due, self._expire)

    def _disarm(self) -> None:
        self._due = None

    def _expire(self) -> None:
        self._deadline = None
        if self._due is None:
            return
        if self._due > self.loop.time():
            self._deadline = self.loop.call_at(self._due, self._expire)
            return
        self._due = None
        if not self.transport.is_closing():
            log.warning("closing a connection that did not send its request within %.0f s", self.request_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._arm()
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def protocol_with_deadline(request_timeout: float) -> type[DeadlineHttpToolsProtocol]:
    attrs: dict[str, Any] = {"request_timeout": request_timeout}
    return type("DeadlineHttpToolsProtocol", (DeadlineHttpToolsProtocol,), attrs)
