"""The composition root: the one place that builds the ASGI app from both adapters, the API
(api/) and the website (explorer_ui/), over the application layer (node.ledger) and the node.
Nothing else in node/ imports api/ or explorer_ui/."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.routes import NodeApp, api_middleware, api_routes, install_api_state
from explorer_ui import web
from node.ledger.activity import activity_for
from node.ledger.commands import Commands
from node.ledger.gauges import NodeStateCollector
from node.runtime import Node
from node.websocket_limits import WebSocketLimiter


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """A browser asking for a website address nothing serves gets the website's Not found page;
    everyone else, and every API path, the API's Error body."""
    if web.is_page_request(request, exc):
        return web.not_found_page(request)
    return await errors.on_http_exception(request, exc)


def create_app(node: Node, on_started: Callable[[], None] | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        activity_for(app)  # start loading the explorer's last hour now, in the background
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await node.stop()

    handlers = {**errors.EXCEPTION_HANDLERS, HTTPException: on_http_exception}
    app = NodeApp(
        routes=[*api_routes(), *web.ROUTES],
        middleware=api_middleware(node),
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    node.metrics.registry.register(NodeStateCollector(node))
    app.state.node = node
    app.state.commands = Commands(node)
    app.state.ws_limiter = WebSocketLimiter(node.config.ws_per_ip, node.config.ws_max)
    install_api_state(app, node)
    return app
