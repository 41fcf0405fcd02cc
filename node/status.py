"""`aitbc-node status`: the status document a node serves at GET /status (node.ledger.status),
rendered as text, one fact per line."""

from __future__ import annotations

from typing import Any

from chain.jobs import STATUSES


def _age(seconds: float) -> str:
    from node.progress import format_duration

    return format_duration(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def _group_rows(group: dict[str, Any], this_node: bool) -> list[tuple[str, str]]:
    """An authority group member's view (node.group.Group.health): who seals, in which term,
    and whether this member reaches etcd."""
    leader = group.get("sequencer")
    if isinstance(leader, dict):
        who = f"{leader.get('url', '?')} (key {str(leader.get('key', ''))[:16]}…)"
        sequencer = f"{who}{', this node' if this_node else ''}, term {group.get('term', '?')}"
    else:
        sequencer = "none elected (writes get 503 until one is)"
    rows = [("sequencer", sequencer), ("etcd", str(group.get("etcd", "?")))]
    if group.get("halted"):
        rows.append(("halted", str(group["halted"])))
    return rows


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
    sync, group = status.get("sync"), status.get("group")
    if isinstance(group, dict):
        rows += _group_rows(group, this_node=status.get("role") == "sequencer")
    elif isinstance(sync, dict):
        if sync.get("upstream"):
            lag = f"{sync.get('lag_blocks', '?')} blocks"
            if sync.get("lag_seconds") is not None:
                lag += f", {_age(float(sync['lag_seconds']))}"
            rows.append(("upstream", f"{sync['upstream']} (behind by {lag})"))
        alarm = sync.get("alarm")
        if isinstance(alarm, dict):
            ours, theirs = alarm.get("ours") or {}, alarm.get("theirs") or {}
            rows.append(
                (
                    "ALARM",
                    f"{alarm.get('kind')} at height {alarm.get('height')}: block {str(theirs.get('hash'))[:16]}… "
                    f"({theirs.get('authority')}) from {alarm.get('upstream')} conflicts with block "
                    f"{str(ours.get('hash'))[:16]}… ({ours.get('authority')}); refused",
                )
            )
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
