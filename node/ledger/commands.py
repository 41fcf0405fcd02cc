"""The write commands: each validates its input against the node's state, builds a transaction
and hands it to the node's sequencer, then answers with what the block made of it.

Validation against the state here is for clear answers (which field, which record); the
transition in chain/ checks everything again when it applies the transaction, so a command
racing another (two claims of one job) still gets the transition's answer. Every error is a
domain error (chain.errors, node.producer.NodeUnavailable); adapters map them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from chain.accounts import validate_account_fields
from chain.context import Signers
from chain.errors import Conflict, Forbidden, NotFound, ValidationError
from chain.jobs import MAX_SKIP, check_running_claim, validate_error, validate_job_request, validate_result
from chain.miners import validate_id, validate_miner_pubkey, validate_registration
from chain.receipts import completion_signature_valid, miner_signature_block, receipt_body, result_hash, sign_receipt
from node.datadir import api_key_hash, new_api_key
from node.ledger import reads
from node.ledger.accounts import Principal
from node.ledger.views import job_view, miner_view
from node.roles import sequencer_of, signing_key_of
from node.runtime import Node

log = logging.getLogger("aitbc.ledger")

RANDOM_POOL_BYTES = 4096


class IdPool:
    """Random ids (job and receipt ids): bytes from os.urandom as hex, as secrets.token_hex
    gives, but read a few KiB at a time: one system call per few hundred ids instead of one each."""

    def __init__(self) -> None:
        self.pool = bytearray()

    def random_hex(self, nbytes: int) -> str:
        if len(self.pool) < nbytes:
            self.pool = bytearray(os.urandom(RANDOM_POOL_BYTES))
        chunk = self.pool[-nbytes:]
        del self.pool[-nbytes:]
        return chunk.hex()


class Commands:
    """The write commands of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.random_hex = IdPool().random_hex
        self._heartbeats: set[str] = set()
        """Miners whose heartbeat transaction is queued: at most one each."""

    async def _seal(self, tx_type: str, payload: dict[str, Any], *, signers: Signers | None = None) -> dict[str, Any]:
        return await sequencer_of(self.node.role).submit(tx_type, payload, signers=signers)

    # -- jobs (clients) ------------------------------------------------------------------
    async def submit_job(self, principal: Principal, prompt: Any, model: Any, params: Any) -> dict[str, Any]:
        """A new pending job of principal's; its Job view."""
        model, params = validate_job_request(prompt, model, params, self.node.store.genesis.params)
        payload = {
            "job_id": "job_" + self.random_hex(12),
            "client": principal.name,
            "prompt": prompt,
            "model": model,
            "params": params,
        }
        return job_view(await self._seal("job.submit", payload))

    async def cancel_job(self, principal: Principal, job_id: str) -> dict[str, Any]:
        job = reads.job_for(self.node.store, principal, job_id)
        return job_view(await self._seal("job.cancel", {"job_id": job["job_id"], "sender": principal.name}))

    # -- jobs (miners) -------------------------------------------------------------------
    def miner_of(self, principal: Principal, miner_id: Any) -> dict[str, Any]:
        """The miner, which the principal must have registered (admins may act for any miner)."""
        validate_id("miner_id", miner_id)
        miner = reads.miner(self.node.store, miner_id)
        if miner is None:
            raise NotFound(f"miner '{miner_id}' is not registered", error_code="miner_not_found")
        if miner["owner"] != principal.name and not principal.is_admin:
            raise Forbidden(f"miner '{miner_id}' was registered by another account", error_code="miner_not_owned")
        return miner

    async def available_job(self, principal: Principal, miner_id: Any, wait_s: float = 0.0) -> dict[str, Any] | None:
        """The job offered to the miner (its Job view): the oldest pending job it serves that
        no other miner holds an offer of (node.offers), or None. With wait_s, held until one
        exists or wait_s pass. The poll counts as the miner being seen."""
        miner = self.miner_of(principal, miner_id)
        self._note_seen(miner)
        offers = sequencer_of(self.node.role).offers
        store, models = self.node.store, frozenset(miner["capabilities"])

        def still_fits(job_id: str) -> bool:
            return reads.pending_for(store, job_id, models)

        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            job_id = offers.offer(miner["miner_id"], reads.pending_for_models(store, models), still_fits)
            job = None if job_id is None else reads.get_job(store, job_id)
            if job is not None:
                return job_view(job)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or offers.closed:
                return None
            await offers.wait(remaining)

    async def claim_next(self, principal: Principal, miner_id: Any, wait_s: float = 0.0) -> dict[str, Any] | None:
        """Claim the oldest pending job the miner serves, in one transaction (job.claim_next:
        the transition picks the job, so every node replays the same choice); the running job's
        view, or None if none was pending within wait_s."""
        miner = self.miner_of(principal, miner_id)
        sequencer = sequencer_of(self.node.role)
        store, models = self.node.store, frozenset(miner["capabilities"])

        def passing_over_offers(payload: dict[str, Any]) -> dict[str, Any]:
            """Jobs on offer to miners polling `available` stay theirs while the offers last;
            named as the block is built, so an offer made a moment ago counts too."""
            skip = sequencer.offers.held_by_others(payload["miner_id"], reads.pending_for_models(store, models))
            return {**payload, "skip": skip[:MAX_SKIP]} if skip else payload

        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            if reads.oldest_pending_for_models(store, miner["capabilities"]) is not None:
                payload = {"miner_id": miner["miner_id"], "owner": miner["owner"]}
                try:
                    job = await sequencer.submit("job.claim_next", payload, finalize=passing_over_offers)
                except Conflict as exc:
                    if exc.error_code != "no_job_available":
                        raise
                else:
                    sequencer.offers.release(miner["miner_id"])
                    return job_view(job)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or sequencer.offers.closed:
                return None
            await sequencer.offers.wait(remaining)

    def _note_seen(self, miner: dict[str, Any]) -> None:
        """Record a heartbeat (at most every tenth of the active window), without waiting."""
        node = self.node
        window_ms = node.store.genesis.params.active_miner_window_s * 1000
        miner_id = miner["miner_id"]
        if node.clock() - miner["last_seen"] < window_ms // 10 or miner_id in self._heartbeats:
            return
        self._heartbeats.add(miner_id)

        async def beat() -> None:
            try:
                await self._seal("miner.heartbeat", {"miner_id": miner_id, "owner": miner["owner"]})
            except Exception as exc:  # a heartbeat is never acknowledged to anyone; losing one is harmless
                log.debug("heartbeat for a miner was not recorded: %s", exc)
            finally:
                self._heartbeats.discard(miner_id)

        task = asyncio.get_running_loop().create_task(beat())
        node.background.add(task)
        task.add_done_callback(node.background.discard)

    async def claim_job(self, principal: Principal, job_id: str, miner_id: Any) -> dict[str, Any]:
        miner = self.miner_of(principal, miner_id)
        payload = {"job_id": job_id, "miner_id": miner["miner_id"], "owner": miner["owner"]}
        job = job_view(await self._seal("job.claim", payload))
        sequencer_of(self.node.role).offers.release(miner["miner_id"])
        return job

    def _running_job(self, job_id: str, miner: dict[str, Any]) -> dict[str, Any]:
        job = reads.get_job(self.node.store, job_id)
        if job is None:
            raise NotFound(f"job '{job_id}' does not exist", error_code="job_not_found")
        check_running_claim(job, miner["miner_id"])
        return job

    async def complete_job(
        self,
        principal: Principal,
        job_id: str,
        miner_id: Any,
        result: Any,
        completed_at: int | None,
        miner_signature: Any,
    ) -> dict[str, Any]:
        """Sign the receipt for the miner's result and seal it; the receipt as sealed.
        completed_at (Unix ms, default now) must lie between the claim and now."""
        node = self.node
        genesis = node.store.genesis
        result = validate_result(result, genesis.params)  # the body first, then lookups
        miner = self.miner_of(principal, miner_id)
        job = self._running_job(job_id, miner)
        now = node.clock()
        completed_at = now if completed_at is None else completed_at
        if not job["started_at"] // 1000 * 1000 <= completed_at <= now:
            raise ValidationError("completed_at must lie between the job's started_at and now")
        completed_at = max(completed_at, job["started_at"])
        unsigned = receipt_body(
            receipt_id="rcpt_" + self.random_hex(12),
            job=job,
            provider=miner["miner_id"],
            result=result,
            completed_at_ms=completed_at,
            price_per_unit=genesis.params.price_per_unit(job["model"]),
            coordinator_id=genesis.chain_id,
        )
        cosignature = _cosignature(job, miner, result, miner_signature)
        unsigned.update(cosignature)
        key = signing_key_of(node.role)
        payload = {
            "job_id": job["job_id"],
            "miner_id": miner["miner_id"],
            "owner": miner["owner"],
            "result": result,
            "completed_at": completed_at,
            "receipt": sign_receipt(unsigned, key),
        }
        # Both signatures are known good here (this node made the one, checked the other just now).
        signers = (key.public_key, bytes.fromhex(miner["miner_pubkey"]) if cosignature else None)
        return await self._seal("job.complete", payload, signers=signers)

    async def fail_job(self, principal: Principal, job_id: str, miner_id: Any, error: Any) -> dict[str, Any]:
        error = validate_error(error)  # the body first, then lookups
        miner = self.miner_of(principal, miner_id)
        payload = {"job_id": job_id, "miner_id": miner["miner_id"], "owner": miner["owner"], "error": error}
        return job_view(await self._seal("job.fail", payload))

    # -- miners ----------------------------------------------------------------------------
    async def register_miner(
        self, principal: Principal, miner_id: Any, capabilities: Any, gpu_info: Any, miner_pubkey: Any
    ) -> dict[str, Any]:
        """Register (or re-register) a miner owned by principal; its Miner view."""
        validate_registration(miner_id, capabilities, gpu_info)
        validate_miner_pubkey(miner_pubkey)
        payload = {"miner_id": miner_id, "owner": principal.name, "capabilities": capabilities, "gpu_info": gpu_info}
        if miner_pubkey is not None:
            payload["miner_pubkey"] = miner_pubkey
        return miner_view(await self._seal("miner.register", payload))

    # -- accounts (admin) --------------------------------------------------------------------
    async def create_account(self, name: Any, role: Any) -> dict[str, Any]:
        """A new account and its API key, which is shown this once and stored only hashed."""
        validate_account_fields(name, role)
        api_key = new_api_key()
        await self._seal("account.create", {"name": name, "role": role, "key_hash": api_key_hash(api_key)})
        return {"name": name, "role": role, "key": api_key}

    async def revoke_account(self, principal: Principal, name: str) -> dict[str, Any]:
        if name == principal.name:
            raise Conflict("an admin cannot revoke its own account", error_code="cannot_revoke_self")
        record = await self._seal("account.revoke", {"name": name})
        return {"name": record["name"], "role": record["role"], "revoked": True}


def _cosignature(job: dict[str, Any], miner: dict[str, Any], result: str, signature: Any) -> dict[str, Any]:
    """The receipt's co-signature fields, for a miner that registered a miner_pubkey."""
    pubkey = miner.get("miner_pubkey")
    if pubkey is None:
        if signature is not None:
            raise ValidationError(f"miner '{miner['miner_id']}' has no registered miner_pubkey; omit miner_signature")
        return {}
    if signature is None:
        raise ValidationError(
            f"miner '{miner['miner_id']}' registered a miner_pubkey: miner_signature is required",
            error_code="miner_signature_required",
        )
    digest = result_hash(result)
    if not isinstance(signature, str) or not completion_signature_valid(
        bytes.fromhex(pubkey), job["job_id"], digest, signature
    ):
        raise ValidationError(
            "miner_signature is not a valid Ed25519 signature of {job_id, result_hash} by the registered miner_pubkey",
            error_code="miner_signature_invalid",
        )
    return {"result_hash": digest, "miner_signature": miner_signature_block(bytes.fromhex(pubkey), signature)}
