"""Jobs: submitted by clients, claimed and completed (or failed) by miners.

pending -> running (claim) -> completed (complete) | pending again (fail, lease expiry)
        -> failed (after params.max_attempts) ; pending|running -> cancelled (cancel)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from chain import indexes, miners
from chain.accounts import get_account
from chain.context import ApplyContext
from chain.errors import Conflict, InvalidTransaction, NotFound, TooLarge, ValidationError
from chain.genesis import Params
from chain.receipts import (
    MINER_FIELDS,
    body_fields,
    has_receipt_fields,
    miner_signer,
    price_e8,
    receipt_body,
    receipt_signer,
    result_hash,
)
from chain.state import RecordReader, WorkingState, key

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
OPEN_STATUSES = ("pending", "running")
DEFAULT_MODEL = "llama3.2"
MAX_SKIP = 256
"""Most job ids a job.claim_next may pass over."""
DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType({"max_tokens": 256, "temperature": 0.7, "top_p": 0.9})
MAX_ERROR_CHARS = 4096


# -- keys ------------------------------------------------------------------------

# The hottest keys are built from a prefix made once (the same bytes as key(...)).
_JOB, _RECEIPT, _RECEIPT_TX = key("job", ""), key("rcpt", ""), key("rcptx", "")


def job_key(job_id: str) -> bytes:
    return _JOB + job_id.encode("utf-8")


def receipt_key(receipt_id: str) -> bytes:
    return _RECEIPT + receipt_id.encode("utf-8")


def receipt_tx_key(receipt_id: str) -> bytes:
    return _RECEIPT_TX + receipt_id.encode("utf-8")


@functools.lru_cache(maxsize=256)
def counter_key(*parts: str) -> bytes:
    """A counter's key; counters are a small fixed set, so each is built once."""
    return key("ctr", *parts)


