"""How records are shown over HTTP: the spec's Job, Receipt and Miner shapes."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any


def iso(ms: int) -> str:
    """Unix milliseconds as ISO 8601 UTC with millisecond precision."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """A whole second as ISO 8601 UTC (a job's times, a block's, repeat the same few seconds)."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "")


JOB_TIMES = ("created_at", "started_at", "completed_at")
JOB_FIELDS = (
    "job_id",
    "status",
    "client",
    "prompt",
    "model",
    "params",
    "result",
    "miner_id",
    "attempts",
    "error",
    "receipt_id",
)


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """The Job schema; absent values are omitted rather than null."""
    out = {name: job[name] for name in JOB_FIELDS if job.get(name) is not None}
    for name in JOB_TIMES:
        if job.get(name) is not None:
            out[name] = iso(job[name])
    return out


def miner_view(miner: dict[str, Any]) -> dict[str, Any]:
    out = {
        "miner_id": miner["miner_id"],
        "owner": miner["owner"],
        "capabilities": miner["capabilities"],
        "registered_at": iso(miner["registered_at"]),
        "last_seen": iso(miner["last_seen"]),
        "receipts": miner["receipts"],
        "units": miner["units"],
    }
    if miner.get("gpu_info") is not None:
        out["gpu_info"] = miner["gpu_info"]
    if miner.get("miner_pubkey") is not None:
        out["miner_pubkey"] = miner["miner_pubkey"]
    return out
