"""The secondary indexes: state keys under "ix" that the transition writes beside the records,
so that every listing is a prefix scan. This module is the one place their layout is spelled;
the transition writes through it and the read model (node.ledger.reads), the sequencer's lease
scan and the store's pending queues read through it.

  ix/ja/{seq}                      every job, in submission order            -> job id
  ix/jc/{client}/{seq}             a client's jobs                           -> job id
  ix/js/{status}/{seq}             jobs by status                            -> job id
  ix/jcs/{client}/{status}/{seq}   a client's jobs by status                 -> job id
  ix/pm/{model}/{seq}              pending jobs of a model, oldest first     -> job id
  ix/lease/{deadline}/{job id}     running jobs by lease deadline            -> job id
  ix/ra/{n}                        every receipt, in chain order (n from 1)  -> receipt id
  ix/rc/{client}/{n}               a client's receipts                       -> receipt id
  ix/rp/{miner}/{n}                a miner's receipts                        -> receipt id
  ix/rcp/{client}/{miner}/{n}      a client's receipts from one miner        -> receipt id
  ix/seen/{last seen}/{miner id}   miners by last heartbeat                  -> empty
  ix/idem/{expiry}/{account}/{key hash}   idempotency records by expiry      -> empty

"/" stands for chain.state.SEP; numbers are 16 hex digits so that they sort numerically. The
hot keys are concatenated from prefixes made once: the same bytes as chain.state.key(...).
"""

from __future__ import annotations

from typing import Any

from chain.state import SEP, key

INDEXES = key("ix", "")
"""The prefix of every index key."""

JOBS = key("ix", "ja", "")
LEASES = key("ix", "lease", "")
PENDING_QUEUES = key("ix", "pm", "")
"""Followed by a model and SEP: that model's pending queue (node.store keeps its head)."""
RECEIPTS = key("ix", "ra", "")
SEEN = key("ix", "seen", "")
IDEMPOTENCY_EXPIRY = key("ix", "idem", "")
"""Idempotency records (the hashed form, chain.idempotency) soonest expiry first: applying a
block deletes those expired by its time."""

_JC, _JS, _JCS = key("ix", "jc", ""), key("ix", "js", ""), key("ix", "jcs", "")
_RC, _RP, _RCP = key("ix", "rc", ""), key("ix", "rp", ""), key("ix", "rcp", "")


def _seq(n: int) -> bytes:
    return b"%016x" % n


def _part(text: str) -> bytes:
    return text.encode("utf-8") + SEP


# -- the prefixes a listing scans --------------------------------------------------------------
def jobs_with_status(status: str) -> bytes:
    return _JS + _part(status)


def jobs_of_client(client: str, status: str | None = None) -> bytes:
    return _JC + _part(client) if status is None else _JCS + _part(client) + _part(status)


def pending_queue(model: str) -> bytes:
    return PENDING_QUEUES + _part(model)


def receipts_of(client: str | None = None, provider: str | None = None) -> bytes:
    """Receipts of a client, of a provider (miner), of both, or (neither) all of them."""
    if client is not None and provider is not None:
        return _RCP + _part(client) + _part(provider)
    if client is not None:
        return _RC + _part(client)
    if provider is not None:
        return _RP + _part(provider)
    return RECEIPTS


# -- the entries the transition writes -------------------------------------------------------
def new_job_entries(job_id: str, client: str, seq: int) -> list[tuple[bytes, bytes]]:
    """The entries a submitted job gets once, whatever its status later."""
    value = job_id.encode("utf-8")
    return [(JOBS + _seq(seq), value), (jobs_of_client(client) + _seq(seq), value)]


def job_status_entries(job: dict[str, Any]) -> list[bytes]:
    """The keys that list a job under its current status (replaced when the status changes)."""
    seq, status = _seq(job["seq"]), job["status"]
    keys = [jobs_with_status(status) + seq, jobs_of_client(job["client"], status) + seq]
    if status == "pending":
        keys.append(pending_queue(job["model"]) + seq)
    if status == "running":
        keys.append(lease(job["lease_deadline"], job["job_id"]))
    return keys


def lease(deadline_ms: int, job_id: str) -> bytes:
    return LEASES + _seq(deadline_ms) + SEP + job_id.encode("utf-8")


def receipt_entries(n: int, client: str, provider: str) -> list[bytes]:
    """The keys that list receipt number n (from 1, in chain order)."""
    at = _seq(n)
    return [
        RECEIPTS + at,
        receipts_of(client=client) + at,
        receipts_of(provider=provider) + at,
        receipts_of(client, provider) + at,
    ]


def seen(last_seen_ms: int, miner_id: str) -> bytes:
    return SEEN + _seq(last_seen_ms) + SEP + miner_id.encode("utf-8")


def idempotency_expiry(expiry_ms: int, account: str, key_hash: str) -> bytes:
    return IDEMPOTENCY_EXPIRY + _seq(expiry_ms) + SEP + _part(account) + key_hash.encode("ascii")


def parse_idempotency_expiry(suffix: bytes) -> tuple[int, str, str]:
    """(expiry, account, key hash) of an entry's key after IDEMPOTENCY_EXPIRY."""
    expiry, account, key_hash = suffix.split(SEP)
    return int(expiry, 16), account.decode("utf-8"), key_hash.decode("ascii")
