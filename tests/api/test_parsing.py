"""Request bodies read under a size cap (api/parsing.py) and JSON responses rendered by orjson (api/responses.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse as StarletteJSONResponse

from api.errors import ApiError
from api.parsing import read_body
from api.responses import JSONResponse


def _request(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or [], "query_string": b""}
    return Request(scope, receive)


def test_a_body_in_several_messages_is_read_whole() -> None:
    parts = [b'{"a":', b' 1, "b"', b": [2, 3]}"]
    request = _request([{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)])
    body = asyncio.run(read_body(request, 1024))
    assert json.loads(body) == {"a": 1, "b": [2, 3]}


def test_an_empty_body_is_empty_bytes() -> None:
    assert asyncio.run(read_body(_request([{"type": "http.request", "body": b""}]), 1024)) == b""


def test_a_body_over_the_cap_is_413_even_without_content_length() -> None:
    request = _request(
        [
            {"type": "http.request", "body": b"x" * 600, "more_body": True},
            {"type": "http.request", "body": b"x" * 600, "more_body": False},
        ]
    )
    with pytest.raises(ApiError) as raised:
        asyncio.run(read_body(request, 1000))
    assert raised.value.status == 413


def test_a_client_gone_mid_body_is_a_disconnect() -> None:
    request = _request([{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(request, 1000))


@pytest.mark.parametrize("status", [200, 201, 404])
def test_json_responses_carry_the_headers_starlette_would_make(status: int) -> None:
    content = {"job_id": "job_1", "n": [1, 2.5, None], "ü": "✓"}
    ours, theirs = JSONResponse(content, status_code=status), StarletteJSONResponse(content, status_code=status)
    assert ours.raw_headers == theirs.raw_headers[:1] + [(b"content-type", b"application/json")]
    assert json.loads(bytes(ours.body)) == json.loads(bytes(theirs.body)) and ours.status_code == status
    with_header = JSONResponse(content, headers={"Retry-After": "1"})
    assert (b"retry-after", b"1") in with_header.raw_headers
    assert dict(with_header.raw_headers)[b"content-length"] == str(len(with_header.body)).encode()
