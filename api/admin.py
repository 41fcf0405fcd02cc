"""Account management over HTTP (admin only): create a key, revoke an account."""

from __future__ import annotations

from starlette.requests import Request

from api.auth import authenticate
from api.parsing import commands_of, read_object, require_field
from api.responses import JSONResponse


async def create_account(request: Request) -> JSONResponse:
    authenticate(request, "admin")
    body = await read_object(request, ("name", "role"))
    name, role = require_field(body, "name"), require_field(body, "role")
    return JSONResponse(await commands_of(request).create_account(name, role), status_code=201)


async def revoke_account(request: Request) -> JSONResponse:
    principal = authenticate(request, "admin")
    return JSONResponse(await commands_of(request).revoke_account(principal, request.path_params["name"]))
