"""The ceiling: a bare Starlette app, one JSON GET and one POST echoing its body with 201.

Served by uvicorn with the node's own settings (node.server.UVICORN_SETTINGS), so the
difference between it and the node is the node's own work.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.server import UVICORN_SETTINGS


async def get_json(request: Request) -> JSONResponse:
    return JSONResponse({"total_jobs": 0, "active_miners": 0, "total_receipts": 0, "block_height": 0})


async def echo(request: Request) -> Response:
    return Response(await request.body(), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/get", get_json), Route("/echo", echo, methods=["POST"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    settings = {k: v for k, v in UVICORN_SETTINGS.items() if k != "lifespan"}
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        **settings,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
