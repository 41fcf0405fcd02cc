"""The one module that relies on Starlette's and uvicorn's internals, and why each pays.

pyproject.toml pins both frameworks to the range this module was tested with, and
tests/node/test_framework_contract.py checks every internal it relies on, with a message
naming what moved. Everything else in the node uses their public APIs only.

1. FastRouter: Starlette's Router, which finds a plain route by looking its path up by segments
   instead of trying each route's regex in order, and calls its endpoint directly instead of
   through the route's request_response wrapper. It sits where the Router sits, inside the
   app's middleware stack, so every middleware (ours, CORS, any added to the app) and the
   app's exception handlers run on these routes as on any other. Relies on: the code object of
   request_response's wrapper (to tell a route without route middleware), Route's path,
   endpoint, methods and param_convertors, and the scope keys a matched route sets.
   Plain routing costs ~4% of the lifecycle's throughput (`python -m bench load --workload lifecycle`).

2. The HTTP protocol: uvicorn's httptools protocol (not a public API), subclassed for a deadline
   for receiving each whole request and for one system call per response. It earns its place
   through security (slowloris), not speed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute, request_response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("aitbc.http")

# --- 1. Routing --------------------------------------------------------------------------------

Segments = tuple[str | None, ...]
"""A route's path split at '/': the literal segments, and None where a parameter stands."""


async def _probe(request: Request) -> Response:  # pragma: no cover - never called
    raise NotImplementedError


_PLAIN_APP = request_response(_probe).__code__
"""The code of Starlette's endpoint wrapper (internal): a Route whose app runs it has no route middleware."""


def segments_of(route: BaseRoute) -> Segments | None:
    """The route's segments, if FastRouter can serve it directly; else None."""
    if not isinstance(route, Route) or getattr(route.app, "__code__", None) is not _PLAIN_APP:
        return None
    if not inspect.iscoroutinefunction(route.endpoint):
        return None
    if any(not isinstance(c, StringConvertor) for c in route.param_convertors.values()):
        return None
    out: list[str | None] = []
    for part in route.path.split("/"):
        if part.startswith("{") and part.endswith("}") and part[1:-1] in route.param_convertors:
            out.append(None)
        elif "{" in part or "}" in part:
            return None  # a parameter inside a segment
        else:
            out.append(part)
    if len(route.param_convertors) != out.count(None):
        return None
    return tuple(out)


class _Entry:
    __slots__ = ("index", "route", "endpoint", "methods", "params")

    def __init__(self, index: int, route: Route, segments: Segments) -> None:
        self.index = index
        self.route = route
        self.endpoint = route.endpoint
        self.methods = route.methods
        names = [name for name in route.param_convertors]
        # compile_path numbers parameters in path order, so the names line up with the Nones
        self.params = tuple(
            (position, names[i]) for i, position in enumerate(p for p, s in enumerate(segments) if s is None)
        )


