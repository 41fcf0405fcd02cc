"""Receipt proof bundles, signed checkpoints and consistency proofs (node.ledger.proofs)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.parsing import node_of, query_int
from api.responses import JSONResponse
from chain.errors import ValidationError
from chain.proofs import canonical_bundle
from node.ledger import proofs


def _proof_response(request: Request) -> Response:
    """The bundle as a download."""
    receipt_id = request.path_params["receipt_id"]
    bundle = proofs.receipt_bundle(node_of(request).store, receipt_id)
    headers = {"Content-Disposition": f'attachment; filename="{_filename(receipt_id)}.proof.json"'}
    return Response(canonical_bundle(bundle), media_type="application/json", headers=headers)


async def receipt_proof(request: Request) -> Response:
    authenticate(request)
    return _proof_response(request)


async def public_receipt_proof(request: Request) -> Response:
    return _proof_response(request)


def _filename(receipt_id: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in receipt_id)[:80] or "receipt"


async def checkpoint(request: Request) -> JSONResponse:
    authenticate(request)
    node = node_of(request)
    return JSONResponse(proofs.checkpoint(node.store, node.role))


async def consistency(request: Request) -> JSONResponse:
    authenticate(request)
    for name in ("from", "to"):
        if request.query_params.get(name) is None:
            raise ValidationError(f"{name} is required")
    store = node_of(request).store
    old = query_int(request, "from", 1, 1)
    new = query_int(request, "to", store.tip().height + 1, 1)
    return JSONResponse(proofs.consistency(store, old, new))
