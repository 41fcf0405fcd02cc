"""The explorer's JSON twins under /explorer: each serves the data of one website page,
built by node.ledger.explorer (the website, explorer_ui/web.py, renders the same data)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.parsing import node_of, page_limit
from api.responses import JSONResponse
from chain.encoding import canonical
from node.ledger import params, standings
from node.ledger.activity import activity_for
from node.ledger.explorer import (
    block_data,
    blocks_data,
    job_data,
    miner_data,
    overview_data,
    receipt_data,
    receipts_data,
    search_data,
    stats_data,
    transaction_data,
    transactions_data,
)
from node.store import Store


def _store(request: Request) -> Store:
    return node_of(request).store


def now(request: Request) -> int:
    return node_of(request).clock()


async def block(request: Request) -> JSONResponse:
    return JSONResponse(block_data(_store(request), request.path_params["ref"]))


def next_link(request: Request, name: str, value: object) -> dict[str, str]:
    """A Link header naming the next page (RFC 8288)."""
    url = request.url.include_query_params(**{name: value})
    return {"Link": f'<{url.path}?{url.query}>; rel="next"'}


async def blocks(request: Request) -> JSONResponse:
    limit = page_limit(request, 10)
    items = blocks_data(_store(request), limit, params.before(request.query_params))
    more = len(items) == limit and items[-1]["height"] > 0
    return JSONResponse(items, headers=next_link(request, "before", items[-1]["height"]) if more else None)


async def transactions(request: Request) -> Response:
    limit = page_limit(request, 20)
    items = transactions_data(_store(request), limit, params.cursor(request.query_params))
    more = len(items) == limit
    return JSONResponse(items, headers=next_link(request, "cursor", items[-1]["hash"]) if more else None)


async def transaction(request: Request) -> JSONResponse:
    return JSONResponse(transaction_data(_store(request), request.path_params["tx_hash"]))


async def receipts(request: Request) -> JSONResponse:
    items, older = receipts_data(_store(request), page_limit(request, 20), params.before(request.query_params))
    return JSONResponse(items, headers=next_link(request, "before", older) if older is not None else None)


async def receipt(request: Request) -> JSONResponse:
    return JSONResponse(receipt_data(_store(request), request.path_params["receipt_id"]))


async def job(request: Request) -> JSONResponse:
    return JSONResponse(job_data(_store(request), request.path_params["job_id"]))


async def miner(request: Request) -> JSONResponse:
    return JSONResponse(miner_data(_store(request), request.path_params["miner_id"], now(request)))


async def stats(request: Request) -> Response:
    """Rendered at most once per block and second: the figures change only with blocks, and
    active miners and the per-minute series only with time."""
    store, at = _store(request), now(request)
    key = (store.tip().height, at // 1000)
    cached: tuple[tuple[int, int], bytes] | None = getattr(request.app.state, "stats_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, bytes(JSONResponse(stats_data(store, activity_for(request.app), at)).body))
        request.app.state.stats_cache = cached
    return Response(cached[1], media_type="application/json")


async def overview(request: Request) -> JSONResponse:
    return JSONResponse(overview_data(_store(request), activity_for(request.app), now(request)))


async def search(request: Request) -> JSONResponse:
    return JSONResponse(search_data(_store(request), request.query_params.get("q", "")))


async def genesis(request: Request) -> Response:
    """The chain's effective genesis document, public: anyone verifying a receipt or a block
    needs its authorities, and it holds nothing secret (account keys appear only as hashes)."""
    return Response(canonical(_store(request).genesis.raw), media_type="application/json")


async def miners(request: Request) -> JSONResponse:
    by = params.query_choice(request.query_params, "by", standings.RANKINGS) or "receipts"
    limit = page_limit(request, 50)
    return JSONResponse(standings.standings_data(_store(request), now(request), by, min(limit, standings.MAX_MINERS)))


async def miner_receipts(request: Request) -> Response:
    """A miner's receipts, newest first, paged with `before`; `format=csv` for a spreadsheet."""
    miner_id = request.path_params["miner_id"]
    kind = params.query_choice(request.query_params, "format", ("json", "csv")) or "json"
    items, older = standings.miner_receipts_page(
        _store(request), miner_id, page_limit(request, 100), params.before(request.query_params)
    )
    headers = next_link(request, "before", older) if older is not None else {}
    if kind == "json":
        return JSONResponse(items, headers=headers or None)
    headers["Content-Disposition"] = f'attachment; filename="{_csv_name(miner_id)}-receipts.csv"'
    return Response(standings.receipts_csv(items), media_type="text/csv; charset=utf-8", headers=headers)


def _csv_name(miner_id: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in miner_id)[:80] or "miner"