class RouteTable:
    """Routes by segment count and by the positions of their parameters."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        # segment count -> [(parameter positions, {key segments: [entries in route order]})]
        self._by_count: dict[int, list[tuple[tuple[int, ...], dict[Segments, list[_Entry]]]]] = {}
        self._others: list[tuple[int, BaseRoute]] = []
        """Routes matched only by Starlette; one before the route found might match first."""
        for index, route in enumerate(routes):
            segments = segments_of(route)
            if segments is None:
                if not isinstance(route, WebSocketRoute):  # never matches an HTTP request
                    self._others.append((index, route))
                continue
            assert isinstance(route, Route)
            positions = tuple(p for p, s in enumerate(segments) if s is None)
            shapes = self._by_count.setdefault(len(segments), [])
            table = next((t for p, t in shapes if p == positions), None)
            if table is None:
                table = {}
                shapes.append((positions, table))
            table.setdefault(segments, []).append(_Entry(index, route, segments))

    def find(self, scope: Scope) -> tuple[Route, Any, dict[str, str]] | None:
        """The route, endpoint and path parameters Starlette would pick, or None when unsure."""
        if scope.get("root_path"):
            return None
        parts = scope["path"].split("/")
        shapes = self._by_count.get(len(parts))
        if shapes is None:
            return None
        method = scope["method"]
        best: _Entry | None = None
        for positions, table in shapes:
            if positions:
                key = list(parts)
                for p in positions:
                    if not parts[p]:
                        break  # an empty segment is no parameter
                    key[p] = None
                else:
                    entries = table.get(tuple(key))
                    if entries:
                        best = _first_allowing(entries, method, best)
            else:
                entries = table.get(tuple(parts))
                if entries:
                    best = _first_allowing(entries, method, best)
        if best is None:
            return None
        for index, other in self._others:
            if index > best.index:
                break
            if other.matches(scope)[0] is Match.FULL:
                return None
        return best.route, best.endpoint, {name: parts[p] for p, name in best.params}


def _first_allowing(entries: list[_Entry], method: str, best: _Entry | None) -> _Entry | None:
    for entry in entries:
        if best is not None and entry.index > best.index:
            return best
        if entry.methods is None or method in entry.methods:
            return entry
    return best


class FastRouter(Router):
    """Starlette's Router, serving what RouteTable finds by calling its endpoint directly; the
    rest (no route, 405, Mounts, {name:path} routes that might come first, WebSockets, the
    lifespan) goes to Router.app unchanged. An endpoint's exception goes up to the app's
    ExceptionMiddleware, which answers it with the same handler the route's own wrapper would
    have used. A route added after the router was built is served by Router.app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = RouteTable(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.table.find(scope) if scope["type"] == "http" else None
        if found is None:
            await super().app(scope, receive, send)
            return
        route, endpoint, params = found
        if "router" not in scope:
            scope["router"] = self
        scope["route"] = route
        scope["endpoint"] = endpoint
        scope["path_params"] = params
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


# --- 2. The HTTP protocol ----------------------------------------------------------------------
# uvicorn's httptools protocol with a deadline for receiving each whole request, and one
# system call per response.
#
# uvicorn's keep-alive timeout only covers idle time between requests, and it is reset by
# every byte received, so a client trickling a request one byte at a time (slowloris) could
# hold a connection forever. Here each request (headers and body) must arrive within
# `request_timeout` seconds of its first byte, and a new connection must start a request
# within the same time; otherwise the connection is closed. Responses, however slow or
# long, are never cut: the deadline is disarmed once the request is in.
#
# uvicorn writes a response's head and its body to the transport separately, and the event
# loop sends each write at once: two system calls (and two TCP segments) per answer. Here what
# a connection writes within one turn of the loop goes out in one.


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


LINGER_S = 2.0
LINGER_BYTES = 4 * 1024 * 1024
"""After answering a request that was not all in (a 413 on its Content-Length, a 431), the
connection reads and drops at most LINGER_BYTES for at most LINGER_S: a client still sending
reads the answer instead of a reset (nginx's lingering close), and cannot hold the connection.
A body that ends within that leaves the connection kept alive for the next request."""
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """Per connection: the request line and headers must arrive within header_timeout of their
    first byte (or of the connection), and the whole request within request_timeout; the head
    may hold max_header_bytes (431 past it). Per client address: at most max_pending_per_ip
    connections may be receiving a request at once (a connection counts from its opening, and
    from each request's first byte, until that request is in); one more is closed at once,
    before uvicorn's global --max-connections counts it, so one address cannot take the
    node's capacity from everyone else."""

    request_timeout: float = 30.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_pending_per_ip: int = 256
    pending_by_ip: Counter[str] = Counter()
    """Connections receiving a request, by client address (one Counter per server)."""
    _due: float | None = None
    """When the request being received must be complete (loop time); None when none is."""
    _started: float = 0.0
    """When the request being received started (loop time)."""
    _deadline: asyncio.TimerHandle | None = None
    """The connection's one timer, at or before _due. A request that ends does not cancel it:
    when it fires it closes the connection only if a request is then overdue, and otherwise
    re-arms for the request in progress, if any, so a request costs no timer of its own."""
    _in_head = True
    """The request line and headers of a request are being received (or are next)."""
    _head_bytes = 0
    _tail = b""
    """The last bytes of the head seen so far, where the blank line ending it may begin."""
    _pending_ip: str | None = None
    """The address this connection is counted under in pending_by_ip, while it is."""
    _lingering: int | None = None
    """Bytes still to drop before closing, once the answer went out ahead of its request's head."""
    _draining: int | None = None
    """Bytes of an answered request's body still allowed in before the connection is closed."""

    def _arm(self) -> None:
        if self._due is not None:
            return  # a deadline runs already (the connection's, for its first request)
        self._started = self.loop.time()
        self._due = self._started + self.header_timeout
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
            part, limit = ("headers", self.header_timeout) if self._in_head else ("request", self.request_timeout)
            log.info("closing a connection that did not send its %s within %.0f s", part, limit)
            self.transport.close()

    def _count_pending(self) -> bool:
        """Count this connection as receiving a request; False if its address is at its cap."""
        if self._pending_ip is not None:
            return True
        ip = self.client[0] if self.client else ""
        if self.pending_by_ip[ip] >= self.max_pending_per_ip:
            return False
        self.pending_by_ip[ip] += 1
        self._pending_ip = ip
        return True

    def _uncount_pending(self) -> None:
        ip, self._pending_ip = self._pending_ip, None
        if ip is not None:
            self.pending_by_ip[ip] -= 1
            if self.pending_by_ip[ip] <= 0:
                del self.pending_by_ip[ip]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn declares BaseTransport
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]  # it quacks as a Transport
        if not self._count_pending():
            log.debug("refusing a connection: its address has %d receiving a request", self.max_pending_per_ip)
            self.transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._uncount_pending()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._lingering -= len(data)
            if self._lingering <= 0 and not self.transport.is_closing():
                self.transport.close()
            return
        if self._draining is not None:
            self._draining -= len(data)
            if self._draining < 0 and not self.transport.is_closing():
                self.transport.close()
                return
        if self._in_head and self.parser is not None:
            # The head's size, counted before the parser sees it: up to the blank line that
            # ends it, which may straddle two reads.
            tail = self._tail
            across = (tail + data[:3]).find(b"\r\n\r\n") if tail else -1
            end = across - len(tail) if across >= 0 else data.find(b"\r\n\r\n")
            size = len(data) if end < 0 else end + 4
            if self._head_bytes + size > self.max_header_bytes:
                self._refuse_head()
                return
            self._head_bytes += size
            self._tail = data[-3:] if len(data) >= 3 else (tail + data)[-3:]
        super().data_received(data)

    def _refuse_head(self) -> None:
        body = (
            b'{"detail":"the request line and headers exceed %d bytes","error_code":"headers_too_large"}'
            % self.max_header_bytes
        )
        self.transport.write(HEAD_TOO_LARGE % (len(body), body))
        self._linger()

    def _linger(self) -> None:
        """Stop parsing: drop what still arrives (LINGER_BYTES at most), close after LINGER_S."""
        self._disarm()
        self._uncount_pending()
        self._lingering = LINGER_BYTES
        if self.flow is not None:
            self.flow.resume_reading()
        self.loop.call_later(LINGER_S, self._end_linger)

    def _end_linger(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        if not self._count_pending():
            log.debug("closing a connection: its address has %d receiving a request", self.max_pending_per_ip)
            self.transport.close()
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._tail = False, 0, b""
        if self._due is not None:
            self._due = self._started + self.request_timeout  # the timer re-arms for it when it fires
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._uncount_pending()
        self._draining = None
        self._in_head = True  # what comes next is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # Answered before its body was all in (413): the rest of the body is parsed and
            # dropped, within LINGER_BYTES and LINGER_S, or the connection is closed.
            self._draining = LINGER_BYTES
            self.loop.call_later(LINGER_S, self._end_drain)
        super().on_response_complete()

    def _end_drain(self) -> None:
        if self._draining is not None and not self.transport.is_closing():
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._uncount_pending()
        if isinstance(self.transport, CoalescingTransport):  # the WebSocket protocol gets the real one
            self.transport.flush()
            self.transport = self.transport.transport
        super().handle_websocket_upgrade()


def protocol_with_deadline(
    request_timeout: float,
    header_timeout: float = 10.0,
    max_header_bytes: int = 64 * 1024,
    max_pending_per_ip: int = 256,
) -> type[DeadlineHttpToolsProtocol]:
    """The protocol class for one server, with its limits and its own per-address count."""
    attrs: dict[str, Any] = {
        "request_timeout": request_timeout,
        "header_timeout": min(header_timeout, request_timeout),
        "max_header_bytes": max_header_bytes,
        "max_pending_per_ip": max_pending_per_ip,
        "pending_by_ip": Counter(),
    }
    return type("DeadlineHttpToolsProtocol", (DeadlineHttpToolsProtocol,), attrs)
