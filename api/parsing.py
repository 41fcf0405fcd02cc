"""Request parsing: bodies and query parameters become values or a 4xx with the Error body."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from api.errors import ApiError
from chain.encoding import parse_strict
from node.ledger import params
from node.ledger.commands import Commands
from node.runtime import Node


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if declared_size > max_bytes:
            raise ApiError(413, f"request body is larger than {max_bytes} bytes")
    # Read through Request.stream() rather than Request.body(), so that a body without a
    # Content-Length (chunked) is refused as soon as it passes the cap, not once it is all in memory.
    chunks = []
    size = 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"request body is larger than {max_bytes} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "request body is empty; a JSON object is required", "invalid_json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid UTF-8", "invalid_json") from None
    try:
        return parse_strict(text)
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply", "invalid_json") from None
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None


def node_of(request: Request) -> Node:
    """The node serving the request (read through the ASGI scope: Request.app is a property)."""
    node: Node = request.scope["app"].state.node
    return node


def commands_of(request: Request) -> Commands:
    """The write commands of the node serving the request."""
    commands: Commands = request.scope["app"].state.commands
    return commands


async def read_object(request: Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The body as a JSON object with only the allowed top-level fields."""
    node = node_of(request)
    body = parse_json(await read_body(request, node.config.body_limit))
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_json")
    allowed_set = set(allowed)
    unknown = sorted(set(body) - allowed_set)
    if unknown:
        raise ApiError(
            400, f"unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed_set))})", "validation_error"
        )
    return body


def require_field(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise ApiError(400, f"{name} is required", "validation_error")
    return body[name]


def page_limit(request: Request, default: int) -> int:
    """The `limit` query parameter of a listing: 1 to the node's --max-page-size (default 100)."""
    return params.page_limit(request.query_params, default, node_of(request).config.max_page_size)


def query_int(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    return params.query_int(request.query_params, name, default, low, high)


def query_choice(request: Request, name: str, choices: Iterable[str]) -> str | None:
    return params.query_choice(request.query_params, name, choices)


def parse_datetime_ms(field: str, value: Any) -> int:
    """An ISO 8601 date-time as Unix milliseconds; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be an ISO 8601 date-time string", "validation_error")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{field} is not an ISO 8601 date-time", "validation_error") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return int(moment.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        raise ApiError(400, f"{field} is out of range", "validation_error") from None
