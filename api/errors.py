"""The one place where errors become HTTP responses with the spec's Error body."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.responses import JSONResponse
from chain.errors import Conflict, Forbidden, LedgerError, NotFound, TooLarge
from node.producer import NodeUnavailable

log = logging.getLogger("aitbc.api")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by endpoints for request-level problems (auth, parsing, lookups)."""

    def __init__(
        self, status: int, detail: str, error_code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error_code = error_code or HTTP_CODES.get(status, "error")
        self.headers = headers


def error_response(status: int, detail: str, error_code: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error_code": error_code}, status_code=status, headers=headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.error_code, exc.headers)


STATUS_OF_DOMAIN_ERROR: tuple[tuple[type[LedgerError], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (TooLarge, 413),
    (LedgerError, 400),
)
"""The HTTP status of each domain error: the first class in this table that the error is an
instance of (every other LedgerError, a refused transaction or a malformed field, is 400)."""


def status_of(exc: LedgerError) -> int:
    return next(status for kind, status in STATUS_OF_DOMAIN_ERROR if isinstance(exc, kind))


async def on_ledger_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerError)
    return error_response(status_of(exc), exc.detail, exc.error_code)


async def on_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NodeUnavailable)
    return error_response(503, exc.detail, exc.error_code, {"Retry-After": "1"})


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTP_CODES.get(exc.status_code, "error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such path: {request.url.path}"
    return error_response(exc.status_code, detail, HTTP_CODES.get(exc.status_code, "error"), exc.headers)


def internal_error() -> Response:
    """The answer to an unexpected error; it says nothing of the error."""
    return error_response(500, "internal error", "internal_error")


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error serving %s %s", request.method, request.url.path)
    return internal_error()


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    LedgerError: on_ledger_error,
    NodeUnavailable: on_unavailable,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
