"""System endpoints: health."""

from __future__ import annotations

from starlette.requests import Request

from api.responses import JSONResponse


async def health(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.node.health())
