"""create_app(node): the Starlette application with an explicit route list."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.routing import Route

from api import system
from api.errors import EXCEPTION_HANDLERS
from node.runtime import Node


def create_app(node: Node, on_started: Callable[[], None] | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await node.stop()

    routes = [
        Route("/health", system.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.node = node
    return app
