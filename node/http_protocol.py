"""uvicorn's httptools protocol with a deadline for receiving each whole request, and one
system call per response.

uvicorn's keep-alive timeout only covers idle time between requests, and it is reset by
every byte received, so a client trickling a request one byte at a time (slowloris) could
hold a connection forever. Here each request (headers and body) must arrive within
`request_timeout` seconds of its first byte, and a new connection must start a request
within the same time; otherwise the connection is closed. Responses, however slow or
long, are never cut: the deadline is disarmed once the request is in.

uvicorn writes a response's head and its body to the transport separately, and the event
loop sends each write at once: two system calls (and two TCP segments) per answer. Here what
a connection writes within one turn of the loop goes out in one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("aitbc.http")


class CoalescingTransport:
    """A connection's transport, whose writes within one turn of the event loop are sent together
    at the end of that turn (in order, before anything that closes or ends the connection)."""

    __slots__ = ("transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            pending.append(data)

    def flush(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if not self.transport.is_closing():
                self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + sum(map(len, self._pending or ()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


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
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
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
        if isinstance(self.transport, CoalescingTransport):  # the WebSocket protocol gets the real one
            self.transport.flush()
            self.transport = self.transport.transport
        super().handle_websocket_upgrade()


def protocol_with_deadline(request_timeout: float) -> type[DeadlineHttpToolsProtocol]:
    attrs: dict[str, Any] = {"request_timeout": request_timeout}
    return type("DeadlineHttpToolsProtocol", (DeadlineHttpToolsProtocol,), attrs)
