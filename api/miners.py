"""Miner registration."""

from __future__ import annotations

from starlette.requests import Request

from api.auth import authenticate
from api.parsing import read_object, require_field
from api.responses import JSONResponse
from api.views import miner_view
from chain.miners import validate_miner_pubkey, validate_registration


async def register_miner(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "capabilities", "gpu_info", "miner_pubkey"))
    miner_id, capabilities = require_field(body, "miner_id"), require_field(body, "capabilities")
    gpu_info = body.get("gpu_info")
    validate_registration(miner_id, capabilities, gpu_info)
    validate_miner_pubkey(body.get("miner_pubkey"))
    payload = {"miner_id": miner_id, "owner": principal.name, "capabilities": capabilities, "gpu_info": gpu_info}
    if body.get("miner_pubkey") is not None:
        payload["miner_pubkey"] = body["miner_pubkey"]
    miner = await request.app.state.node.producer.submit("miner.register", payload)
    return JSONResponse(miner_view(miner), status_code=201)
