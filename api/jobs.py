"""Jobs: submit, list, read, cancel (clients); available, claim, complete, fail (miners)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from starlette.requests import Request

from api import queries
from api.auth import Principal, authenticate
from api.errors import ApiError
from api.parsing import node_of, page_limit, parse_datetime_ms, query_choice, query_int, read_object, require_field
from api.responses import JSONResponse
from api.views import job_view
from chain.jobs import STATUSES, validate_error, validate_job_request, validate_result
from chain.miners import validate_id
from chain.receipts import completion_signature_valid, miner_signature_block, receipt_body, result_hash, sign_receipt

log = logging.getLogger("aitbc.api")


def _job_for(request: Request, principal: Principal) -> dict[str, Any]:
    """The job named in the path, as visible to principal: another client's job is a 404."""
    job_id = request.path_params["job_id"]
    job = queries.get_job(node_of(request).store, job_id)
    if job is None or (principal.role == "client" and job["client"] != principal.name):
        raise ApiError(404, f"job '{job_id}' does not exist", "job_not_found")
    return job


def _miner_for(request: Request, principal: Principal, miner_id: Any) -> dict[str, Any]:
    """The miner, which the principal must have registered (admins may act for any miner)."""
    validate_id("miner_id", miner_id)
    miner = queries.miner(node_of(request).store, miner_id)
    if miner is None:
        raise ApiError(404, f"miner '{miner_id}' is not registered", "miner_not_found")
    if miner["owner"] != principal.name and not principal.is_admin:
        raise ApiError(403, f"miner '{miner_id}' was registered by another account", "miner_not_owned")
    return miner


def _owner(principal: Principal) -> str | None:
    return None if principal.is_admin else principal.name


_RANDOM_POOL_BYTES = 4096
_random_pool = bytearray()


def random_hex(nbytes: int) -> str:
    """nbytes from os.urandom as hex, as secrets.token_hex gives, but read a few KiB at a time:
    one system call per few hundred ids instead of one each."""
    global _random_pool
    if len(_random_pool) < nbytes:
        _random_pool = bytearray(os.urandom(_RANDOM_POOL_BYTES))
    chunk = _random_pool[-nbytes:]
    del _random_pool[-nbytes:]
    return chunk.hex()


async def submit_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    body = await read_object(request, ("prompt", "model", "params"))
    node = node_of(request)
    model, params = validate_job_request(
        body.get("prompt"), body.get("model"), body.get("params"), node.store.genesis.params
    )
    payload = {
        "job_id": "job_" + random_hex(12),
        "client": principal.name,
        "prompt": body["prompt"],
        "model": model,
        "params": params,
    }
    job = await node.producer.submit("job.submit", payload)
    return JSONResponse(job_view(job), status_code=201)


