"""The public explorer: what every explorer page shows.

Each `*_data` function builds the data of one page. The JSON endpoints (api/explorer.py)
and the website (explorer_ui/web.py) both call it, so a page and its JSON never differ.
Every read is a few indexed lookups. Nothing private leaves this module: prompts, results,
failure texts, key hashes and idempotency records are withheld from every transaction shown.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict
from urllib.parse import quote

from chain.blocks import Block, BlockHeader, check_seal
from chain.errors import InvalidBlock, NotFound, ValidationError
from chain.jobs import STATUSES, counter_key, receipt_tx_key
from chain.merkle import inclusion_proof, verify_inclusion
from chain.transactions import Transaction
from node.ledger import reads as queries
from node.ledger.activity import Activity
from node.ledger.receipts import verify_receipt_document
from node.ledger.views import iso, miner_view
from node.store import Store

HEX64 = re.compile(r"[0-9a-f]{64}")
HEIGHT = re.compile(r"[0-9]{1,19}")
MAX_QUERY_CHARS = 200
PRICE_SCALE = 100_000_000

SUMMARY_FIELDS = ("job_id", "miner_id", "model", "name", "role", "client")
PUBLIC_FIELDS = (
    "job_id",
    "miner_id",
    "owner",
    "client",
    "sender",
    "model",
    "params",
    "name",
    "role",
    "capabilities",
    "gpu_info",
)
TIME_FIELDS = ("completed_at", "lease_deadline")
"""Payload fields in Unix milliseconds, shown as ISO 8601."""
PRIVATE_NOTES = {
    "prompt": "the job's prompt",
    "result": "the job's result",
    "key_hash": "the account's API key hash",
    "error": "the miner's failure text",
    "idempotency": "the Idempotency-Key this write was sent with",
}


# -- shapes ------------------------------------------------------------------------------


def block_summary(block: Block | BlockHeader) -> dict[str, Any]:
    """The spec's Block: height, hash, ISO timestamp, transaction count; and the key of the
    authority that sealed it (empty for block 0, which genesis.json derives)."""
    header = block.header if isinstance(block, Block) else block
    return {
        "height": header.height,
        "hash": header.hash,
        "timestamp": iso(header.timestamp),
        "transactions": header.tx_count,
        "proposer": header.proposer,
    }


def tx_summary(tx: Transaction, height: int) -> dict[str, Any]:
    """A transaction's public face: never a prompt, a result or a key hash."""
    payload = tx.payload
    summary = {k: payload[k] for k in SUMMARY_FIELDS if isinstance(payload.get(k), str)}
    receipt = payload.get("receipt")
    if isinstance(receipt, dict) and isinstance(receipt.get("receipt_id"), str):
        summary["receipt_id"] = receipt["receipt_id"]
    return {
        "hash": tx.hash.hex(),
        "type": tx.type,
        "block_height": height,
        "timestamp": iso(tx.timestamp),
        "summary": summary,
    }


def public_fields(tx: Transaction) -> tuple[dict[str, Any], list[str]]:
    """The payload fields anyone may see, and the names of those withheld."""
    shown: dict[str, Any] = {}
    withheld: list[str] = []
    for name, value in sorted(tx.payload.items()):
        if name in PUBLIC_FIELDS:
            shown[name] = value
        elif name in TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            shown[name] = iso(value)
        elif name == "receipt" and isinstance(value, dict):
            shown[name] = value
        else:
            withheld.append(name)
    return shown, withheld


def job_public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the explorer shows it: status, model, parties, times; no prompt, result or error."""
    out: dict[str, Any] = {
        "job_id": job["job_id"],
        "status": job["status"],
        "model": job["model"],
        "client": job["client"],
        "attempts": job["attempts"],
    }
    for name in ("miner_id", "receipt_id"):
        if job.get(name) is not None:
            out[name] = job[name]
    for name in ("created_at", "started_at", "completed_at"):
        if job.get(name) is not None:
            out[name] = iso(job[name])
    return out


# -- reads -------------------------------------------------------------------------------


def recent_headers(store: Store, limit: int, before: int | None = None) -> list[BlockHeader]:
    """Up to limit block headers below height `before` (default: from the tip), newest first."""
    top = store.tip().height if before is None else min(before - 1, store.tip().height)
    headers = (store.header(h) for h in range(top, max(top - limit, -1), -1))
    return [h for h in headers if h is not None]


def recent_transactions(store: Store, limit: int, after: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Up to limit transactions, newest first, starting after position (height, index)."""
    out: list[dict[str, Any]] = []
    height = store.tip().height if after is None else after[0]
    while height >= 0 and len(out) < limit:
        block = store.block(height)
        if block is not None:
            txs = list(enumerate(block.transactions))
            if after is not None and height == after[0]:
                txs = txs[: after[1]]
            out.extend(tx_summary(tx, height) for _, tx in reversed(txs))
        height -= 1
    return out[:limit]


