"""The public explorer JSON from the spec: recent blocks, transactions, receipts, stats."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api import queries
from api.parsing import query_int
from api.views import iso
from chain.blocks import Block
from chain.transactions import Transaction
from node.store import Store

PUBLIC_PAYLOAD_FIELDS = ("job_id", "miner_id", "model", "name", "role", "client")


def block_summary(block: Block) -> dict[str, Any]:
    """The spec's Block: height, hash, ISO timestamp, transaction count."""
    return {
        "height": block.height,
        "hash": block.hash,
        "timestamp": iso(block.header.timestamp),
        "transactions": block.header.tx_count,
    }


def tx_summary(tx: Transaction, height: int) -> dict[str, Any]:
    """A transaction's public face: never a prompt, a result or a key hash."""
    payload = tx.payload
    summary = {k: payload[k] for k in PUBLIC_PAYLOAD_FIELDS if isinstance(payload.get(k), str)}
    receipt = payload.get("receipt")
    if isinstance(receipt, dict) and isinstance(receipt.get("receipt_id"), str):
        summary["receipt_id"] = receipt["receipt_id"]
    return {
        "hash": tx.hash.hex(),
        "type": tx.type,
        "block_height": height,
        "timestamp": iso(tx.timestamp),
        "summary": summary,
    }


def recent_blocks(store: Store, limit: int) -> list[Block]:
    tip = store.tip().height
    blocks = (store.block(h) for h in range(tip, max(tip - limit, -1), -1))
    return [b for b in blocks if b is not None]


def recent_transactions(store: Store, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    height = store.tip().height
    while height >= 0 and len(out) < limit:
        block = store.block(height)
        if block is not None:
            out.extend(tx_summary(tx, height) for tx in reversed(block.transactions))
        height -= 1
    return out[:limit]


async def blocks(request: Request) -> JSONResponse:
    limit = query_int(request, "limit", 10, 1, queries.MAX_PAGE)
    store = request.app.state.node.store
    return JSONResponse([block_summary(b) for b in recent_blocks(store, limit)])


async def transactions(request: Request) -> JSONResponse:
    limit = query_int(request, "limit", 20, 1, queries.MAX_PAGE)
    return JSONResponse(recent_transactions(request.app.state.node.store, limit))


async def receipts(request: Request) -> JSONResponse:
    limit = query_int(request, "limit", 20, 1, queries.MAX_PAGE)
    store = request.app.state.node.store
    return JSONResponse(queries.list_receipts(store, client=None, provider=None, limit=limit))


async def stats(request: Request) -> JSONResponse:
    node = request.app.state.node
    return JSONResponse(queries.network_stats(node.store, node.clock()))
