"""Chain sync endpoints, served by every node: head, full blocks, the effective genesis,
and a websocket of live full blocks.

Full blocks carry prompts and results, so blocks and the websocket need a key with the role
`peer` (or `admin`); head and genesis hold nothing private and answer any valid key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.auth import authenticate
from api.errors import ApiError, error_response
from api.parsing import query_int
from api.responses import JSONResponse
from chain.encoding import canonical
from node.store import Store
from node.websocket_limits import POLICY_VIOLATION, TRY_AGAIN_LATER, limited, message_budget, receive_within

log = logging.getLogger("aitbc.api")

MAX_BLOCKS = 1000
"""Most blocks one GET /v1/chain/blocks answers."""
RESPONSE_BUDGET_BYTES = 8 * 1024 * 1024
"""A blocks answer stops adding blocks past this size (it always holds at least one)."""
MAX_WAIT_S = 30
WS_QUEUE = 256
"""Blocks a websocket peer may fall behind the feed before it is dropped (closed with
TRY_AGAIN_LATER; it reconnects and catches up)."""


def head_record(store: Store) -> dict[str, Any]:
    tip = store.tip()
    return {
        "chain_id": store.genesis.chain_id,
        "genesis_hash": store.genesis.hash,
        "height": tip.height,
        "hash": tip.hash,
        "header": tip.to_dict(),
    }


async def head(request: Request) -> JSONResponse:
    authenticate(request)
    return JSONResponse(head_record(request.app.state.node.store))


async def genesis(request: Request) -> JSONResponse:
    authenticate(request)
    return JSONResponse(request.app.state.node.store.genesis.raw)


def blocks_body(store: Store, start: int, limit: int) -> bytes:
    """{"blocks": [...], "head": {...}} built from the stored canonical bytes, not re-encoded."""
    head_bytes = canonical(head_record(store))
    raws: list[bytes] = []
    size = 0
    for height, raw in store.iter_block_bytes(start):
        if len(raws) >= limit or (raws and size + len(raw) > RESPONSE_BUDGET_BYTES):
            break
        if height != start + len(raws):
            break  # never a gap in an answer
        raws.append(raw)
        size += len(raw)
    return b'{"blocks":[' + b",".join(raws) + b'],"head":' + head_bytes + b"}"


async def blocks(request: Request) -> Response:
    authenticate(request, "peer")
    start = query_int(request, "from", 1, 0)
    limit = query_int(request, "limit", 100, 1, MAX_BLOCKS)
    wait = query_int(request, "wait", 0, 0, MAX_WAIT_S)
    node = request.app.state.node
    if wait and start > node.store.tip().height:
        await _wait_for_block(node, start, wait)
    return Response(blocks_body(node.store, start, limit), media_type="application/json")


async def _wait_for_block(node: Any, height: int, seconds: int) -> None:
    """Long-poll: return once block `height` is stored, or after `seconds`."""
    arrived = asyncio.Event()

    def on_block(block: Any) -> None:
        if block.height >= height:
            arrived.set()

    unsubscribe = node.feed.subscribe(on_block)
    try:
        if node.store.tip().height < height:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=seconds)
    finally:
        unsubscribe()


@limited
async def websocket_feed(websocket: WebSocket) -> None:
    """Stored blocks from `from`, then every new block as it becomes durable."""
    node = websocket.app.state.node
    try:
        authenticate(cast(Request, websocket), "peer")
        start = query_int(cast(Request, websocket), "from", node.store.tip().height + 1, 0)
    except ApiError as exc:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(exc.status, exc.detail, exc.error_code))
        else:
            await websocket.close(code=POLICY_VIOLATION, reason=exc.detail[:120])
        return

    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=WS_QUEUE)
    too_slow = False

    def on_block(block: Any) -> None:
        nonlocal too_slow
        try:
            queue.put_nowait(block.height)
        except asyncio.QueueFull:
            too_slow = True

    unsubscribe = node.feed.subscribe(on_block)
    receiver: asyncio.Task[Any] | None = None
    try:
        await websocket.accept()
        receiver = asyncio.create_task(_until_disconnect(websocket))
        next_height = start
        while True:
            # Everything stored from next_height on goes out straight from the store, so a
            # block published while we were sending is never skipped nor sent twice.
            while next_height <= node.store.tip().height:
                raw = node.store.block_bytes(next_height)
                if raw is None:
                    break
                await websocket.send_bytes(raw)
                next_height += 1
                if too_slow or receiver.done():
                    break
            if too_slow:
                log.info("dropping a chain websocket peer that fell %d blocks behind", WS_QUEUE)
                await websocket.close(code=TRY_AGAIN_LATER, reason="too slow; reconnect and catch up")
                return
            getter = asyncio.create_task(queue.get())
            await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                getter.cancel()
                return
            while not queue.empty():
                queue.get_nowait()
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the peer went away mid-send
    finally:
        unsubscribe()
        if receiver is not None:
            receiver.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the peer sends, until it disconnects or sends too fast."""
    budget = message_budget(websocket)
    while await receive_within(websocket, budget) is not None:
        pass


ROUTES: list[BaseRoute] = [
    Route("/v1/chain/head", head, methods=["GET"]),
    Route("/v1/chain/genesis", genesis, methods=["GET"]),
    Route("/v1/chain/blocks", blocks, methods=["GET"]),
    WebSocketRoute("/v1/chain/ws", websocket_feed),
]
