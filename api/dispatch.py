"""Direct dispatch: a request for a plain route goes straight to its endpoint.

Starlette finds a request's route by trying every route's regex in order, then runs the
endpoint inside four layers (ServerErrorMiddleware, our RequestMiddleware, ExceptionMiddleware,
then the route's own exception handling), each with its own send wrapper. FastDispatch, in
front of them all, does the same work once: it looks the path up by its segments in a table
built from the app's own route list, calls the endpoint, turns an exception into the response
of the app's exception handler for it, adds the headers every answer carries and sends it.
Whatever the table cannot answer for certain (no route, a method the route does not take, a
Mount or a {name:path} route that might come first, a root_path) goes to the Starlette stack,
unchanged.

The table picks the route Starlette would: the first route, in list order, that matches
both the path and the method. A route takes part only when its endpoint is an async
function that Starlette wraps plainly (no route middleware) and its parameters are whole
path segments of the default str type; every other route is checked by Starlette's own
matching whenever it comes before the route found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette._utils import is_async_callable
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware import add_own_headers, header_value, record_request, request_id_of
from node.logging_setup import request_id
from node.metrics import NodeMetrics

Handler = Callable[[Request, Exception], Any]
Segments = tuple[str | None, ...]
"""A route's path split at '/': the literal segments, and None where a parameter stands."""


async def _probe(request: Request) -> Response:  # pragma: no cover - never called
    raise NotImplementedError


_PLAIN_APP = request_response(_probe).__code__  # type: ignore[attr-defined]
"""The code of Starlette's endpoint wrapper: a route whose app runs it has no route middleware."""


def segments_of(route: BaseRoute) -> Segments | None:
    """The route's segments, if FastDispatch can serve it; else None."""
    if not isinstance(route, Route) or getattr(route.app, "__code__", None) is not _PLAIN_APP:
        return None
    if not is_async_callable(route.endpoint):
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


class FastDispatch:
    """The outermost layer: serves what RouteTable finds, whole; passes the rest down.

    For a request it serves, it also does what api.middleware.RequestMiddleware and Starlette's
    ServerErrorMiddleware do for the rest (request id, access log, metrics, the headers every
    answer carries, and the 500 of an unexpected error, which then goes up to uvicorn's log as
    from Starlette), without wrapping `send`: the headers are added to the response before it
    is sent. `app` is the app's whole Starlette stack. `handlers` is the app's whole exception
    handler map (api.errors.EXCEPTION_HANDLERS: HTTPException, and Exception for the 500).
    With CORS origins configured, a request that carries an Origin goes down to the stack,
    whose CORS middleware answers it."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        handlers: Mapping[Any, Handler],
        *,
        metrics: NodeMetrics | None = None,
        node: Any = None,
        cors: bool = False,
    ) -> None:
        self.app = app
        self.table = RouteTable(routes)
        self.handlers = {k: v for k, v in handlers.items() if isinstance(k, type)}
        self.status_handlers = {k: v for k, v in handlers.items() if isinstance(k, int) and k != 500}
        self.unexpected = self.handlers.pop(Exception, None) or handlers.get(500)
        """The 500 handler, for what no other handler takes."""
        self.metrics = metrics
        self.node = node
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.table.find(scope) if scope["type"] == "http" else None
        if found is None or (self.cors and header_value(scope["headers"], b"origin") is not None):
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        route, endpoint, params = found
        if "router" not in scope:
            scope["router"] = scope["app"].router
        scope["route"] = route
        scope["endpoint"] = endpoint
        scope["path_params"] = params
        request = Request(scope, receive, send)
        unexpected: Exception | None = None
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = self._handler_for(exc)
                if handler is None:
                    if self.unexpected is None:
                        raise
                    handler, unexpected = self.unexpected, exc
                response = await handler(request, exc)
                if unexpected is None:
                    exc.__traceback__ = None  # as Starlette does: a reused exception must not pile up tracebacks
            status = response.status_code
            add_own_headers(response.raw_headers, rid.encode("latin-1"), scope["path"].startswith("/v1/"), self.node)
            try:
                await response(scope, receive, send)
            except Exception as exc:
                if self._handler_for(exc) is not None:  # as Starlette: too late to answer with the handler
                    raise RuntimeError("Caught handled exception, but response already started.") from exc
                raise
        finally:
            record_request(self.metrics, scope, status, started)
        if unexpected is not None:
            raise unexpected  # answered with the 500; uvicorn logs it, as ServerErrorMiddleware would have it
        request_id.reset(token)

    def _handler_for(self, exc: Exception) -> Handler | None:
        if isinstance(exc, HTTPException) and exc.status_code in self.status_handlers:
            return self.status_handlers[exc.status_code]
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None
