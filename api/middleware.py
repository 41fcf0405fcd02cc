"""One small ASGI middleware: a request id, the access log line and the HTTP metrics.

The id comes from the caller's X-Request-Id when it is a sane token, else it is made here;
it is sent back in X-Request-Id and carried by every log record of the request. The access
log line holds the method, the path (never the query string), the status and the time.
Metrics are labelled by route template (/v1/jobs/{job_id}), never by raw path.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import HEADERS as SECURITY_HEADERS
from node.logging_setup import request_id
from node.metrics import NodeMetrics

access_log = logging.getLogger("aitbc.access")

HEADER = b"x-request-id"
HEIGHT_HEADER = b"x-aitbc-height"
"""On /v1 answers: the chain height the answer was read at (a follower waits to reach it)."""
VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "<unmatched>"
OWN_HEADERS = frozenset(name for name, _ in SECURITY_HEADERS) | {HEIGHT_HEADER}
"""Headers this middleware adds unless the endpoint set them itself."""
_NONE: frozenset[bytes] = frozenset()


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or not isinstance(path, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return path + "/{path}"
    return path


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique per process start and request; cheaper than a uuid on every request."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of a header among an ASGI scope's raw headers (name in lower case)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new id."""
    value = header_value(headers, HEADER)
    if value is not None and VALID_ID.match(value):
        return value.decode("latin-1")
    return new_request_id()


def add_own_headers(headers: list[tuple[bytes, bytes]], raw_rid: bytes, versioned: bool, node: Any) -> None:
    """Append what every answer carries to a response's headers: the request id, the security
    headers and, on /v1, the height the answer was read at, each unless the endpoint set it."""
    present: frozenset[bytes] | set[bytes] = _NONE  # the usual case: none of ours was set by the endpoint
    for name, _ in headers:
        if name.lower() in OWN_HEADERS:
            present = {name.lower() for name, _ in headers}
            break
    headers.append((HEADER, raw_rid))
    headers.extend(SECURITY_HEADERS if present is _NONE else [h for h in SECURITY_HEADERS if h[0] not in present])
    if versioned and HEIGHT_HEADER not in present:
        store = getattr(node, "store", None)
        if store is not None and not store.closed:
            headers.append((HEIGHT_HEADER, str(store.tip().height).encode()))


def record_request(metrics: NodeMetrics | None, scope: Scope, status: int, started: float) -> None:
    """The request's metrics and access log line."""
    elapsed = time.perf_counter() - started
    method = scope.get("method", "")
    if metrics is not None:
        metrics.http_request(method, route_template(scope), status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        path = scope.get("path", "")
        client = scope.get("client")
        access_log.info(
            "%s %s %d %.1fms",
            method,
            path,
            status,
            elapsed * 1000,
            extra={
                "http": {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                }
            },
        )


class RequestMiddleware:
    """The one outer middleware: request id, access log, metrics, and the response headers every
    answer carries (security headers; on /v1, the height the answer was read at).

    An unexpected error is answered here with `error_answer()`, so that the 500 carries those
    headers too; the error then goes on up to Starlette's ServerErrorMiddleware, which runs the
    app's 500 handler (the log line) and, the answer being sent, sends nothing more."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: NodeMetrics | None = None,
        node: Any = None,
        error_answer: Callable[[], Response] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.node = node
        self.error_answer = error_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope.get("headers", ()))
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        raw_rid = rid.encode("latin-1")
        versioned = scope["path"].startswith("/v1/")

        started_answer = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_answer
            if message["type"] == "http.response.start":
                status = message["status"]
                started_answer = True
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                add_own_headers(headers, raw_rid, versioned, self.node)
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                if self.error_answer is not None and not started_answer:
                    await self.error_answer()(scope, receive, send_with_id)
                raise
        finally:
            record_request(self.metrics, scope, status, started)
        # Reset only on success: an unhandled error is logged (by Starlette's outer error
        # middleware) after we return, and that line should carry the request id too.
        request_id.reset(token)
