"""Writes on a follower: proxied to the authority it follows, the answer passed back.

On a follower every POST and DELETE under /v1 (and the miners' poll GET /v1/jobs/available,
which records a heartbeat) is sent to the upstream with the caller's own X-Api-Key; the
caller gets the authority's status and body. After a 2xx, the follower waits (up to a few
seconds) until it has stored the block holding the write, so that a read sent to the same
follower right after sees it. Every node marks /v1 answers with X-Aitbc-Height, the chain
height the answer reflects, which is how the follower knows which block to wait for.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.errors import ApiError
from api.idempotency import keyed
from api.parsing import node_of, read_body
from node.roles import FollowerRole, StandbyRole
from node.sync import ForwardBadAnswer, Forwarded, ForwardTimeout, ForwardUnavailable

HEIGHT_HEADER = "X-Aitbc-Height"
WRITE_METHODS = {"POST", "DELETE"}
ANSWERED_LOCALLY = {"/v1/receipts/verify"}
"""POSTs that change nothing: a follower answers them from its own chain."""
FORWARDED_READS = {"/v1/jobs/available"}
"""GETs with a side effect on the authority (the poll is a miner's heartbeat)."""
PASSED_HEADERS = ("x-api-key", "content-type", "accept", "idempotency-key")


def forwarded(route: BaseRoute) -> bool:
    if not isinstance(route, Route) or not route.path.startswith("/v1/") or route.path.startswith("/v1/chain/"):
        return False
    if route.path in FORWARDED_READS:
        return True
    return bool((route.methods or set()) & WRITE_METHODS) and route.path not in ANSWERED_LOCALLY


def role_aware(route: BaseRoute) -> BaseRoute:
    """A route whose handler is picked per request by the node's role at that moment: on a
    follower its writes go to the authority (forward), on an authority to its own endpoint."""
    if not isinstance(route, Route) or not forwarded(route):
        return route
    local = keyed(route.path, route.endpoint) if (route.methods or set()) & WRITE_METHODS else route.endpoint

    async def endpoint(request: Request) -> Response:
        role = node_of(request).role
        if isinstance(role, FollowerRole):
            return await forward(request, role.replica)
        if isinstance(role, StandbyRole):
            return await forward(request, role.relay)
        return await local(request)

    endpoint.__name__ = getattr(local, "__name__", "endpoint")
    return Route(route.path, endpoint, methods=sorted(route.methods or ()), name=route.name)


class Upstream(Protocol):
    """Where a write is forwarded: a follower's upstream (node.sync.Follower) or a group's
    sequencer (node.group.Relay)."""

    async def forward(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Forwarded: ...

    async def wait_for_height(self, height: int, timeout: float = ...) -> bool: ...


async def forward(request: Request, replica: Upstream) -> Response:
    node = node_of(request)
    body = await read_body(request, node.config.body_limit)
    headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
    try:
        answer = await replica.forward(request.method, request.url.path, request.url.query, headers, body)
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
        await replica.wait_for_height(answer.height)
    headers_out = {HEIGHT_HEADER: str(answer.height)} if answer.height is not None else {}
    if answer.retry_after is not None:
        headers_out["Retry-After"] = answer.retry_after
    if answer.replayed:
        headers_out["Idempotent-Replayed"] = "true"
    return Response(answer.content, status_code=answer.status, media_type=answer.content_type, headers=headers_out)
