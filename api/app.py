"""create_app(node): the Starlette application with an explicit route list."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import swagger_ui_bundle
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api import admin, chain, docs, explorer, jobs, miners, receipts, system
from api.errors import EXCEPTION_HANDLERS
from explorer_ui import web
from node.runtime import Node

ROUTES = [
    Route("/health", system.health, methods=["GET"]),
    Route("/v1/jobs", jobs.submit_job, methods=["POST"]),
    Route("/v1/jobs", jobs.list_jobs, methods=["GET"]),
    # Before /v1/jobs/{job_id}, so that 'available' is not taken for a job id.
    Route("/v1/jobs/available", jobs.available_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/claim", jobs.claim_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/complete", jobs.complete_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/fail", jobs.fail_job, methods=["POST"]),
    Route("/v1/miners/register", miners.register_miner, methods=["POST"]),
    Route("/v1/receipts", receipts.list_receipts, methods=["GET"]),
    Route("/v1/receipts/verify", receipts.verify_receipt, methods=["POST"]),
    Route("/v1/receipts/{receipt_id}", receipts.get_receipt, methods=["GET"]),
    Route("/v1/admin/accounts", admin.create_account, methods=["POST"]),
    Route("/v1/admin/accounts/{name}", admin.revoke_account, methods=["DELETE"]),
    Route("/explorer/blocks", explorer.blocks, methods=["GET"]),
    Route("/explorer/transactions", explorer.transactions, methods=["GET"]),
    Route("/explorer/receipts", explorer.receipts, methods=["GET"]),
    Route("/explorer/stats", explorer.stats, methods=["GET"]),
    Route("/openapi.json", docs.openapi_json, methods=["GET"]),
    Route("/docs", docs.swagger_ui, methods=["GET"]),
    Route("/redoc", docs.redoc, methods=["GET"]),
    Mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"),
    Mount("/static/api", StaticFiles(directory=docs.STATIC_DIR), name="api-static"),
]


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

    routes = [*ROUTES, *chain.ROUTES, *web.ROUTES]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.node = node
    return app
