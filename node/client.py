"""A small typed client for the AITBC API: submit, wait for a result, fetch and verify
a receipt with its proof, and the miner's calls. Used by the reference miner, the demo,
the bench and the tests.

    async with Client("http://127.0.0.1:8001", api_key) as api:
        job = await api.submit("Say hello")
        done = await api.wait_for_result(job["job_id"])
        verified = await api.verified_receipt(done["receipt_id"], genesis)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import TracebackType
from typing import Any

import httpx

from chain.genesis import Genesis
from chain.proofs import VerifiedReceipt, parse_bundle, verify_bundle

FINAL_STATUSES = ("completed", "failed", "cancelled")


class ApiCallFailed(Exception):
    """The node answered with an error: status, error_code and detail as it gave them."""

    def __init__(self, status: int, error_code: str, detail: str) -> None:
        super().__init__(f"{status} {error_code}: {detail}")
        self.status = status
        self.error_code = error_code
        self.detail = detail


RETRIED_STATUSES = frozenset((502, 503, 504))
"""Answers after which a write is retried (with its Idempotency-Key): the node or its group could
not take it right now (no sequencer elected, a failover under way)."""


class Client:
    """A client of the API. `base_url` may list several nodes, comma-separated (the members of an
    authority group): every write is sent with an Idempotency-Key and retried, on the next node,
    through connection failures and 502/503/504 answers for up to `write_retry_s` seconds, so a
    failover neither loses it nor applies it twice."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
        write_retry_s: float = 30,
    ) -> None:
        self.timeout = timeout
        self.urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self.write_retry_s = write_retry_s
        self._at = 0
        self._http = httpx.AsyncClient(
            base_url=self.urls[0], headers={"X-Api-Key": api_key}, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _answer(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """The status and the JSON body of a successful call; ApiCallFailed with the node's reason if not."""
        response = await self._send(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                code, detail = str(body.get("error_code")), str(body.get("detail"))
            except (ValueError, AttributeError):
                code, detail = "error", response.text[:200]
            raise ApiCallFailed(response.status_code, code, detail)
        if response.status_code == 204:
            return 204, None
        return response.status_code, response.json()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A read goes to the current node once; a write carries an Idempotency-Key and is retried
        with it, across the nodes, until it gets an answer other than 502/503/504 or time is up."""
        if method not in ("POST", "DELETE"):
            return await self._http.request(method, self.urls[self._at] + path, **kwargs)
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + self.write_retry_s
        pause = 0.1
        while True:
            try:
                response = await self._http.request(method, self.urls[self._at] + path, headers=headers, **kwargs)
                if response.status_code not in RETRIED_STATUSES or time.monotonic() >= deadline:
                    return response
            except httpx.TransportError:
                if time.monotonic() >= deadline:
                    raise
            self._at = (self._at + 1) % len(self.urls)  # another member may be the new sequencer's neighbour
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call whose answer is a JSON object (every one but the poll for an available job)."""
        status, body = await self._answer(method, path, **kwargs)
        return _object(status, body)

    # -- clients --------------------------------------------------------------------
    async def submit(
        self, prompt: str, model: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt}
        if model is not None:
            body["model"] = model
        if params is not None:
            body["params"] = params
        return await self._call("POST", "/v1/jobs", json=body)

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/jobs/{job_id}")

    async def wait_for_result(self, job_id: str, timeout: float = 300, poll: float = 0.2) -> dict[str, Any]:
        """Poll the job until it is completed, failed or cancelled; TimeoutError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["status"] in FINAL_STATUSES:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g} s")
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    async def receipt(self, receipt_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/receipts/{receipt_id}")

    async def proof_bytes(self, receipt_id: str) -> bytes:
        """The proof bundle exactly as served (what `aitbc-node verify-receipt` reads)."""
        response = await self._http.get(f"{self.urls[self._at]}/v1/receipts/{receipt_id}/proof")
        if response.status_code >= 400:
            body = response.json()
            raise ApiCallFailed(response.status_code, body.get("error_code", "error"), body.get("detail", ""))
        return response.content

    async def verified_receipt(self, receipt_id: str, genesis: Genesis) -> VerifiedReceipt:
        """Fetch the receipt's proof bundle and verify it offline against genesis (ProofInvalid if not)."""
        return verify_bundle(parse_bundle(await self.proof_bytes(receipt_id)), genesis)

    async def checkpoint(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/chain/checkpoint")

    async def consistency(self, old_size: int, new_size: int) -> dict[str, Any]:
        return await self._call("GET", "/v1/chain/consistency", params={"from": old_size, "to": new_size})

    # -- miners ---------------------------------------------------------------------
    async def register(
        self,
        miner_id: str,
        capabilities: list[str],
        *,
        gpu_info: dict[str, str] | None = None,
        miner_pubkey: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"miner_id": miner_id, "capabilities": capabilities}
        if gpu_info is not None:
            body["gpu_info"] = gpu_info
        if miner_pubkey is not None:
            body["miner_pubkey"] = miner_pubkey
        return await self._call("POST", "/v1/miners/register", json=body)

    async def available(self, miner_id: str, wait: float = 0) -> dict[str, Any] | None:
        """The job offered to this miner, or None (null) when there is none (after waiting up
        to `wait` seconds for one)."""
        params: dict[str, Any] = {"miner_id": miner_id}
        if wait:
            params["wait"] = wait
        status, body = await self._answer("GET", "/v1/jobs/available", params=params, timeout=self._poll_timeout(wait))
        return None if body is None else _object(status, body)

    async def claim_next(self, miner_id: str, wait: float = 0) -> dict[str, Any] | None:
        """Claim the oldest pending job this miner serves (POST /v1/jobs/claim-next): the job,
        now running under this miner's claim, or None if none was pending within `wait` seconds."""
        status, body = await self._answer(
            "POST", "/v1/jobs/claim-next", json={"miner_id": miner_id, "wait": wait}, timeout=self._poll_timeout(wait)
        )
        return None if body is None else _object(status, body)

    def _poll_timeout(self, wait: float) -> httpx.Timeout:
        return httpx.Timeout(self.timeout + wait)

    async def claim(self, job_id: str, miner_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/jobs/{job_id}/claim", json={"miner_id": miner_id})

    async def complete(
        self, job_id: str, miner_id: str, result: str, miner_signature: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"miner_id": miner_id, "result": result}
        if miner_signature is not None:
            body["miner_signature"] = miner_signature
        return await self._call("POST", f"/v1/jobs/{job_id}/complete", json=body)

    async def fail(self, job_id: str, miner_id: str, error: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/jobs/{job_id}/fail", json={"miner_id": miner_id, "error": error})


def _object(status: int, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiCallFailed(status, "unexpected_answer", f"expected a JSON object, got {type(body).__name__}")
    return body
