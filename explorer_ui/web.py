"""The explorer website: one page per view, each built by the node.ledger.explorer function
that also serves its JSON twin (the page at /X has its JSON at /explorer/X), plus the live
feed. Domain errors become this site's error page (PAGE_STATUS), not the API's JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from chain.encoding import canonical_text
from chain.errors import LedgerError, NotFound
from explorer_ui import charts
from explorer_ui.live import feed_endpoint
from node.ledger import explorer, params, standings
from node.ledger.activity import activity_for

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template is HTML: ids and model names are shown as text
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=env)


# -- formatting ---------------------------------------------------------------------------


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def absolute_time(value: str | None) -> str:
    """2026-01-02 03:04:05 UTC"""
    return "" if not value else _moment(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative_time(value: str | None, now_ms: int) -> str:
    """'just now', '42 s ago', '5 min ago', '3 h ago', '2 d ago' (or 'in …' for the future)."""
    if not value:
        return ""
    seconds = int(now_ms / 1000 - _moment(value).timestamp())
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 5:
        return "just now"
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600), (10**12, "d", 86400)):
        if seconds < limit:
            amount = f"{seconds // size} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return ""


def short_hash(value: str | None, keep: int = 8) -> str:
    if not value or len(value) <= 2 * keep + 1:
        return value or ""
    return f"{value[:keep]}…{value[-keep:]}"


def id_path(value: Any) -> str:
    """An id as one URL path segment (ids are free text: '/', '?', '#' and spaces are escaped)."""
    return quote(str(value), safe="")


def unix_iso(value: int | None) -> str | None:
    """Unix seconds (a receipt's times) as ISO 8601 UTC."""
    return None if value is None else datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")


def price(value: float | int | None) -> str:
    if value is None:
        return ""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text or "0"


def number(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


env.filters.update(
    abstime=absolute_time, unixiso=unix_iso, short=short_hash, idpath=id_path, price=price, number=number
)


# -- rendering ----------------------------------------------------------------------------


def render(request: Request, template: str, json_path: str | None, status_code: int = 200, **context: Any) -> Response:
    node = request.app.state.node
    now_ms = node.clock()
    base = {
        "chain_id": node.store.genesis.chain_id,
        "tip": node.store.tip().height,
        "now_ms": now_ms,
        "ago": lambda value: relative_time(value, now_ms),
        "json_path": json_path,
        "query": request.query_params.get("q", ""),
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


NOT_PAGES = ("/v1", "/explorer", "/health", "/metrics", "/openapi", "/docs", "/redoc", "/static/")
"""Paths whose 404 stays the API's Error body, whoever asks: the API, its docs and assets."""


def page_status(exc: LedgerError) -> int:
    """The status of the error page for a domain error: the website only reads, so what it meets
    is a missing record (404) or a malformed address or query (400)."""
    return 404 if isinstance(exc, NotFound) else 400


def is_page_request(request: Request, exc: Exception) -> bool:
    """A browser (Accept: text/html) asking for a website address nothing serves: it gets the
    website's "Not found" page (not_found_page) instead of the API's JSON Error body."""
    path = request.url.path
    store = getattr(request.app.state.node, "store", None)
    return (
        isinstance(exc, HTTPException)
        and exc.status_code == 404
        and exc.detail == "Not Found"  # no route matched
        and not path.startswith(NOT_PAGES)
        and "text/html" in request.headers.get("accept", "")
        and store is not None
        and not store.closed  # starting or stopping: no chain to show the page around
    )


def not_found_page(request: Request) -> Response:
    return render(request, "error.html", None, 404, status=404, detail=f"There is no page at {request.url.path}.")


def page(build: Callable[[Request], Response]) -> Callable[[Request], Any]:
    """An HTML endpoint; a domain error becomes the error page with its status."""

    async def endpoint(request: Request) -> Response:
        try:
            return build(request)
        except LedgerError as exc:
            status = page_status(exc)
            return render(
                request, "error.html", None, status, status=status, detail=exc.detail, error_code=exc.error_code
            )

    endpoint.__name__ = build.__name__
    return endpoint


def _store(request: Request) -> Any:
    return request.app.state.node.store


def page_size(request: Request, default: int) -> int:
    return params.page_limit(request.query_params, default, request.app.state.node.config.max_page_size)


def _json_path(request: Request, path: str) -> str:
    return f"{path}?{request.url.query}" if request.url.query else path


# -- pages --------------------------------------------------------------------------------


ACTIVITY_RANGES = {"1h": None, "24h": (24, 1), "7d": (28, 6)}
"""The home page's activity chart: the last hour per minute (in memory, node.ledger.activity),
or the last 24 h per hour and 7 d per 6 hours (the store's hourly counters)."""


def _overview(request: Request) -> dict[str, Any]:
    node = request.app.state.node
    now_ms = node.clock()
    data = explorer.overview_data(node.store, activity_for(request.app), now_ms)
    stats = data["stats"]
    span = params.query_choice(request.query_params, "activity", ACTIVITY_RANGES) or "1h"
    shape = ACTIVITY_RANGES[span]
    if shape is None:
        chart = charts.activity_chart(stats["last_hour"])
    else:
        periods, hours = shape
        each = "hour" if hours == 1 else f"{hours} hours"
        chart = charts.period_chart(
            standings.hourly_activity(node.store, now_ms, periods, hours),
            f"Jobs and receipts per {each}, last {span[:-1]} {'hours' if span.endswith('h') else 'days'}",
        )
    return {
        **data,
        "activity_span": span,
        "activity_spans": list(ACTIVITY_RANGES),
        "activity_chart": chart,
        "size_chart": charts.block_size_chart(stats["recent_block_sizes"]),
    }


@page
def home(request: Request) -> Response:
    return render(request, "home.html", "/explorer", **_overview(request))


@page
def home_live(request: Request) -> Response:
    """The home page's changing part alone, which its script swaps in when a block arrives."""
    return render(request, "_home_live.html", "/explorer", **_overview(request))


@page
def blocks(request: Request) -> Response:
    limit = page_size(request, 25)
    items = explorer.blocks_data(_store(request), limit, params.before(request.query_params))
    older = items[-1]["height"] if len(items) == limit and items[-1]["height"] > 0 else None
    return render(
        request, "blocks.html", _json_path(request, "/explorer/blocks"), blocks=items, older=older, limit=limit
    )


@page
def block(request: Request) -> Response:
    data = explorer.block_data(_store(request), request.path_params["ref"])
    return render(request, "block.html", f"/explorer/blocks/{data['height']}", block=data)


@page
def transactions(request: Request) -> Response:
    limit = page_size(request, 25)
    items = explorer.transactions_data(_store(request), limit, params.cursor(request.query_params))
    older = items[-1]["hash"] if len(items) == limit else None
    return render(
        request,
        "transactions.html",
        _json_path(request, "/explorer/transactions"),
        transactions=items,
        older=older,
        limit=limit,
    )


@page
def transaction(request: Request) -> Response:
    data = explorer.transaction_data(_store(request), request.path_params["tx_hash"])
    return render(request, "transaction.html", f"/explorer/transactions/{data['hash']}", tx=data)


@page
def receipts(request: Request) -> Response:
    limit = page_size(request, 25)
    items, older = explorer.receipts_data(_store(request), limit, params.before(request.query_params))
    return render(
        request, "receipts.html", _json_path(request, "/explorer/receipts"), receipts=items, older=older, limit=limit
    )


@page
def receipt(request: Request) -> Response:
    receipt_id = request.path_params["receipt_id"]
    data = explorer.receipt_data(_store(request), receipt_id)
    raw = explorer.receipt_json(data["receipt"])
    return render(
        request,
        "receipt.html",
        f"/explorer/receipts/{id_path(receipt_id)}",
        data=data,
        raw=raw,
        origin=_origin(request),
    )


@page
def job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    data = explorer.job_data(_store(request), job_id)
    return render(request, "job.html", f"/explorer/jobs/{id_path(job_id)}", job=data)


@page
def miner(request: Request) -> Response:
    miner_id = request.path_params["miner_id"]
    data = explorer.miner_data(_store(request), miner_id, request.app.state.node.clock())
    return render(request, "miner.html", f"/explorer/miners/{id_path(miner_id)}", miner=data)


@page
def miners(request: Request) -> Response:
    """Miners' standings over the last 24 h, 7 d and 30 d."""
    by = params.query_choice(request.query_params, "by", standings.RANKINGS) or "receipts"
    data = standings.standings_data(_store(request), request.app.state.node.clock(), by, 25)
    return render(request, "miners.html", _json_path(request, "/explorer/miners"), standings=data)


# -- the in-browser verifier -------------------------------------------------------------


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def genesis_json(request: Request) -> Markup:
    """The chain's genesis as canonical JSON, safe inside a <script type="application/json">
    element: '<' only occurs inside JSON strings, where \\u003c parses back to the same text."""
    text = canonical_text(_store(request).genesis.raw).replace("<", "\\u003c")
    return Markup(text)  # noqa: S704 -- JSON made safe for a script element above, not HTML


@page
def verify(request: Request) -> Response:
    return render(
        request, "verify.html", "/explorer/genesis", genesis_json=genesis_json(request), origin=_origin(request)
    )


def _inline(name: str, closing: str) -> Markup:
    """A static file's text for an inline <script> or <style>; refused if it could close it early."""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    if closing in text.lower():
        raise RuntimeError(f"{name} holds '{closing}' and cannot be inlined")
    return Markup(text)  # noqa: S704 -- our own static file, checked above not to close its element


def offline_verifier() -> str:
    """The verifier as one self-contained HTML file: stylesheet, libraries and script inline."""
    return env.get_template("verify_offline.html").render(
        offline=True,
        css=_inline("explorer.css", "</style"),
        noble_js=_inline("vendor/noble.js", "</script"),
        verify_js=_inline("verify.js", "</script"),
    )


async def verify_offline(request: Request) -> Response:
    headers = {"Content-Disposition": 'attachment; filename="aitbc-verify.html"'}
    return Response(offline_verifier(), media_type="text/html; charset=utf-8", headers=headers)


@page
def search(request: Request) -> Response:
    data = explorer.search_data(_store(request), request.query_params.get("q", ""))
    if len(data["results"]) == 1:
        return RedirectResponse(data["results"][0]["path"], status_code=303)
    return render(request, "search.html", _json_path(request, "/explorer/search"), search=data)


ROUTES: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/live/home", home_live, methods=["GET"]),
    Route("/blocks", blocks, methods=["GET"]),
    Route("/blocks/{ref}", block, methods=["GET"]),
    Route("/transactions", transactions, methods=["GET"]),
    Route("/transactions/{tx_hash}", transaction, methods=["GET"]),
    Route("/receipts", receipts, methods=["GET"]),
    Route("/receipts/{receipt_id:path}", receipt, methods=["GET"]),
    Route("/jobs/{job_id:path}", job, methods=["GET"]),
    Route("/miners", miners, methods=["GET"]),
    Route("/miners/{miner_id:path}", miner, methods=["GET"]),
    Route("/verify", verify, methods=["GET"]),
    Route("/verify/aitbc-verify.html", verify_offline, methods=["GET"]),
    Route("/search", search, methods=["GET"]),
    WebSocketRoute("/explorer/ws", feed_endpoint),
    Mount("/static/explorer", StaticFiles(directory=STATIC_DIR), name="explorer-static"),
]
