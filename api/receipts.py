"""Receipts: list, read, and verify a receipt against the genesis authorities."""

from __future__ import annotations

from starlette.requests import Request

from api.auth import authenticate
from api.parsing import page_limit, parse_json, read_body
from api.responses import JSONResponse
from node.ledger import reads as queries
from node.ledger.receipts import verify_receipt_document


async def list_receipts(request: Request) -> JSONResponse:
    authenticate(request)
    limit = page_limit(request, 20)
    client = request.query_params.get("client") or None
    provider = request.query_params.get("provider") or None
    store = request.app.state.node.store
    return JSONResponse(queries.list_receipts(store, client=client, provider=provider, limit=limit))


async def get_receipt(request: Request) -> JSONResponse:
    authenticate(request)
    return JSONResponse(queries.receipt(request.app.state.node.store, request.path_params["receipt_id"]))


async def verify_receipt(request: Request) -> JSONResponse:
    authenticate(request)
    node = request.app.state.node
    body = parse_json(await read_body(request, node.config.body_limit))
    return JSONResponse(verify_receipt_document(node.store, body))