def _block_ref(store: Store, ref: str) -> Block:
    if HEIGHT.fullmatch(ref):
        height: int | None = int(ref)
    elif HEX64.fullmatch(ref.lower()):
        height = store.height_of(ref.lower())
    else:
        raise ValidationError(f"'{ref[:80]}' is neither a block height nor a block hash (64 hex digits)")
    block = store.block(height) if height is not None else None
    if block is None:
        raise NotFound(f"block '{ref[:80]}' does not exist", error_code="block_not_found")
    return block


def _tx_location(store: Store, tx_hash: str) -> tuple[int, int]:
    if not HEX64.fullmatch(tx_hash.lower()):
        raise ValidationError("a transaction hash is 64 hex digits")
    location = store.tx_location(tx_hash.lower())
    if location is None:
        raise NotFound(f"transaction '{tx_hash}' does not exist", error_code="transaction_not_found")
    return location


# -- page data (each is one page and its JSON twin) ---------------------------------------


def blocks_data(store: Store, limit: int, before: int | None) -> list[dict[str, Any]]:
    return [block_summary(h) for h in recent_headers(store, limit, before)]


def block_data(store: Store, ref: str) -> dict[str, Any]:
    """Every header field, the seal and who made it ("authority 2 of 3", from the genesis list:
    in an authority group each sequencer seals with its own key), its neighbours and its
    transactions."""
    block = _block_ref(store, ref)
    header = block.header
    tip = store.tip().height
    try:
        check_seal(block, store.genesis.authorities)
        seal_valid = True
    except InvalidBlock:
        seal_valid = block.height == 0 and block.signature == ""  # genesis is derived, not sealed
    return {
        **block_summary(block),
        "prev_hash": header.prev_hash,
        "tx_root": header.tx_root,
        "state_root": header.state_root,
        "proposer": header.proposer,
        "sealer": store.genesis.authority_label(header.proposer),
        "signature": block.signature,
        "seal_valid": seal_valid,
        "size_bytes": len(block.encode()),
        "previous_height": block.height - 1 if block.height > 0 else None,
        "next_height": block.height + 1 if block.height < tip else None,
        "confirmations": tip - block.height,
        "transaction_list": [tx_summary(tx, block.height) for tx in block.transactions],
    }


def transactions_data(store: Store, limit: int, cursor: str | None) -> list[dict[str, Any]]:
    after = _tx_location(store, cursor) if cursor else None
    return recent_transactions(store, limit, after)


def transaction_data(store: Store, tx_hash: str) -> dict[str, Any]:
    """A transaction's public fields, its block, and its Merkle inclusion proof."""
    height, index = _tx_location(store, tx_hash)
    block = store.block(height)
    assert block is not None, "the tx index only names stored blocks"
    tx = block.transactions[index]
    leaves = [t.hash for t in block.transactions]
    proof = inclusion_proof(leaves, index)
    fields, withheld = public_fields(tx)
    return {
        **tx_summary(tx, height),
        "block_hash": block.hash,
        "index": index,
        "fields": fields,
        "withheld": [{"field": name, "what": PRIVATE_NOTES.get(name, "not public")} for name in withheld],
        "inclusion_proof": {
            "tx_root": block.header.tx_root,
            "leaf_index": index,
            "tree_size": len(leaves),
            "path": [h.hex() for h in proof],
            "valid": verify_inclusion(tx.hash, index, len(leaves), proof, bytes.fromhex(block.header.tx_root)),
        },
    }


