"""What `GET /status` and `aitbc-node status` show: a node's role, chain, tip, load and sync.

Every figure is an O(1) read (tip, counters) or an indexed one (active miners); none
scans the chain. The public figures are aggregates only, like /explorer/stats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.jobs import STATUSES, counter_key

if TYPE_CHECKING:
    from node.runtime import Node


def node_status(node: Node) -> dict[str, Any]:
    from api.queries import active_miners
    from api.views import iso

    store = node.store
    assert store is not None
    tip = store.tip()
    now = node.clock()
    params = store.genesis.params
    jobs = {s: store.get_int(counter_key("status", s)) for s in STATUSES}
    producer = node.producer
    sync = getattr(node, "sync_status", None)
    return {
        "status": "ok",
        "version": node.version,
        "role": node.role,
        "chain_id": store.genesis.chain_id,
        "genesis_hash": store.genesis.hash,
        "height": tip.height,
        "tip_hash": tip.hash,
        "tip_time": iso(tip.timestamp),
        "tip_age_s": round(max(0, now - tip.timestamp) / 1000, 3),
        "transactions": store.tx_count(),
        "mempool_size": 0 if producer is None else producer.mempool_size,
        "jobs": {**jobs, "total": store.get_int(counter_key("jobs"))},
        "receipts": store.get_int(counter_key("receipts")),
        "active_miners": active_miners(store, params.active_miner_window_s, now),
        "websocket_subscribers": node.feed.subscribers,
        "maintenance": node.maintenance(),
        # Filled in by replication: {"upstream": url | None, "lag_blocks": int,
        # "lag_seconds": float, "peers": [{"name", "height", "lag_blocks"}]}.
        "sync": sync() if callable(sync) else None,
    }


def _age(seconds: float) -> str:
    from node.progress import format_duration

    return format_duration(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def render_status(status: dict[str, Any], node_url: str) -> str:
    """The text form of `aitbc-node status`: one fact per line, aligned."""
    jobs = status.get("jobs") or {}
    job_text = ", ".join(f"{jobs.get(s, 0)} {s}" for s in STATUSES)
    rows = [
        ("node", f"{node_url} (aitbc-node {status.get('version', '?')})"),
        ("role", str(status.get("role"))),
        ("chain", f"{status.get('chain_id')} (genesis {str(status.get('genesis_hash', ''))[:16]}…)"),
        (
            "height",
            f"{status.get('height')} (tip {str(status.get('tip_hash', ''))[:16]}…, "
            f"{_age(float(status.get('tip_age_s', 0)))} old)",
        ),
        ("mempool", f"{status.get('mempool_size', 0)} transactions"),
    ]
    sync = status.get("sync")
    if isinstance(sync, dict):
        if sync.get("upstream"):
            lag = f"{sync.get('lag_blocks', '?')} blocks"
            if sync.get("lag_seconds") is not None:
                lag += f", {_age(float(sync['lag_seconds']))}"
            rows.append(("upstream", f"{sync['upstream']} (behind by {lag})"))
        for peer in sync.get("peers") or []:
            rows.append(
                (
                    "peer",
                    f"{peer.get('name', '?')} at height {peer.get('height', '?')} "
                    f"(behind by {peer.get('lag_blocks', '?')} blocks)",
                )
            )
    else:
        rows.append(
            ("upstream", "none (this node seals its own blocks)" if status.get("role") == "authority" else "none")
        )
    rows += [
        ("jobs", f"{jobs.get('total', 0)} total: {job_text}"),
        ("receipts", str(status.get("receipts", 0))),
        ("miners", f"{status.get('active_miners', 0)} active"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
