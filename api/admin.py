"""Account management (admin only): create a key, revoke an account."""

from __future__ import annotations

from starlette.requests import Request

from api.auth import authenticate
from api.errors import ApiError
from api.parsing import read_object, require_field
from api.responses import JSONResponse
from chain.accounts import validate_account_fields
from node.datadir import api_key_hash, new_api_key


async def create_account(request: Request) -> JSONResponse:
    authenticate(request, "admin")
    body = await read_object(request, ("name", "role"))
    name, role = require_field(body, "name"), require_field(body, "role")
    validate_account_fields(name, role)
    api_key = new_api_key()
    payload = {"name": name, "role": role, "key_hash": api_key_hash(api_key)}
    await request.app.state.node.producer.submit("account.create", payload)
    return JSONResponse({"name": name, "role": role, "key": api_key}, status_code=201)


async def revoke_account(request: Request) -> JSONResponse:
    principal = authenticate(request, "admin")
    name = request.path_params["name"]
    if name == principal.name:
        raise ApiError(409, "an admin cannot revoke its own account", "cannot_revoke_self")
    record = await request.app.state.node.producer.submit("account.revoke", {"name": name})
    return JSONResponse({"name": record["name"], "role": record["role"], "revoked": True})
