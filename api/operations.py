"""Operator endpoints: /status (public aggregates), /metrics (Prometheus), admin backups."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from api.auth import authenticate
from api.errors import ApiError
from api.responses import JSONResponse
from node.backup import backup_chunks, backup_header
from node.ledger.status import node_status
from node.metrics import CONTENT_TYPE


async def status(request: Request) -> JSONResponse:
    return JSONResponse(node_status(request.app.state.node))


async def metrics(request: Request) -> Response:
    node = request.app.state.node
    if node.config.metrics != "api":
        # Not saying where they are served instead: that address is the operator's business.
        raise ApiError(404, f"no such path: {request.url.path}", "not_found")
    return Response(node.metrics.exposition(), media_type=CONTENT_TYPE)


async def backup(request: Request) -> StreamingResponse:
    """A consistent snapshot of the whole store, streamed as an aitbc-node backup file."""
    authenticate(request, "admin")
    node = request.app.state.node
    snapshot = node.store.snapshot()
    header = backup_header(snapshot, node.store.genesis.raw)
    safe_chain = re.sub(r"[^A-Za-z0-9._-]", "_", header["chain_id"] or "chain")
    name = f"aitbc-{safe_chain}-{header['height']}.backup.gz"
    return StreamingResponse(
        backup_chunks(snapshot, header),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Backup-Height": str(header["height"]),
            "X-Backup-Tip": header["tip_hash"],
            "Cache-Control": "no-store",
        },
    )


ROUTES = [
    Route("/status", status, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/v1/admin/backup", backup, methods=["GET"]),
]
