"""Idempotency-Key on writes (the IETF httpapi draft, as Stripe uses it).

A write sent with `Idempotency-Key: K` is scoped to the caller's account. Its transaction
carries a hash of the key (with the account) and the hash of the request (method, path, body)
on chain (chain.idempotency), so that every node holding the block knows the key was used, for
which request and with which result, while the key itself, which the client chose, is on no
chain, page or log. A retry of the same request with the same key gets the original success answer (same
status, same body, and `Idempotent-Replayed: true`), from any member of a group, however many
sequencers later; the same key with another request is 422. Error answers are not recorded, so
a retry after one may succeed. A duplicate arriving while the first is still being sealed
waits for it and gets its answer. Keys expire 24 h after their block, by block time.

Accounts created through POST /v1/admin/accounts answer with the new API key, which the chain
never holds: that route takes no Idempotency-Key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import ApiError
from api.parsing import node_of, read_body
from api.responses import JSONResponse
from chain import idempotency
from chain.crypto import hash_hex
from chain.errors import Conflict
from node.ledger.views import job_view, miner_view
from node.producer import IDEMPOTENCY

HEADER = "idempotency-key"
Endpoint = Callable[[Request], Awaitable[Response]]

REPLAYS: dict[str, tuple[int, Callable[[dict[str, Any]], Any]]] = {
    "job.submit": (201, job_view),
    "job.cancel": (200, job_view),
    "job.claim": (200, job_view),
    "job.claim_next": (200, job_view),
    "job.complete": (200, lambda receipt: receipt),
    "job.fail": (200, job_view),
    "miner.register": (201, miner_view),
    "account.revoke": (200, lambda record: {"name": record["name"], "role": record["role"], "revoked": True}),
}
"""How each recorded transaction's result is answered, as the route that sealed it answered."""
NOT_KEYED = {"/v1/admin/accounts"}

_in_flight: dict[tuple[int, str, str], asyncio.Future[None]] = {}
"""Keys whose first request is being served on this node: (node id, account, key)."""


def keyed(path: str, local: Endpoint) -> Endpoint:
    """The endpoint, honouring an Idempotency-Key header."""
    if path in NOT_KEYED:
        return local

    async def endpoint(request: Request) -> Response:
        idem_key = request.headers.get(HEADER)
        if idem_key is None:
            return await local(request)
        # The request is charged to its key's rate here, once: the handler's own authenticate
        # finds the principal already on the request (api.auth) and charges nothing more.
        principal = authenticate(request)
        if not idempotency.valid_key(idem_key):
            raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters", "validation_error")
        node = node_of(request)
        body = await read_body(request, node.config.body_limit)
        # The handler reads the body again: Request.stream() replays a cached _body.
        request._body = body
        fingerprint = hash_hex(request.method.encode() + b" " + request.url.path.encode() + b"\n" + body)
        scope = (id(node), principal.name, idem_key)
        while True:
            replay = _replay(node.store, principal.name, idem_key, fingerprint)
            if replay is not None:
                return replay
            first = _in_flight.get(scope)
            if first is None:
                break
            await asyncio.shield(first)  # a concurrent duplicate: wait for the first, then look again
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        _in_flight[scope] = done
        token = IDEMPOTENCY.set(idempotency.payload_record(principal.name, idem_key, fingerprint))
        try:
            return await local(request)
        except Conflict as exc:
            if exc.error_code != "idempotency_key_used":
                raise
            # Recorded meanwhile (a retry racing its original through a failover): answer as it did.
            replay = _replay(node.store, principal.name, idem_key, fingerprint)
            if replay is None:
                raise
            return replay
        finally:
            IDEMPOTENCY.reset(token)
            del _in_flight[scope]
            done.set_result(None)

    endpoint.__name__ = getattr(local, "__name__", "endpoint")
    return endpoint


def _replay(store: Any, account: str, idem_key: str, fingerprint: str) -> Response | None:
    record = idempotency.live_record(store, account, idem_key, store.tip().timestamp)
    if record is None:
        return None
    if record["request"] != fingerprint:
        raise ApiError(
            422,
            "this Idempotency-Key was used for a different request (method, path or body)",
            "idempotency_key_reused",
        )
    status, view = REPLAYS.get(record["type"], (200, lambda result: result))
    return JSONResponse(view(record["result"]), status_code=status, headers={"Idempotent-Replayed": "true"})
