"""The API adapter's routes and the pieces node.composition builds the app from: the explicit
route list, the middleware, the state the handlers share, and role-aware forwarding."""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from api import admin, chain, docs, errors, explorer, forward, jobs, miners, operations, proofs, receipts, system
from api.middleware import RequestMiddleware
from api.ratelimit import RateLimiter
from node.framework_internals import FastRouter
from node.ledger.accounts import AccountCache
from node.runtime import Node

ROUTES = [
    Route("/health", system.health, methods=["GET"]),
    Route("/v1/jobs", jobs.submit_job, methods=["POST"]),
    Route("/v1/jobs", jobs.list_jobs, methods=["GET"]),
    # Before /v1/jobs/{job_id}, so that 'available' is not taken for a job id.
    Route("/v1/jobs/available", jobs.available_job, methods=["GET"]),
    Route("/v1/jobs/claim-next", jobs.claim_next, methods=["POST"]),
    Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/claim", jobs.claim_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/complete", jobs.complete_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/fail", jobs.fail_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/receipt", jobs.job_receipt, methods=["GET"]),
    Route("/v1/jobs/{job_id}/receipts", jobs.job_receipts, methods=["GET"]),
    Route("/v1/miners/register", miners.register_miner, methods=["POST"]),
    Route("/v1/receipts", receipts.list_receipts, methods=["GET"]),
    Route("/v1/receipts/verify", receipts.verify_receipt, methods=["POST"]),
    Route("/v1/receipts/{receipt_id}/proof", proofs.receipt_proof, methods=["GET"]),
    Route("/explorer/receipts/{receipt_id}/proof", proofs.public_receipt_proof, methods=["GET"]),
    Route("/v1/chain/checkpoint", proofs.checkpoint, methods=["GET"]),
    Route("/v1/chain/consistency", proofs.consistency, methods=["GET"]),
    Route("/v1/receipts/{receipt_id}", receipts.get_receipt, methods=["GET"]),
    Route("/v1/admin/accounts", admin.create_account, methods=["POST"]),
    Route("/v1/admin/accounts/{name}", admin.revoke_account, methods=["DELETE"]),
    Route("/explorer/blocks", explorer.blocks, methods=["GET"]),
    Route("/explorer/transactions", explorer.transactions, methods=["GET"]),
    Route("/explorer/receipts", explorer.receipts, methods=["GET"]),
    Route("/explorer/stats", explorer.stats, methods=["GET"]),
    Route("/explorer", explorer.overview, methods=["GET"]),
    Route("/explorer/search", explorer.search, methods=["GET"]),
    Route("/explorer/blocks/{ref}", explorer.block, methods=["GET"]),
    Route("/explorer/transactions/{tx_hash}", explorer.transaction, methods=["GET"]),
    Route("/explorer/receipts/{receipt_id:path}", explorer.receipt, methods=["GET"]),
    Route("/explorer/jobs/{job_id:path}", explorer.job, methods=["GET"]),
    Route("/explorer/miners/{miner_id:path}", explorer.miner, methods=["GET"]),
    # Beside /explorer/miners/{miner_id:path}, which takes every path below it.
    Route("/explorer/miners", explorer.miners, methods=["GET"]),
    Route("/explorer/miner-receipts/{miner_id:path}", explorer.miner_receipts, methods=["GET"]),
    Route("/explorer/genesis", explorer.genesis, methods=["GET"]),
    Route("/openapi.json", docs.openapi_json, methods=["GET"]),
    Route("/docs", docs.swagger_ui, methods=["GET"]),
    Route("/redoc", docs.redoc, methods=["GET"]),
    Mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"),
    Mount("/static/api", StaticFiles(directory=docs.STATIC_DIR), name="api-static"),
]


class NodeApp(Starlette):
    """Starlette, routing through node.framework_internals.FastRouter."""

    def __init__(self, *, routes: list[BaseRoute], lifespan: Any = None, **kwargs: Any) -> None:
        super().__init__(routes=routes, lifespan=lifespan, **kwargs)
        self.router = FastRouter(routes, lifespan=lifespan)


def api_routes() -> list[BaseRoute]:
    """Every route the API serves. Those that write are role-aware: a follower forwards them to
    its authority, decided per request, so a node that changes role serves them right."""
    return [forward.role_aware(route) for route in [*ROUTES, *operations.ROUTES, *chain.ROUTES]]


def api_middleware(node: Node) -> list[Middleware]:
    """One outer middleware (request id, access log, metrics, security and height headers), and
    CORS when --cors-origins names any."""
    middleware = [Middleware(RequestMiddleware, metrics=node.metrics, node=node, error_answer=errors.internal_error)]
    if node.config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(node.config.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["X-Api-Key", "Content-Type"],
                expose_headers=["X-Request-Id", "Retry-After"],
            )
        )
    return middleware


def install_api_state(app: Starlette, node: Node) -> None:
    """What the API's handlers share: the rate limiter and the accounts cache (emptied by any
    block that touches accounts)."""
    app.state.rate_limiter = RateLimiter(node.config.rate_limit, node.config.rate_burst)
    app.state.unauth_limiter = RateLimiter(
        node.config.unauth_rate_limit,
        node.config.unauth_rate_burst,
        what="requests without a valid key from this address",
    )
    app.state.accounts = AccountCache()
    node.feed.subscribe(app.state.accounts.on_block)
