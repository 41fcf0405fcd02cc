"""The node's status document: what `GET /status` serves and `aitbc-node status` shows.

Every figure is an O(1) read (tip, counters) or an indexed one (active miners); none
scans the chain. The public figures are aggregates only, like /explorer/stats.
"""

from __future__ import annotations

from typing import Any

from chain.jobs import STATUSES, counter_key
from node.ledger.reads import active_miners
from node.ledger.views import iso
from node.roles import SequencerRole, StandbyRole
from node.runtime import Node


def node_status(node: Node) -> dict[str, Any]:
    store = node.store
    tip = store.tip()
    now = node.clock()
    params = store.genesis.params
    jobs = {s: store.get_int(counter_key("status", s)) for s in STATUSES}
    return {
        "status": "ok",
        "version": node.version,
        "role": node.role.name,
        "chain_id": store.genesis.chain_id,
        "genesis_hash": store.genesis.hash,
        "height": tip.height,
        "tip_hash": tip.hash,
        "tip_time": iso(tip.timestamp),
        "tip_age_s": round(max(0, now - tip.timestamp) / 1000, 3),
        "transactions": store.tx_count(),
        "mempool_size": node.mempool_size(),
        "jobs": {**jobs, "total": store.get_int(counter_key("jobs"))},
        "receipts": store.get_int(counter_key("receipts")),
        "active_miners": active_miners(store, params.active_miner_window_s, now),
        "websocket_subscribers": node.feed.subscribers,
        "maintenance": node.maintenance(),
        # Filled in by replication: {"upstream": url | None, "lag_blocks": int,
        # "lag_seconds": float, "peers": [{"name", "height", "lag_blocks"}]}.
        "sync": node.sync_status(),
        # In an authority group (node.group.Group.health): {"sequencer": {"key", "url"} | None,
        # "term": int | None, "etcd": "ok" | "unreachable", "halted"?: str}; None outside one.
        "group": node.role.group.health() if isinstance(node.role, SequencerRole | StandbyRole) else None,
    }
