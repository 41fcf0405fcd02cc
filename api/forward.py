"""Writes on a follower: proxied to the authority it follows, the answer passed back.

On a follower every POST and DELETE under /v1 (and the miners' poll GET /v1/jobs/available,
which records a heartbeat) is sent to the upstream with the caller's own X-Api-Key; the
caller gets the authority's status and body. After a 2xx, the follower waits (up to a few
seconds) until it has stored the block holding the write, so that a read sent to the same
follower right after sees it. Every node marks /v1 answers with X-Aitbc-Height, the chain
height the answer reflects, which is how the follower knows which block to wait for.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.errors import ApiError
from api.parsing import read_body
from node.sync import ForwardBadAnswer, ForwardTimeout, ForwardUnavailable

HEIGHT_HEADER = "X-Aitbc-Height"
WRITE_METHODS = {"POST", "DELETE"}
ANSWERED_LOCALLY = {"/v1/receipts/verify"}
"""POSTs that change nothing: a follower answers them from its own chain."""
FORWARDED_READS = {"/v1/jobs/available"}
"""GETs with a side effect on the authority (the poll is a miner's heartbeat)."""
PASSED_HEADERS = ("x-api-key", "content-type", "accept")


def forwarded(route: BaseRoute) -> bool:
    if not isinstance(route, Route) or not route.path.startswith("/v1/") or route.path.startswith("/v1/chain/"):
        return False
    if route.path in FORWARDED_READS:
        return True
    return bool((route.methods or set()) & WRITE_METHODS) and route.path not in ANSWERED_LOCALLY


def routes_for(node: Any, routes: list[BaseRoute]) -> list[BaseRoute]:
    """The app's routes for this node's role: on a follower, writes go to the authority."""
    if node.role != "follower":
        return routes
    return [
        Route(r.path, forward, methods=sorted(r.methods or ()), name=r.name) if forwarded(r) else r
        for r in routes
        if isinstance(r, BaseRoute)
    ]


async def forward(request: Request) -> Response:
    node = request.app.state.node
    body = await read_body(request, node.config.max_body_bytes)
    headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
    try:
        answer = await node.sync.forward(request.method, request.url.path, request.url.query, headers, body)
    except ForwardUnavailable as exc:
        raise ApiError(503, str(exc), "unavailable", {"Retry-After": "1"}) from None
    except ForwardTimeout:
        raise ApiError(
            504,
            "the authority did not answer in time; the write may or may not have been applied",
            "upstream_timeout",
        ) from None
    except ForwardBadAnswer as exc:
        raise ApiError(502, f"the authority's answer could not be relayed: {exc}", "bad_upstream_answer") from None
    if 200 <= answer.status < 300 and answer.height is not None and request.method in WRITE_METHODS:
        await node.sync.wait_for_height(answer.height)
    headers_out = {HEIGHT_HEADER: str(answer.height)} if answer.height is not None else {}
    if answer.retry_after is not None:
        headers_out["Retry-After"] = answer.retry_after
    return Response(answer.content, status_code=answer.status, media_type=answer.content_type, headers=headers_out)
