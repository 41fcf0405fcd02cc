"""Miners' standings over days, each miner's receipts for its own accounting, and the network's
hourly activity: read from the store's activity counters (node/store.py, `D` keys).

Why counters in the store, and not an in-memory aggregate: they are written in each block's
own batch, so they are exactly as durable as the blocks, cost nothing at start-up on a chain
of any length, and `aitbc-node reindex` rebuilds them with the rest of what blocks derive. They
are not state: no state root covers them, so old chains verify and followers agree as before.
A window is a range read of buckets x miners: 24 hourly buckets for the last 24 h, daily
buckets for 7 and 30 days. Every window ends with the bucket holding `now`, which may be
partly over.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable
from typing import Any, TypedDict

from chain import indexes
from chain.errors import NotFound, ValidationError
from node.ledger import reads as queries
from node.ledger.views import iso
from node.store import DAY_MS, HOUR_MS, MINER_DAYS, MINER_HOURS, NETWORK_HOURS, Store

WINDOWS = {"24h": (MINER_HOURS, HOUR_MS, 24), "7d": (MINER_DAYS, DAY_MS, 7), "30d": (MINER_DAYS, DAY_MS, 30)}
"""Window name -> (counter family, bucket size in ms, buckets)."""
RANKINGS = ("receipts", "units")
MAX_MINERS = 100
"""Most miners one window lists."""


class Standing(TypedDict):
    rank: int
    miner_id: str
    receipts: int
    units: int


def _window(store: Store, name: str, now_ms: int, by: str, limit: int) -> dict[str, Any]:
    family, size, count = WINDOWS[name]
    last = now_ms // size
    first = last - count + 1
    totals: dict[bytes, list[int]] = {}
    for _, miner, (receipts, units) in store.activity(family, first, last):
        counts = totals.setdefault(miner, [0, 0])
        counts[0] += receipts
        counts[1] += units
    major = 0 if by == "receipts" else 1
    ranked = sorted(totals.items(), key=lambda item: (-item[1][major], -item[1][1 - major], item[0]))
    miners: list[Standing] = [
        {"rank": i + 1, "miner_id": miner.decode("utf-8", "surrogatepass"), "receipts": r, "units": u}
        for i, (miner, (r, u)) in enumerate(ranked[:limit])
    ]
    return {
        "from": iso(first * size),
        "to": iso(now_ms),
        "miners": miners,
        "miner_count": len(totals),
        "receipts": sum(c[0] for c in totals.values()),
        "units": sum(c[1] for c in totals.values()),
    }


def standings_data(store: Store, now_ms: int, by: str = "receipts", limit: int = 50) -> dict[str, Any]:
    """Miners ranked by receipts (or units) over the last 24 h, 7 d and 30 d."""
    if by not in RANKINGS:
        raise ValidationError(f"by must be one of {', '.join(RANKINGS)}")
    if not 1 <= limit <= MAX_MINERS:
        raise ValidationError(f"limit must be between 1 and {MAX_MINERS}")
    return {
        "by": by,
        "counted_from_height": store.activity_from,
        "windows": {name: _window(store, name, now_ms, by, limit) for name in WINDOWS},
    }


# -- one miner's receipts, paged, as JSON or CSV ---------------------------------------------


def miner_receipts_page(
    store: Store, miner_id: str, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """The miner's receipts, newest first, from those numbered below `before` (receipts are
    numbered from 1 in chain order, as on /explorer/receipts); and the `before` of the next
    page, or None. NotFound if no such miner is registered."""
    if queries.miner(store, miner_id) is None:
        raise NotFound(f"miner '{miner_id}' is not registered", error_code="miner_not_found")
    stop = None if before is None else b"%016x" % before
    prefix = indexes.receipts_of(provider=miner_id)
    receipts: list[dict[str, Any]] = []
    taken, last = 0, None
    for at, rid in itertools.islice(store.iter_state(prefix, reverse=True, stop=stop), limit):
        taken, last = taken + 1, int(at, 16)
        receipt = queries.get_receipt(store, rid.decode("utf-8"))
        if receipt is not None:
            receipts.append(receipt)
    return receipts, last if taken == limit and last is not None and last > 1 else None


CSV_COLUMNS = (
    "receipt_id",
    "job_id",
    "client",
    "model",
    "units",
    "unit_type",
    "price",
    "started_at",
    "completed_at",
    "duration_ms",
)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in ("started_at", "completed_at") and isinstance(value, int):
        return iso(value * 1000)  # receipts hold Unix seconds
    text = str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula: ids and names are free text.
    return "'" + text if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def receipts_csv(receipts: Iterable[dict[str, Any]]) -> str:
    """Receipts as CSV (RFC 4180, a header row; times in ISO 8601 UTC, price as on the receipt)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for receipt in receipts:
        writer.writerow([_cell(name, receipt.get(name)) for name in CSV_COLUMNS])
    return out.getvalue()


# -- the network's activity per hour (the home page's 24 h and 7 d charts) -----------------


class Period(TypedDict):
    start: str
    """ISO 8601 UTC start of the period."""
    hours: int
    blocks: int
    transactions: int
    jobs: int
    receipts: int


def hourly_activity(store: Store, now_ms: int, periods: int, hours_each: int) -> list[Period]:
    """Blocks, transactions, jobs submitted and receipts in each of the last `periods` periods of
    `hours_each` hours, oldest first; the last period holds the current hour."""
    last = now_ms // HOUR_MS
    first = last - periods * hours_each + 1
    sums = [[0, 0, 0, 0] for _ in range(periods)]
    for hour, _, counts in store.activity(NETWORK_HOURS, first, last):
        slot = sums[(hour - first) // hours_each]
        for i, value in enumerate(counts[:4]):
            slot[i] += value
    return [
        {
            "start": iso((first + i * hours_each) * HOUR_MS),
            "hours": hours_each,
            "blocks": s[0],
            "transactions": s[1],
            "jobs": s[2],
            "receipts": s[3],
        }
        for i, s in enumerate(sums)
    ]