async def list_jobs(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    status = query_choice(request, "status", STATUSES)
    limit = page_limit(request, 20)
    offset = query_int(request, "offset", 0, 0)
    client = None if principal.is_admin else principal.name
    jobs = queries.list_jobs(node_of(request).store, client=client, status=status, limit=limit, offset=offset)
    return JSONResponse([job_view(j) for j in jobs])


async def get_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    return JSONResponse(job_view(_job_for(request, principal)))


def _job_receipts(request: Request, principal: Principal) -> list[dict[str, Any]]:
    """The receipts of the job in the path, oldest first (a job completes once: none or one)."""
    job = _job_for(request, principal)
    receipt = None if job["receipt_id"] is None else queries.get_receipt(node_of(request).store, job["receipt_id"])
    return [] if receipt is None else [receipt]


async def job_receipt(request: Request) -> JSONResponse:
    """The job's latest receipt (the AITBC SDK's CoordinatorReceiptClient.fetch_latest)."""
    receipts = _job_receipts(request, authenticate(request, "client"))
    if not receipts:
        job_id = request.path_params["job_id"]
        raise ApiError(404, f"job '{job_id}' has no receipt yet", "not_found")
    return JSONResponse(receipts[-1])


async def job_receipts(request: Request) -> JSONResponse:
    """Every receipt of the job, oldest first, as a list (the AITBC SDK's receipt history).
    limit and cursor are accepted for the SDK's paging; one page always holds them all."""
    principal = authenticate(request, "client")
    page_limit(request, 100)
    return JSONResponse(_job_receipts(request, principal))


async def cancel_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    job = _job_for(request, principal)
    payload = {"job_id": job["job_id"], "sender": principal.name}
    return JSONResponse(job_view(await node_of(request).producer.submit("job.cancel", payload)))


async def available_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    miner_id = request.query_params.get("miner_id")
    if miner_id is None:
        raise ApiError(400, "miner_id is required", "validation_error")
    miner = _miner_for(request, principal, miner_id)
    node = node_of(request)
    _note_seen(node, miner)
    job = queries.oldest_pending_for_models(node.store, miner["capabilities"])
    return JSONResponse(None if job is None else job_view(job))


_heartbeats: set[str] = set()


def _note_seen(node: Any, miner: dict[str, Any]) -> None:
    """A poll counts as being seen. Record it (at most every tenth of the window), without waiting."""
    window_ms = node.store.genesis.params.active_miner_window_s * 1000
    if node.clock() - miner["last_seen"] < window_ms // 10 or miner["miner_id"] in _heartbeats:
        return
    _heartbeats.add(miner["miner_id"])

    async def beat() -> None:
        try:
            await node.producer.submit("miner.heartbeat", {"miner_id": miner["miner_id"], "owner": miner["owner"]})
        except Exception as exc:  # a heartbeat is never acknowledged to anyone; losing one is harmless
            log.debug("heartbeat for a miner was not recorded: %s", exc)
        finally:
            _heartbeats.discard(miner["miner_id"])

    task = asyncio.get_running_loop().create_task(beat())
    node.background.add(task)
    task.add_done_callback(node.background.discard)


async def claim_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id",))
    miner = _miner_for(request, principal, require_field(body, "miner_id"))
    payload = {"job_id": request.path_params["job_id"], "miner_id": miner["miner_id"], "owner": miner["owner"]}
    return JSONResponse(job_view(await node_of(request).producer.submit("job.claim", payload)))


def _running_job(request: Request, miner: dict[str, Any]) -> dict[str, Any]:
    job_id = request.path_params["job_id"]
    job = queries.get_job(node_of(request).store, job_id)
    if job is None:
        raise ApiError(404, f"job '{job_id}' does not exist", "job_not_found")
    if job["status"] != "running":
        raise ApiError(409, f"job '{job_id}' is {job['status']}, not running", "job_not_running")
    if job["miner_id"] != miner["miner_id"]:
        raise ApiError(409, f"job '{job_id}' is claimed by another miner", "claim_held_by_other")
    return job


async def complete_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "result", "completed_at", "miner_signature"))
    node = node_of(request)
    result = validate_result(require_field(body, "result"), node.store.genesis.params)  # the body first, then lookups
    miner = _miner_for(request, principal, require_field(body, "miner_id"))
    job = _running_job(request, miner)
    now = node.clock()
    completed_at = now if body.get("completed_at") is None else parse_datetime_ms("completed_at", body["completed_at"])
    if not job["started_at"] // 1000 * 1000 <= completed_at <= now:
        raise ApiError(400, "completed_at must lie between the job's started_at and now", "validation_error")
    completed_at = max(completed_at, job["started_at"])
    unsigned = receipt_body(
        receipt_id="rcpt_" + random_hex(12),
        job=job,
        provider=miner["miner_id"],
        result=result,
        completed_at_ms=completed_at,
        price_per_unit=node.store.genesis.params.price_per_unit(job["model"]),
        coordinator_id=node.store.genesis.chain_id,
    )
    cosignature = _cosignature(job, miner, result, body.get("miner_signature"))
    unsigned.update(cosignature)
    payload = {
        "job_id": job["job_id"],
        "miner_id": miner["miner_id"],
        "owner": miner["owner"],
        "result": result,
        "completed_at": completed_at,
        "receipt": sign_receipt(unsigned, node.key),
    }
    # Both signatures are known good here (this node made the one, checked the other just now).
    signers = (node.key.public_key, bytes.fromhex(miner["miner_pubkey"]) if cosignature else None)
    return JSONResponse(await node.producer.submit("job.complete", payload, signers=signers))


def _cosignature(job: dict[str, Any], miner: dict[str, Any], result: str, signature: Any) -> dict[str, Any]:
    """The receipt's co-signature fields, for a miner that registered a miner_pubkey."""
    pubkey = miner.get("miner_pubkey")
    if pubkey is None:
        if signature is not None:
            raise ApiError(
                400,
                f"miner '{miner['miner_id']}' has no registered miner_pubkey; omit miner_signature",
                "validation_error",
            )
        return {}
    if signature is None:
        raise ApiError(
            400,
            f"miner '{miner['miner_id']}' registered a miner_pubkey: miner_signature is required",
            "miner_signature_required",
        )
    digest = result_hash(result)
    if not isinstance(signature, str) or not completion_signature_valid(
        bytes.fromhex(pubkey), job["job_id"], digest, signature
    ):
        raise ApiError(
            400,
            "miner_signature is not a valid Ed25519 signature of {job_id, result_hash} by the registered miner_pubkey",
            "miner_signature_invalid",
        )
    return {"result_hash": digest, "miner_signature": miner_signature_block(bytes.fromhex(pubkey), signature)}


async def fail_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "error"))
    error = validate_error(require_field(body, "error"))  # the body first, then lookups
    miner = _miner_for(request, principal, require_field(body, "miner_id"))
    payload = {
        "job_id": request.path_params["job_id"],
        "miner_id": miner["miner_id"],
        "owner": miner["owner"],
        "error": error,
    }
    return JSONResponse(job_view(await node_of(request).producer.submit("job.fail", payload)))
