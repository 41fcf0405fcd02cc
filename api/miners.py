"""Miner registration over HTTP (node.ledger.commands.register_miner)."""

from __future__ import annotations

from starlette.requests import Request

from api.auth import authenticate
from api.parsing import commands_of, read_object, require_field
from api.responses import JSONResponse


async def register_miner(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "capabilities", "gpu_info", "miner_pubkey"))
    miner_id, capabilities = require_field(body, "miner_id"), require_field(body, "capabilities")
    miner = await commands_of(request).register_miner(
        principal, miner_id, capabilities, body.get("gpu_info"), body.get("miner_pubkey")
    )
    return JSONResponse(miner, status_code=201)
