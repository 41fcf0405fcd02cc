"""Receipts: list, read, and verify a receipt against the genesis authorities."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from api import queries
from api.auth import authenticate
from api.errors import ApiError
from api.parsing import page_limit, parse_json, read_body
from api.responses import JSONResponse
from chain.crypto import b64url_decode
from chain.receipts import MINER_FIELDS, miner_refusal, receipt_refusal


async def list_receipts(request: Request) -> JSONResponse:
    authenticate(request)
    limit = page_limit(request, 20)
    client = request.query_params.get("client") or None
    provider = request.query_params.get("provider") or None
    store = request.app.state.node.store
    return JSONResponse(queries.list_receipts(store, client=client, provider=provider, limit=limit))


async def get_receipt(request: Request) -> JSONResponse:
    authenticate(request)
    receipt_id = request.path_params["receipt_id"]
    receipt = queries.get_receipt(request.app.state.node.store, receipt_id)
    if receipt is None:
        raise ApiError(404, f"receipt '{receipt_id}' does not exist", "receipt_not_found")
    return JSONResponse(receipt)


def verify_receipt_document(store: Any, receipt: Any) -> dict[str, Any]:
    """Signature validity, whether the signer is a genesis authority, and where it is on chain."""
    if not isinstance(receipt, dict):
        raise ApiError(400, "the body must be a receipt object", "validation_error")
    refusal = receipt_refusal(receipt)
    claimed_key: bytes | None = None
    signature = receipt.get("signature")
    if isinstance(signature, dict):
        try:
            claimed_key = b64url_decode(signature.get("key_id"))  # type: ignore[arg-type]
        except ValueError:
            claimed_key = None
    authority = claimed_key is not None and claimed_key.hex() in store.genesis.authorities
    receipt_id = receipt.get("receipt_id")
    stored = queries.get_receipt(store, receipt_id) if isinstance(receipt_id, str) else None
    on_chain = stored is not None and stored == receipt
    # A co-signed receipt (result_hash + miner_signature) is valid only if both signatures are.
    cosigned = any(name in receipt for name in MINER_FIELDS)
    miner_problem = miner_refusal(receipt) if cosigned else None
    reason = (
        refusal
        or (None if authority else "the receipt's key_id is not an authority of this chain's genesis")
        or (None if miner_problem is None else f"miner co-signature: {miner_problem}")
    )
    return {
        "receipt_id": receipt_id if isinstance(receipt_id, str) else None,
        "signature_valid": refusal is None,
        "signer_is_authority": bool(authority),
        "miner_signature_valid": miner_problem is None if cosigned else None,
        "valid": reason is None,
        "reason": reason,
        "on_chain": on_chain,
        "block_height": queries.receipt_height(store, receipt_id) if on_chain else None,
    }


async def verify_receipt(request: Request) -> JSONResponse:
    authenticate(request)
    node = request.app.state.node
    body = parse_json(await read_body(request, node.config.max_body_bytes))
    return JSONResponse(verify_receipt_document(node.store, body))
