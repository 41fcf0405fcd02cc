"""Receipt proof bundles, signed checkpoints and consistency proofs (see chain/proofs.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import ApiError
from api.parsing import query_int
from api.responses import JSONResponse
from chain.jobs import receipt_tx_key
from chain.proofs import build_bundle, canonical_bundle, sign_checkpoint
from node.store import Store


def receipt_bundle(store: Store, receipt_id: str) -> dict[str, Any] | None:
    """The proof bundle of a receipt on chain, or None. Reads one block (indexed by tx hash)."""
    tx_hash = store.get(receipt_tx_key(receipt_id))
    location = None if tx_hash is None else store.tx_location(tx_hash.decode("ascii"))
    block = None if location is None else store.block(location[0])
    if block is None or location is None:
        return None
    return build_bundle(store.genesis.chain_id, block, location[1])


def _proof_response(request: Request) -> Response:
    """The bundle as a download. It holds no prompt and no result (the transaction is in its
    public form), so it is as public as the receipt itself."""
    store = request.app.state.node.store
    receipt_id = request.path_params["receipt_id"]
    bundle = receipt_bundle(store, receipt_id)
    if bundle is None:
        raise ApiError(404, f"receipt '{receipt_id}' does not exist", "receipt_not_found")
    headers = {"Content-Disposition": f'attachment; filename="{_filename(receipt_id)}.proof.json"'}
    return Response(canonical_bundle(bundle), media_type="application/json", headers=headers)


async def receipt_proof(request: Request) -> Response:
    authenticate(request)
    return _proof_response(request)


async def public_receipt_proof(request: Request) -> Response:
    return _proof_response(request)


def _filename(receipt_id: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in receipt_id)[:80] or "receipt"


def checkpoint_record(store: Store, key: Any) -> dict[str, Any]:
    """The latest checkpoint: chain_id, size (blocks), root, and the signed note."""
    size = store.tip().height + 1
    root = store.block_tree_root(size)
    if key is None or key.public_hex not in store.genesis.authorities:
        raise ApiError(503, "this node holds no authority key to sign checkpoints; ask the authority", "unavailable")
    return {
        "chain_id": store.genesis.chain_id,
        "size": size,
        "root_hash": root.hex(),
        "signer": key.public_hex,
        "note": sign_checkpoint(store.genesis.chain_id, size, root, key),
    }


async def checkpoint(request: Request) -> JSONResponse:
    authenticate(request)
    node = request.app.state.node
    return JSONResponse(checkpoint_record(node.store, getattr(node, "key", None)))


async def consistency(request: Request) -> JSONResponse:
    authenticate(request)
    store: Store = request.app.state.node.store
    for name in ("from", "to"):
        if request.query_params.get(name) is None:
            raise ApiError(400, f"{name} is required", "validation_error")
    size = store.tip().height + 1
    old = query_int(request, "from", 1, 1)
    new = query_int(request, "to", size, 1)
    if new > size:
        raise ApiError(400, f"to must be at most the chain's size, {size} blocks", "validation_error")
    if old > new:
        raise ApiError(400, "from must be at most to", "validation_error")
    return JSONResponse(
        {
            "chain_id": store.genesis.chain_id,
            "from": old,
            "to": new,
            "from_root": store.block_tree_root(old).hex(),
            "to_root": store.block_tree_root(new).hex(),
            "proof": [h.hex() for h in store.block_tree_consistency(old, new)],
        }
    )
