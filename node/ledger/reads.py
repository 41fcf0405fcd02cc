"""The read model: every query the API and the website ask, served from the store's state and
indexes; none scans the chain. Access rules that belong to a query (another client's job does
not exist for a client) are applied here, raising domain errors."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from chain import indexes
from chain.errors import NotFound
from chain.jobs import counter_key, job_key, receipt_key, receipt_tx_key
from chain.miners import get_miner
from node.ledger.accounts import Principal
from node.store import Store


def _ids(store: Store, prefix: bytes, offset: int, limit: int) -> Iterator[str]:
    """Ids stored under an index prefix, newest first, after skipping offset."""
    taken = 0
    for i, (_, value) in enumerate(store.iter_state(prefix, reverse=True)):
        if i < offset:
            continue
        if taken >= limit:
            return
        taken += 1
        yield value.decode("utf-8")


def get_job(store: Store, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] | None = store.get_record(job_key(job_id))
    return job


def job_for(store: Store, principal: Principal, job_id: str) -> dict[str, Any]:
    """The job as visible to principal: another client's job is NotFound, as a missing one."""
    job = get_job(store, job_id)
    if job is None or (principal.role == "client" and job["client"] != principal.name):
        raise NotFound(f"job '{job_id}' does not exist", error_code="job_not_found")
    return job


def job_receipts(store: Store, principal: Principal, job_id: str) -> list[dict[str, Any]]:
    """The job's receipts, oldest first, as visible to principal (a job completes once: none or one)."""
    job = job_for(store, principal, job_id)
    receipt = None if job["receipt_id"] is None else get_receipt(store, job["receipt_id"])
    return [] if receipt is None else [receipt]


def latest_receipt(store: Store, principal: Principal, job_id: str) -> dict[str, Any]:
    """The job's latest receipt; NotFound (not_found) while it has none."""
    receipts = job_receipts(store, principal, job_id)
    if not receipts:
        raise NotFound(f"job '{job_id}' has no receipt yet", error_code="not_found")
    return receipts[-1]


def receipt(store: Store, receipt_id: str) -> dict[str, Any]:
    """The receipt; NotFound (receipt_not_found) if there is none by that id."""
    found = get_receipt(store, receipt_id)
    if found is None:
        raise NotFound(f"receipt '{receipt_id}' does not exist", error_code="receipt_not_found")
    return found


def list_jobs(store: Store, *, client: str | None, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    if client is None:
        prefix = indexes.jobs_with_status(status) if status else indexes.JOBS
    else:
        prefix = indexes.jobs_of_client(client, status or None)
    jobs = (get_job(store, job_id) for job_id in _ids(store, prefix, offset, limit))
    return [j for j in jobs if j is not None]


def oldest_pending_for_models(store: Store, models: list[str]) -> dict[str, Any] | None:
    """The oldest pending job whose model is one of models (FIFO by submission). Each model's
    queue head is held in memory by the store (Store.queue_head), so a poll reads no index."""
    best: tuple[bytes, bytes] | None = None
    for model in set(models):
        head = store.queue_head(model)
        if head is not None and (best is None or head[0] < best[0]):
            best = head
    return None if best is None else get_job(store, best[1].decode("utf-8"))


def pending_for_models(store: Store, models: Iterable[str]) -> Iterator[str]:
    """The ids of the pending jobs of any of models, oldest first (FIFO by submission): the
    models' queues merged by sequence number, read lazily from the store's cached queue heads."""
    queues = [store.queue(model) for model in sorted(set(models))]
    for _, job_id in heapq.merge(*queues):
        yield job_id.decode("utf-8")


def pending_for(store: Store, job_id: str, models: Collection[str]) -> bool:
    """Whether job_id is pending, for one of models."""
    job = get_job(store, job_id)
    return job is not None and job["status"] == "pending" and job["model"] in models


def get_receipt(store: Store, receipt_id: str) -> dict[str, Any] | None:
    receipt: dict[str, Any] | None = store.get_record(receipt_key(receipt_id))
    return receipt


def receipt_height(store: Store, receipt_id: str) -> int | None:
    tx_hash = store.get(receipt_tx_key(receipt_id))
    if tx_hash is None:
        return None
    location = store.tx_location(tx_hash.decode("ascii"))
    return None if location is None else location[0]


def list_receipts(store: Store, *, client: str | None, provider: str | None, limit: int) -> list[dict[str, Any]]:
    prefix = indexes.receipts_of(client or None, provider or None)
    receipts = (get_receipt(store, rid) for rid in _ids(store, prefix, 0, limit))
    return [r for r in receipts if r is not None]


def receipts_before(store: Store, limit: int, before: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """Every receipt, newest first, from those numbered below `before` (receipts are numbered from
    1 in chain order); and the number that asks for the page after these (None: none is left)."""
    stop = None if before is None else b"%016x" % before
    receipts: list[dict[str, Any]] = []
    taken, last = 0, None
    for at, rid in itertools.islice(store.iter_state(indexes.RECEIPTS, reverse=True, stop=stop), limit):
        taken, last = taken + 1, int(at, 16)
        receipt = get_receipt(store, rid.decode("utf-8"))
        if receipt is not None:
            receipts.append(receipt)
    return receipts, last if taken == limit and last is not None and last > 1 else None


def active_miners(store: Store, window_s: int, now: int) -> int:
    since = now - window_s * 1000
    return sum(1 for _ in store.iter_state(indexes.SEEN, start=f"{max(since, 0):016x}".encode()))


def network_stats(store: Store, now: int) -> dict[str, Any]:
    return {
        "total_jobs": store.get_int(counter_key("jobs")),
        "active_miners": active_miners(store, store.genesis.params.active_miner_window_s, now),
        "total_receipts": store.get_int(counter_key("receipts")),
        "block_height": store.tip().height,
    }


def miner(store: Store, miner_id: str) -> dict[str, Any] | None:
    return get_miner(store, miner_id)