# -- validation shared with the API -----------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_job_request(prompt: Any, model: Any, params: Any, rules: Params) -> tuple[str, dict[str, Any]]:
    """Check a job request; return the model and the params with defaults filled in."""
    if prompt is None:
        raise ValidationError("prompt is required")
    if not isinstance(prompt, str):
        raise ValidationError("prompt must be a string")
    if not prompt.strip():
        raise ValidationError("prompt must not be empty")
    if len(prompt.encode("utf-8", "surrogatepass")) > rules.max_prompt_bytes:
        raise TooLarge(f"prompt is larger than {rules.max_prompt_bytes} bytes")
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str):
        raise ValidationError("model must be a string")
    if model not in rules.prices:
        known = ", ".join(sorted(rules.prices))
        raise ValidationError(
            f"model '{model}' is not offered on this network (known: {known})", error_code="unknown_model"
        )
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError("params must be an object")
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValidationError(f"params.{unknown[0]} is not a known parameter (known: max_tokens, temperature, top_p)")
    merged = {**DEFAULT_PARAMS, **{k: v for k, v in params.items() if v is not None}}
    max_tokens, temperature, top_p = merged["max_tokens"], merged["temperature"], merged["top_p"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 32768:
        raise ValidationError("params.max_tokens must be an integer from 1 to 32768")
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise ValidationError("params.temperature must be a number from 0 to 2")
    if not _is_number(top_p) or not 0 < top_p <= 1:
        raise ValidationError("params.top_p must be a number greater than 0 and at most 1")
    return model, merged


def validate_result(result: Any, rules: Params) -> str:
    if not isinstance(result, str):
        raise ValidationError("result must be a string")
    if len(result.encode("utf-8", "surrogatepass")) > rules.max_result_bytes:
        raise TooLarge(f"result is larger than {rules.max_result_bytes} bytes")
    return result


# -- reads -----------------------------------------------------------------------


def get_job(state: RecordReader, job_id: Any) -> dict[str, Any]:
    if not isinstance(job_id, str):
        raise ValidationError("job_id must be a string")
    job: dict[str, Any] | None = state.get_record(job_key(job_id))
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist", error_code="job_not_found")
    return job


def _save(state: WorkingState, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Write a job and move its status index entries and counters."""
    if old is not None:
        for k in indexes.job_status_entries(old):
            state.delete(k)
        state.add_int(counter_key("status", old["status"]), -1)
    for k in indexes.job_status_entries(new):
        state.put(k, new["job_id"].encode("utf-8"))
    state.add_int(counter_key("status", new["status"]), 1)
    state.put_record(job_key(new["job_id"]), new)
    return new


def check_running_claim(job: dict[str, Any], miner_id: str) -> None:
    """The job is running, and under miner_id's claim: Conflict naming which does not hold."""
    if job["status"] != "running":
        raise Conflict(f"job '{job['job_id']}' is {job['status']}, not running", error_code="job_not_running")
    if job["miner_id"] != miner_id:
        raise Conflict(f"job '{job['job_id']}' is claimed by another miner", error_code="claim_held_by_other")


def _running_for(state: WorkingState, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job and the miner, checking the miner holds the job's current claim."""
    miner = miners.owned_miner(state, payload.get("miner_id"), payload.get("owner"))
    job = get_job(state, payload.get("job_id"))
    check_running_claim(job, miner["miner_id"])
    return job, miner


def _release(state: WorkingState, job: dict[str, Any], error: str, ctx: ApplyContext) -> dict[str, Any]:
    """Requeue a running job, or mark it failed once its attempts are used up."""
    failed = job["attempts"] >= ctx.genesis.params.max_attempts
    new = {
        **job,
        "status": "failed" if failed else "pending",
        "error": error,
        "lease_deadline": None,
    }
    if failed:
        new["completed_at"] = ctx.time_ms
    else:
        new.update(miner_id=None, started_at=None)
    return _save(state, job, new)


# -- transitions -----------------------------------------------------------------


def submit(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    job_id = miners.validate_id("job_id", payload.get("job_id"), 64)
    client = payload.get("client")
    miners.require_active(state, client, ("client", "admin"))
    assert isinstance(client, str), "require_active refuses any other"
    model, params = validate_job_request(
        payload.get("prompt"), payload.get("model"), payload.get("params"), ctx.genesis.params
    )
    if state.get(job_key(job_id)) is not None:
        raise Conflict(f"job '{job_id}' already exists", error_code="job_exists")
    seq = state.add_int(counter_key("jobs"), 1)
    job = {
        "job_id": job_id,
        "seq": seq,
        "client": client,
        "prompt": payload["prompt"],
        "model": model,
        "params": params,
        "status": "pending",
        "created_at": ctx.time_ms,
        "started_at": None,
        "completed_at": None,
        "miner_id": None,
        "result": None,
        "receipt_id": None,
        "attempts": 0,
        "error": None,
        "lease_deadline": None,
    }
    for k, v in indexes.new_job_entries(job_id, client, seq):
        state.put(k, v)
    return _save(state, None, job)


def claim(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    miner = miners.owned_miner(state, payload.get("miner_id"), payload.get("owner"))
    job = get_job(state, payload.get("job_id"))
    if job["status"] != "pending":
        raise Conflict(f"job '{job['job_id']}' is {job['status']}, not pending", error_code="job_not_pending")
    if job["model"] not in miner["capabilities"]:
        raise Conflict(
            f"miner '{miner['miner_id']}' does not serve model '{job['model']}'", error_code="capability_mismatch"
        )
    return _start(state, job, miner, ctx)


def claim_next(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    """Claim the oldest pending job (by submission) whose model the miner serves and which
    `skip` (job ids on offer to other miners, if any) does not name. The job is picked here,
    from the state, so every node applying the transaction picks the same one."""
    if not {"miner_id", "owner"} <= set(payload) <= {"miner_id", "owner", "skip"}:
        raise InvalidTransaction("job.claim_next carries miner_id, owner and optionally skip")
    skip = payload.get("skip", [])
    if not isinstance(skip, list) or len(skip) > MAX_SKIP or not all(isinstance(j, str) for j in skip):
        raise InvalidTransaction(f"job.claim_next's skip is a list of at most {MAX_SKIP} job ids")
    passed_over = {j.encode("utf-8") for j in skip}
    miner = miners.owned_miner(state, payload["miner_id"], payload["owner"])
    heads = []
    for model in sorted(set(miner["capabilities"])):
        queue = state.scan(indexes.pending_queue(model))  # (seq, job id), oldest first
        head = next((entry for entry in queue if entry[1] not in passed_over), None)
        if head is not None:
            heads.append(head)
    if not heads:
        raise Conflict(
            f"no pending job for the models miner '{miner['miner_id']}' serves", error_code="no_job_available"
        )
    return _start(state, get_job(state, min(heads)[1].decode("utf-8")), miner, ctx)


def _start(state: WorkingState, job: dict[str, Any], miner: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    """The pending job, now running under the miner's claim and lease."""
    new = {
        **job,
        "status": "running",
        "miner_id": miner["miner_id"],
        "started_at": ctx.time_ms,
        "attempts": job["attempts"] + 1,
        "lease_deadline": ctx.time_ms + ctx.genesis.params.lease_seconds * 1000,
    }
    miners.touch(state, miner, ctx)
    return _save(state, job, new)


def complete(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    job, miner = _running_for(state, payload)
    rules = ctx.genesis.params
    result = validate_result(payload.get("result"), rules)
    completed_at = payload.get("completed_at")
    if not isinstance(completed_at, int) or isinstance(completed_at, bool):
        raise ValidationError("completed_at must be an integer (Unix milliseconds)")
    if not job["started_at"] <= completed_at <= ctx.time_ms:
        raise ValidationError("completed_at must lie between the claim and now")
    receipt = payload.get("receipt")
    checked = ctx.checked.get(ctx.tx_hash)  # signatures checked ahead, if they were
    cosigned = miner.get("miner_pubkey") is not None
    if not has_receipt_fields(receipt, cosigned):
        if cosigned and isinstance(receipt, dict) and not set(MINER_FIELDS) <= set(receipt):
            raise ValidationError(
                f"miner '{miner['miner_id']}' registered a miner_pubkey: the completion must carry its miner_signature",
                error_code="miner_signature_required",
            )
        raise InvalidTransaction("job.complete must carry a signed receipt with the receipt fields")
    if cosigned:
        _check_cosignature(receipt, miner, result, checked[1] if checked else miner_signer(receipt))
    price_per_unit = rules.price_per_unit(job["model"])
    expected = receipt_body(
        receipt_id=miners.validate_id("receipt_id", receipt.get("receipt_id"), 64),
        job=job,
        provider=miner["miner_id"],
        result=result,
        completed_at_ms=completed_at,
        price_per_unit=price_per_unit,
        coordinator_id=ctx.genesis.chain_id,
    )
    # A receipt of the legacy form (sealed by 0.1.x) is compared on the fields it has.
    if any(receipt[k] != expected[k] for k in body_fields(receipt)):
        raise Conflict("receipt does not match the job's current claim and result", error_code="receipt_mismatch")
    signer = checked[0] if checked else receipt_signer(receipt)
    if signer is None or signer.hex() not in ctx.genesis.authorities:
        raise InvalidTransaction("receipt is not signed by an authority", error_code="receipt_signature_invalid")
    receipt_id = expected["receipt_id"]
    if state.get(receipt_key(receipt_id)) is not None:
        raise Conflict(f"receipt '{receipt_id}' already exists", error_code="receipt_exists")

    seq = state.add_int(counter_key("receipts"), 1)
    state.put_record(receipt_key(receipt_id), receipt)
    state.put(receipt_tx_key(receipt_id), ctx.tx_hash.encode("ascii"))
    rid = receipt_id.encode("utf-8")
    for k in indexes.receipt_entries(seq, job["client"], miner["miner_id"]):
        state.put(k, rid)
    state.add_int(counter_key("units"), expected["units"])
    state.add_int(counter_key("price_e8"), price_e8(expected["units"], price_per_unit))
    miner = {**miner, "receipts": miner["receipts"] + 1, "units": miner["units"] + expected["units"]}
    miners.touch(state, miner, ctx)
    new = {
        **job,
        "status": "completed",
        "result": result,
        "completed_at": completed_at,
        "receipt_id": receipt_id,
        "lease_deadline": None,
    }
    _save(state, job, new)
    return receipt


def _check_cosignature(receipt: dict[str, Any], miner: dict[str, Any], result: str, signer: bytes | None) -> None:
    """The receipt's result_hash is the result's, and the miner's registered key (signer: the
    one whose co-signature verifies) signed it."""
    if receipt["result_hash"] != result_hash(result):
        raise ValidationError(
            "receipt result_hash is not the BLAKE3 hash of the result", error_code="miner_signature_invalid"
        )
    if signer is None or signer.hex() != miner["miner_pubkey"]:
        raise ValidationError(
            f"miner_signature does not verify with the miner_pubkey registered for '{miner['miner_id']}'",
            error_code="miner_signature_invalid",
        )


def validate_error(error: Any) -> str:
    """A miner's failure report: a non-empty string of at most MAX_ERROR_CHARS."""
    if not isinstance(error, str) or not error.strip():
        raise ValidationError("error must be a non-empty string")
    if len(error) > MAX_ERROR_CHARS:
        raise TooLarge(f"error is longer than {MAX_ERROR_CHARS} characters")
    return error


def fail(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    job, miner = _running_for(state, payload)
    error = validate_error(payload.get("error"))
    miners.touch(state, miner, ctx)
    return _release(state, job, error, ctx)


def requeue(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    """Lease expiry, decided from block time so that every replica agrees."""
    job = get_job(state, payload.get("job_id"))
    deadline = payload.get("lease_deadline")
    if job["status"] != "running" or job["lease_deadline"] != deadline:
        raise Conflict(f"job '{job['job_id']}' holds no such lease", error_code="lease_not_held")
    if deadline > ctx.time_ms:
        raise Conflict(f"job '{job['job_id']}' lease has not expired", error_code="lease_not_expired")
    return _release(state, job, "lease expired", ctx)


def cancel(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    job = get_job(state, payload.get("job_id"))
    sender = payload.get("sender")
    account = get_account(state, sender) if isinstance(sender, str) else None
    if account is None or (account["role"] != "admin" and job["client"] != sender):
        # Another client's job is indistinguishable from a missing one.
        raise NotFound(f"job '{job['job_id']}' does not exist", error_code="job_not_found")
    if job["status"] not in OPEN_STATUSES:
        raise Conflict(
            f"job '{job['job_id']}' is {job['status']} and cannot be cancelled", error_code="job_not_cancellable"
        )
    new = {**job, "status": "cancelled", "completed_at": ctx.time_ms, "lease_deadline": None}
    return _save(state, job, new)