def receipts_data(store: Store, limit: int, before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Receipts newest first, numbered below `before`; and the `before` of the next page, if any."""
    return queries.receipts_before(store, limit, before)


def receipt_data(store: Store, receipt_id: str) -> dict[str, Any]:
    """The receipt as signed, what verifying it says, and where it is on chain."""
    receipt = queries.get_receipt(store, receipt_id)
    if receipt is None:
        raise NotFound(f"receipt '{receipt_id}' does not exist", error_code="receipt_not_found")
    tx_hash = store.get(receipt_tx_key(receipt_id))
    return {
        "receipt": receipt,
        "verification": verify_receipt_document(store, receipt),
        "transaction": None if tx_hash is None else tx_hash.decode("ascii"),
    }


def receipt_json(receipt: dict[str, Any]) -> str:
    """The receipt as indented JSON with sorted keys, for people to read and copy."""
    return json.dumps(receipt, indent=2, sort_keys=True)


def job_data(store: Store, job_id: str) -> dict[str, Any]:
    job = queries.get_job(store, job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist", error_code="job_not_found")
    out = job_public(job)
    receipt = queries.get_receipt(store, job["receipt_id"]) if job.get("receipt_id") else None
    out["receipt"] = receipt
    return out


def miner_data(store: Store, miner_id: str, now_ms: int) -> dict[str, Any]:
    miner = queries.miner(store, miner_id)
    if miner is None:
        raise NotFound(f"miner '{miner_id}' is not registered", error_code="miner_not_found")
    window_ms = store.genesis.params.active_miner_window_s * 1000
    return {
        **miner_view(miner),
        "active": now_ms - miner["last_seen"] <= window_ms,
        "recent_receipts": queries.list_receipts(store, client=None, provider=miner_id, limit=20),
    }


class MinuteActivity(TypedDict):
    """One minute of the last hour, as the stats page and its JSON show it."""

    minute: str
    blocks: int
    transactions: int
    jobs: int
    receipts: int


def stats_data(store: Store, activity: Activity, now_ms: int) -> dict[str, Any]:
    """NetworkStats, plus totals, jobs by status, and activity over the last hour."""
    minutes = activity.last_hour()
    per_minute: list[MinuteActivity] = [
        {
            "minute": iso(start),
            "blocks": c.blocks,
            "transactions": c.transactions,
            "jobs": c.jobs,
            "receipts": c.receipts,
        }
        for start, c in minutes
    ]
    hour = len(minutes)
    return {
        **queries.network_stats(store, now_ms),
        "jobs_by_status": {s: store.get_int(counter_key("status", s)) for s in STATUSES},
        "total_units": store.get_int(counter_key("units")),
        "total_price": store.get_int(counter_key("price_e8")) / PRICE_SCALE,
        "transaction_count": store.tx_count(),
        "blocks_per_minute": round(sum(m["blocks"] for m in per_minute) / hour, 2),
        "jobs_per_minute": round(sum(m["jobs"] for m in per_minute) / hour, 2),
        "receipts_per_minute": round(sum(m["receipts"] for m in per_minute) / hour, 2),
        "last_hour": per_minute,
        "recent_block_sizes": [{"height": h, "transactions": n} for h, n, _ in activity.recent_blocks()],
    }


def overview_data(store: Store, activity: Activity, now_ms: int) -> dict[str, Any]:
    """The home page: stats, and the latest blocks, transactions and receipts."""
    return {
        "stats": stats_data(store, activity, now_ms),
        "blocks": blocks_data(store, 10, None),
        "transactions": recent_transactions(store, 10),
        "receipts": receipts_data(store, 8)[0],
    }


def search_data(store: Store, query: str) -> dict[str, Any]:
    """Everything the query names: a height, block hash, tx hash, job, receipt or miner id."""
    q = query.strip()
    if not q:
        raise ValidationError("q is required: a height, block hash, transaction hash, job id, receipt id or miner id")
    if len(q) > MAX_QUERY_CHARS:
        raise ValidationError(f"q must be at most {MAX_QUERY_CHARS} characters")
    results: list[dict[str, str]] = []
    if HEIGHT.fullmatch(q) and int(q) <= store.tip().height:
        results.append({"kind": "block", "id": str(int(q)), "path": f"/blocks/{int(q)}"})
    if HEX64.fullmatch(q.lower()):
        h = q.lower()
        if store.height_of(h) is not None:
            results.append({"kind": "block", "id": h, "path": f"/blocks/{h}"})
        if store.tx_location(h) is not None:
            results.append({"kind": "transaction", "id": h, "path": f"/transactions/{h}"})
    if not any(ord(c) < 32 or ord(c) == 127 for c in q):
        if queries.get_job(store, q) is not None:
            results.append({"kind": "job", "id": q, "path": f"/jobs/{quote(q, safe='')}"})
        if queries.get_receipt(store, q) is not None:
            results.append({"kind": "receipt", "id": q, "path": f"/receipts/{quote(q, safe='')}"})
        if queries.miner(store, q) is not None:
            results.append({"kind": "miner", "id": q, "path": f"/miners/{quote(q, safe='')}"})
    if not results:
        raise NotFound(f"nothing on this chain matches '{q[:80]}'", error_code="not_found")
    return {"query": q, "results": results}
