"""Jobs over HTTP: submit, list, read, cancel (clients); available, claim, claim-next, complete,
fail (miners); a job's receipts (the AITBC SDK's paths). Each parses the request and calls the
read model (node.ledger.reads) or a write command (node.ledger.commands)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.errors import ApiError
from api.parsing import (
    commands_of,
    node_of,
    page_limit,
    parse_datetime_ms,
    query_choice,
    query_int,
    read_object,
    require_field,
)
from api.responses import JSONResponse
from chain.jobs import STATUSES
from node.ledger import params, reads
from node.ledger.views import job_view


async def submit_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    body = await read_object(request, ("prompt", "model", "params"))
    job = await commands_of(request).submit_job(principal, body.get("prompt"), body.get("model"), body.get("params"))
    return JSONResponse(job, status_code=201)


async def list_jobs(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    status = query_choice(request, "status", STATUSES)
    limit = page_limit(request, 20)
    offset = query_int(request, "offset", 0, 0)
    client = None if principal.is_admin else principal.name
    jobs = reads.list_jobs(node_of(request).store, client=client, status=status, limit=limit, offset=offset)
    return JSONResponse([job_view(j) for j in jobs])


async def get_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    return JSONResponse(job_view(reads.job_for(node_of(request).store, principal, request.path_params["job_id"])))


async def job_receipt(request: Request) -> JSONResponse:
    """The job's latest receipt (the AITBC SDK's CoordinatorReceiptClient.fetch_latest)."""
    principal = authenticate(request, "client")
    return JSONResponse(reads.latest_receipt(node_of(request).store, principal, request.path_params["job_id"]))


async def job_receipts(request: Request) -> JSONResponse:
    """Every receipt of the job, oldest first, as a list (the AITBC SDK's receipt history).
    limit and cursor are accepted for the SDK's paging; one page always holds them all."""
    principal = authenticate(request, "client")
    page_limit(request, 100)
    return JSONResponse(reads.job_receipts(node_of(request).store, principal, request.path_params["job_id"]))


async def cancel_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "client")
    return JSONResponse(await commands_of(request).cancel_job(principal, request.path_params["job_id"]))


async def available_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    miner_id = request.query_params.get("miner_id")
    if miner_id is None:
        raise ApiError(400, "miner_id is required", "validation_error")
    wait = params.wait_seconds(request.query_params.get("wait"))
    return JSONResponse(await commands_of(request).available_job(principal, miner_id, wait))


async def claim_next(request: Request) -> Response:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "wait"))
    miner_id = require_field(body, "miner_id")
    job = await commands_of(request).claim_next(principal, miner_id, params.wait_seconds(body.get("wait")))
    return Response(status_code=204) if job is None else JSONResponse(job)


async def claim_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id",))
    miner_id = require_field(body, "miner_id")
    return JSONResponse(await commands_of(request).claim_job(principal, request.path_params["job_id"], miner_id))


async def complete_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "result", "completed_at", "miner_signature"))
    result = require_field(body, "result")
    miner_id = require_field(body, "miner_id")
    raw_at = body.get("completed_at")
    completed_at = None if raw_at is None else parse_datetime_ms("completed_at", raw_at)
    receipt = await commands_of(request).complete_job(
        principal, request.path_params["job_id"], miner_id, result, completed_at, body.get("miner_signature")
    )
    return JSONResponse(receipt)


async def fail_job(request: Request) -> JSONResponse:
    principal = authenticate(request, "miner")
    body = await read_object(request, ("miner_id", "error"))
    error, miner_id = require_field(body, "error"), require_field(body, "miner_id")
    return JSONResponse(await commands_of(request).fail_job(principal, request.path_params["job_id"], miner_id, error))
