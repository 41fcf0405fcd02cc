"""The state transition at the chain level: a job's whole life, and apply_tx's guarantees."""

from __future__ import annotations

from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import jobs, miners, transition
from chain.accounts import get_account
from chain.context import ApplyContext
from chain.crypto import b64url
from chain.errors import Conflict, Forbidden, InvalidTransaction, LedgerError, NotFound, TooLarge, ValidationError
from chain.genesis import Genesis
from chain.receipts import RECEIPT_FIELDS, receipt_body, receipt_signer, sign_receipt, signing_bytes
from chain.state import EmptyState, WorkingState, key, state_root
from chain.transactions import Transaction
from chain.transition import GENESIS_STATE_ROOT, HANDLERS, apply_tx, genesis_block
from tests.chain.devchain import AUTHORITY, OUTSIDER, T0, key_hash, make_genesis, run, tx

LEASE_MS = 60_000


def setup_market(state: WorkingState, genesis: Genesis, t: int = T0 + 1_000) -> None:
    """Clients alice and bob, miner account minnie with gpu-1 (llama3.2) and gpu-2 (mistral-7b)."""
    run(state, genesis, "account.create", t, name="alice", role="client", key_hash=key_hash("alice"))
    run(state, genesis, "account.create", t, name="bob", role="client", key_hash=key_hash("bob"))
    run(state, genesis, "account.create", t, name="minnie", role="miner", key_hash=key_hash("minnie"))
    run(state, genesis, "account.create", t, name="max", role="miner", key_hash=key_hash("max"))
    run(state, genesis, "miner.register", t, miner_id="gpu-1", owner="minnie", capabilities=["llama3.2"])
    run(state, genesis, "miner.register", t, miner_id="gpu-2", owner="minnie", capabilities=["mistral-7b"])
    run(state, genesis, "miner.register", t, miner_id="gpu-9", owner="max", capabilities=["llama3.2"])


def submit(
    state: WorkingState, genesis: Genesis, job_id: str = "job-1", t: int = T0 + 2_000, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"job_id": job_id, "client": "alice", "prompt": "say hello", **extra}
    return run(state, genesis, "job.submit", t, **payload)


def claim(
    state: WorkingState, genesis: Genesis, t: int, job_id: str = "job-1", miner_id: str = "gpu-1", owner: str = "minnie"
) -> dict[str, Any]:
    return run(state, genesis, "job.claim", t, job_id=job_id, miner_id=miner_id, owner=owner)


def signed_receipt(
    state: WorkingState,
    genesis: Genesis,
    t: int,
    result: str,
    job_id: str = "job-1",
    receipt_id: str = "rcpt-1",
    provider: str = "gpu-1",
    key: Any = AUTHORITY,
) -> dict[str, Any]:
    job = jobs.get_job(state, job_id)
    body = receipt_body(
        receipt_id=receipt_id,
        job=job,
        provider=provider,
        result=result,
        completed_at_ms=t,
        price_per_unit=genesis.params.price_per_unit(job["model"]),
        coordinator_id=genesis.chain_id,
    )
    return sign_receipt(body, key)


def complete(
    state: WorkingState,
    genesis: Genesis,
    t: int,
    result: str = "hello there world",
    receipt: dict[str, Any] | None = None,
    job_id: str = "job-1",
    miner_id: str = "gpu-1",
) -> dict[str, Any]:
    if receipt is None:
        receipt = signed_receipt(state, genesis, t, result, job_id=job_id)
    return run(
        state,
        genesis,
        "job.complete",
        t,
        job_id=job_id,
        miner_id=miner_id,
        owner="minnie",
        result=result,
        completed_at=t,
        receipt=receipt,
    )


def counters(state: WorkingState) -> dict[str, int]:
    return {s: state.get_int(jobs.counter_key("status", s)) for s in jobs.STATUSES}


@pytest.fixture
def market(state: WorkingState, genesis: Genesis) -> WorkingState:
    setup_market(state, genesis)
    return state


# -- the lifecycle ----------------------------------------------------------------------


def test_submit_creates_a_pending_job_with_defaults(market: WorkingState, genesis: Genesis) -> None:
    job = submit(market, genesis, params={"max_tokens": 10})
    assert job["status"] == "pending" and job["seq"] == 1 and job["attempts"] == 0
    assert job["model"] == "llama3.2"
    assert job["params"] == {"max_tokens": 10, "temperature": 0.7, "top_p": 0.9}
    assert job["created_at"] == T0 + 2_000
    assert jobs.get_job(market, "job-1") == job
    assert market.get(key("ix", "pm", "llama3.2", 1)) == b"job-1"
    assert counters(market)["pending"] == 1


def test_claim_runs_the_job_under_a_lease(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    t = T0 + 3_000
    job = claim(market, genesis, t)
    assert job["status"] == "running" and job["miner_id"] == "gpu-1"
    assert job["started_at"] == t and job["attempts"] == 1
    assert job["lease_deadline"] == t + LEASE_MS
    assert market.get(key("ix", "pm", "llama3.2", 1)) is None
    assert market.get(key("ix", "lease", t + LEASE_MS, "job-1")) == b"job-1"
    miner = miners.get_miner(market, "gpu-1")
    assert miner is not None and miner["last_seen"] == t
    assert counters(market) == {"pending": 0, "running": 1, "completed": 0, "failed": 0, "cancelled": 0}


def test_complete_with_an_authority_receipt_records_it(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    t = T0 + 4_000
    receipt = complete(market, genesis, t, result="hello there world")
    assert receipt_signer(receipt) == AUTHORITY.public_key
    assert receipt["units"] == 3 and receipt["provider"] == "gpu-1" and receipt["client"] == "alice"
    assert receipt["started_at"] == (T0 + 3_000) // 1000 and receipt["completed_at"] == t // 1000
    job = jobs.get_job(market, "job-1")
    assert job["status"] == "completed" and job["result"] == "hello there world"
    assert job["receipt_id"] == "rcpt-1" and job["completed_at"] == t and job["lease_deadline"] is None
    assert market.get_record(jobs.receipt_key("rcpt-1")) == receipt
    miner = miners.get_miner(market, "gpu-1")
    assert miner is not None and miner["receipts"] == 1 and miner["units"] == 3
    assert market.get_int(jobs.counter_key("units")) == 3
    assert counters(market)["completed"] == 1 and counters(market)["running"] == 0
    assert market.get(key("ix", "lease", T0 + 3_000 + LEASE_MS, "job-1")) is None


def test_completion_tx_hash_is_recorded_for_the_receipt(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    t = T0 + 4_000
    result = "done"
    t_complete = Transaction(
        "job.complete",
        {
            "job_id": "job-1",
            "miner_id": "gpu-1",
            "owner": "minnie",
            "result": result,
            "completed_at": t,
            "receipt": signed_receipt(market, genesis, t, result),
        },
        t,
    )
    apply_tx(market, t_complete, ApplyContext(time_ms=t, genesis=genesis))
    assert market.get(jobs.receipt_tx_key("rcpt-1")) == t_complete.hash.hex().encode()


def _completion(market: WorkingState, genesis: Genesis, t: int) -> Transaction:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    payload = {"job_id": "job-1", "miner_id": "gpu-1", "owner": "minnie", "result": "done", "completed_at": t}
    return Transaction("job.complete", {**payload, "receipt": signed_receipt(market, genesis, t, "done")}, t)


def test_signers_checked_ahead_travel_in_the_context_and_are_not_checked_again(
    market: WorkingState, genesis: Genesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nacl.signing import VerifyKey

    t = T0 + 4_000
    completion = _completion(market, genesis, t)
    verified: list[bytes] = []
    real = VerifyKey.verify

    def verify(self: VerifyKey, *args: Any, **kwargs: Any) -> Any:
        verified.append(bytes(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VerifyKey, "verify", verify)
    checked = {completion.hash.hex(): (AUTHORITY.public_key, None)}
    apply_tx(market, completion, ApplyContext(time_ms=t, genesis=genesis, checked=checked))
    assert verified == [] and jobs.get_job(market, "job-1")["status"] == "completed"


def test_what_the_context_says_was_checked_is_what_the_transition_believes(
    market: WorkingState, genesis: Genesis
) -> None:
    """The same transaction is applied differently under different contexts, and under
    the same context always the same way: no state outside the arguments decides."""
    t = T0 + 4_000
    completion = _completion(market, genesis, t)
    refuted = ApplyContext(time_ms=t, genesis=genesis, checked={completion.hash.hex(): (None, None)})
    for _ in range(2):
        with pytest.raises(InvalidTransaction) as rejected:
            apply_tx(market, completion, refuted)
        assert rejected.value.error_code == "receipt_signature_invalid"
    other_tx = {"00" * 32: (None, None)}  # checks of other transactions do not apply to this one
    apply_tx(market, completion, ApplyContext(time_ms=t, genesis=genesis, checked=other_tx))
    assert jobs.get_job(market, "job-1")["status"] == "completed"


@pytest.mark.parametrize("status", ["running", "completed", "cancelled"])
def test_claim_of_a_job_that_is_not_pending_is_conflict(market: WorkingState, genesis: Genesis, status: str) -> None:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    if status == "completed":
        complete(market, genesis, T0 + 4_000)
    if status == "cancelled":
        run(market, genesis, "job.cancel", T0 + 4_000, job_id="job-1", sender="alice")
    with pytest.raises(Conflict) as info:
        claim(market, genesis, T0 + 5_000, miner_id="gpu-9", owner="max")
    assert info.value.error_code == "job_not_pending"


def test_claim_by_a_miner_without_the_model_is_conflict(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    with pytest.raises(Conflict) as info:
        claim(market, genesis, T0 + 3_000, miner_id="gpu-2")
    assert info.value.error_code == "capability_mismatch"


def test_claim_with_another_accounts_miner_is_forbidden(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    with pytest.raises(Forbidden):
        claim(market, genesis, T0 + 3_000, miner_id="gpu-9", owner="minnie")


def test_claim_of_a_missing_job_or_by_an_unknown_miner_is_not_found(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    with pytest.raises(NotFound):
        claim(market, genesis, T0 + 3_000, job_id="job-404")
    with pytest.raises(NotFound):
        claim(market, genesis, T0 + 3_000, miner_id="gpu-404")


def test_fail_requeues_then_fails_the_job_after_max_attempts(market: WorkingState, genesis: Genesis) -> None:
    assert genesis.params.max_attempts == 2
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    job = run(market, genesis, "job.fail", T0 + 4_000, job_id="job-1", miner_id="gpu-1", owner="minnie", error="OOM")
    assert job["status"] == "pending" and job["error"] == "OOM"
    assert job["miner_id"] is None and job["started_at"] is None and job["attempts"] == 1
    assert market.get(key("ix", "pm", "llama3.2", 1)) == b"job-1"
    claim(market, genesis, T0 + 5_000, miner_id="gpu-9", owner="max")
    job = run(market, genesis, "job.fail", T0 + 6_000, job_id="job-1", miner_id="gpu-9", owner="max", error="OOM again")
    assert job["status"] == "failed" and job["attempts"] == 2 and job["completed_at"] == T0 + 6_000
    assert counters(market) == {"pending": 0, "running": 0, "completed": 0, "failed": 1, "cancelled": 0}
    with pytest.raises(Conflict):
        claim(market, genesis, T0 + 7_000)


def test_fail_by_a_miner_not_holding_the_claim_is_conflict(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    with pytest.raises(Conflict) as info:
        run(market, genesis, "job.fail", T0 + 4_000, job_id="job-1", miner_id="gpu-9", owner="max", error="x")
    assert info.value.error_code == "claim_held_by_other"


@pytest.mark.parametrize("error", ["", "   ", None, 5])
def test_fail_needs_an_error_message(market: WorkingState, genesis: Genesis, error: Any) -> None:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    with pytest.raises(ValidationError):
        run(market, genesis, "job.fail", T0 + 4_000, job_id="job-1", miner_id="gpu-1", owner="minnie", error=error)


def test_requeue_is_refused_before_the_lease_deadline_and_allowed_from_it(
    market: WorkingState, genesis: Genesis
) -> None:
    submit(market, genesis)
    deadline = claim(market, genesis, T0 + 3_000)["lease_deadline"]
    with pytest.raises(Conflict) as info:
        run(market, genesis, "job.requeue", deadline - 1, job_id="job-1", lease_deadline=deadline)
    assert info.value.error_code == "lease_not_expired"
    with pytest.raises(Conflict) as info:
        run(market, genesis, "job.requeue", deadline + 5, job_id="job-1", lease_deadline=deadline - 1)
    assert info.value.error_code == "lease_not_held"
    job = run(market, genesis, "job.requeue", deadline, job_id="job-1", lease_deadline=deadline)
    assert job["status"] == "pending" and job["error"] == "lease expired" and job["miner_id"] is None
    assert market.get(key("ix", "lease", deadline, "job-1")) is None
    with pytest.raises(Conflict):  # the lease is gone
        run(market, genesis, "job.requeue", deadline + 1, job_id="job-1", lease_deadline=deadline)


def test_requeue_after_the_last_attempt_fails_the_job(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    d1 = claim(market, genesis, T0 + 3_000)["lease_deadline"]
    run(market, genesis, "job.requeue", d1, job_id="job-1", lease_deadline=d1)
    d2 = claim(market, genesis, d1 + 1)["lease_deadline"]
    job = run(market, genesis, "job.requeue", d2 + 1, job_id="job-1", lease_deadline=d2)
    assert job["status"] == "failed" and job["attempts"] == 2


def test_late_completion_after_requeue_is_conflict(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    d = claim(market, genesis, T0 + 3_000)["lease_deadline"]
    receipt = signed_receipt(market, genesis, d, "late")
    run(market, genesis, "job.requeue", d, job_id="job-1", lease_deadline=d)
    with pytest.raises(Conflict):
        complete(market, genesis, d, result="late", receipt=receipt)


def test_owner_cancels_a_pending_job(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    job = run(market, genesis, "job.cancel", T0 + 3_000, job_id="job-1", sender="alice")
    assert job["status"] == "cancelled" and job["completed_at"] == T0 + 3_000
    assert market.get(key("ix", "pm", "llama3.2", 1)) is None
    assert counters(market)["cancelled"] == 1 and counters(market)["pending"] == 0


def test_admin_cancels_another_clients_running_job(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    d = claim(market, genesis, T0 + 3_000)["lease_deadline"]
    job = run(market, genesis, "job.cancel", T0 + 4_000, job_id="job-1", sender="ops")
    assert job["status"] == "cancelled" and job["lease_deadline"] is None
    assert market.get(key("ix", "lease", d, "job-1")) is None


@pytest.mark.parametrize("sender", ["bob", "nobody", None, "minnie"])
def test_cancel_by_anyone_else_is_not_found(market: WorkingState, genesis: Genesis, sender: Any) -> None:
    submit(market, genesis)
    with pytest.raises(NotFound) as info:
        run(market, genesis, "job.cancel", T0 + 3_000, job_id="job-1", sender=sender)
    assert info.value.error_code == "job_not_found"
    assert jobs.get_job(market, "job-1")["status"] == "pending"


def test_cancel_of_a_missing_job_is_not_found(market: WorkingState, genesis: Genesis) -> None:
    with pytest.raises(NotFound):
        run(market, genesis, "job.cancel", T0 + 3_000, job_id="job-404", sender="ops")


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_cancel_of_a_closed_job_is_conflict(market: WorkingState, genesis: Genesis, status: str) -> None:
    submit(market, genesis)
    if status == "cancelled":
        run(market, genesis, "job.cancel", T0 + 3_000, job_id="job-1", sender="alice")
    else:
        for attempt in range(2):
            claim(market, genesis, T0 + 3_000 + attempt)
            run(
                market,
                genesis,
                "job.fail",
                T0 + 3_000 + attempt,
                job_id="job-1",
                miner_id="gpu-1",
                owner="minnie",
                error="x",
            )
    assert jobs.get_job(market, "job-1")["status"] == status
    with pytest.raises(Conflict):
        run(market, genesis, "job.cancel", T0 + 9_000, job_id="job-1", sender="ops")


# -- completion guards ---------------------------------------------------------------------


@pytest.fixture
def running(market: WorkingState, genesis: Genesis) -> WorkingState:
    submit(market, genesis)
    claim(market, genesis, T0 + 3_000)
    return market


def test_completion_with_a_receipt_signed_by_a_non_authority_is_refused(
    running: WorkingState, genesis: Genesis
) -> None:
    t = T0 + 4_000
    forged = signed_receipt(running, genesis, t, "hello", key=OUTSIDER)
    assert receipt_signer(forged) == OUTSIDER.public_key  # a valid signature, just not trusted
    with pytest.raises(InvalidTransaction) as info:
        complete(running, genesis, t, result="hello", receipt=forged)
    assert info.value.error_code == "receipt_signature_invalid"
    assert jobs.get_job(running, "job-1")["status"] == "running"


def test_completion_with_a_tampered_signature_is_refused(running: WorkingState, genesis: Genesis) -> None:
    t = T0 + 4_000
    receipt = signed_receipt(running, genesis, t, "hello")
    sig = receipt["signature"]
    bad = {
        **receipt,
        "signature": {**sig, "sig": sig["sig"][:10] + ("A" if sig["sig"][10] != "A" else "B") + sig["sig"][11:]},
    }
    with pytest.raises(InvalidTransaction) as info:
        complete(running, genesis, t, result="hello", receipt=bad)
    assert info.value.error_code == "receipt_signature_invalid"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("units", 99),
        ("price", 1.0),
        ("client", "bob"),
        ("provider", "gpu-9"),
        ("model", "mistral-7b"),
        ("started_at", 0),
        ("completed_at", 0),
        ("job_id", "job-2"),
        ("unit_type", "images"),
        ("version", "2.0"),
        ("duration_ms", 1),
        ("coordinator_id", "another-chain"),
    ],
)
def test_completion_with_a_receipt_not_matching_the_job_is_refused(
    running: WorkingState, genesis: Genesis, field: str, value: Any
) -> None:
    t = T0 + 4_000
    receipt = signed_receipt(running, genesis, t, "hello")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    resigned = sign_receipt({**body, field: value}, AUTHORITY)  # validly signed, but wrong
    with pytest.raises(InvalidTransaction) as info:
        complete(running, genesis, t, result="hello", receipt=resigned)
    assert info.value.error_code == "receipt_mismatch"


def legacy_receipt(state: WorkingState, genesis: Genesis, t: int, result: str, alg: str = "ed25519") -> dict[str, Any]:
    """A receipt as 0.1.x sealed it: no protocol fields, alg spelled "ed25519"."""
    body = {k: v for k, v in signed_receipt(state, genesis, t, result).items() if k in RECEIPT_FIELDS}
    return {
        **body,
        "signature": {"alg": alg, "key_id": AUTHORITY.key_id, "sig": b64url(AUTHORITY.sign(signing_bytes(body)))},
    }


def test_completion_with_a_legacy_receipt_still_applies(running: WorkingState, genesis: Genesis) -> None:
    t = T0 + 4_000
    receipt = complete(running, genesis, t, result="hello", receipt=legacy_receipt(running, genesis, t, "hello"))
    assert "version" not in receipt and receipt["signature"]["alg"] == "ed25519"
    assert jobs.get_job(running, "job-1")["status"] == "completed"


def test_new_receipts_carry_the_protocol_fields(running: WorkingState, genesis: Genesis) -> None:
    t = T0 + 4_500
    receipt = complete(running, genesis, t, result="hello")
    assert receipt["signature"]["alg"] == "Ed25519"
    assert receipt["version"] == "1.0"
    assert receipt["duration_ms"] == t - jobs.get_job(running, "job-1")["started_at"] == 1_500
    assert receipt["coordinator_id"] == genesis.chain_id


@pytest.mark.parametrize("alg", ["ED25519", "EdDSA", "rsa", "", 1])
def test_completion_whose_receipt_names_another_alg_is_refused(
    running: WorkingState, genesis: Genesis, alg: Any
) -> None:
    t = T0 + 4_000
    with pytest.raises(InvalidTransaction) as info:
        complete(running, genesis, t, result="hello", receipt=legacy_receipt(running, genesis, t, "hello", alg=alg))
    assert info.value.error_code == "receipt_signature_invalid"


def test_completion_mixing_the_receipt_forms_is_refused(running: WorkingState, genesis: Genesis) -> None:
    t = T0 + 4_000
    body = {
        k: v for k, v in signed_receipt(running, genesis, t, "hello").items() if k not in ("signature", "duration_ms")
    }
    with pytest.raises(InvalidTransaction):
        complete(running, genesis, t, result="hello", receipt=sign_receipt(body, AUTHORITY))


def test_completion_without_a_receipt_is_refused(running: WorkingState, genesis: Genesis) -> None:
    t = T0 + 4_000
    receipt = signed_receipt(running, genesis, t, "hello")
    for bad in (None, {}, {k: v for k, v in receipt.items() if k != "signature"}, {**receipt, "extra": 1}):
        with pytest.raises(InvalidTransaction):
            run(
                running,
                genesis,
                "job.complete",
                t,
                job_id="job-1",
                miner_id="gpu-1",
                owner="minnie",
                result="hello",
                completed_at=t,
                receipt=bad,
            )
    assert jobs.get_job(running, "job-1")["status"] == "running"


@pytest.mark.parametrize("completed_at", [T0 + 2_999, T0 + 4_001, "soon", True])
def test_completion_time_must_lie_between_claim_and_block_time(
    running: WorkingState, genesis: Genesis, completed_at: Any
) -> None:
    with pytest.raises(ValidationError):
        run(
            running,
            genesis,
            "job.complete",
            T0 + 4_000,
            job_id="job-1",
            miner_id="gpu-1",
            owner="minnie",
            result="hello",
            completed_at=completed_at,
            receipt={},
        )


def test_receipt_id_cannot_be_reused(running: WorkingState, genesis: Genesis) -> None:
    complete(running, genesis, T0 + 4_000)
    submit(running, genesis, job_id="job-2", t=T0 + 5_000)
    claim(running, genesis, T0 + 6_000, job_id="job-2")
    receipt = signed_receipt(running, genesis, T0 + 7_000, "again", job_id="job-2", receipt_id="rcpt-1")
    with pytest.raises(Conflict) as info:
        complete(running, genesis, T0 + 7_000, result="again", receipt=receipt, job_id="job-2")
    assert info.value.error_code == "receipt_exists"


def test_completion_of_a_pending_job_is_conflict(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    with pytest.raises(Conflict) as info:
        complete(market, genesis, T0 + 4_000, receipt={})
    assert info.value.error_code == "job_not_running"


# -- submission guards ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error", "code"),
    [
        ({"prompt": "   "}, ValidationError, "validation_error"),
        ({"prompt": None}, ValidationError, "validation_error"),
        ({"prompt": 5}, ValidationError, "validation_error"),
        ({"model": "gpt-9"}, ValidationError, "unknown_model"),
        ({"params": {"seed": 1}}, ValidationError, "validation_error"),
        ({"params": {"max_tokens": 0}}, ValidationError, "validation_error"),
        ({"params": {"temperature": 2.5}}, ValidationError, "validation_error"),
        ({"params": {"top_p": 0}}, ValidationError, "validation_error"),
        ({"params": []}, ValidationError, "validation_error"),
        ({"client": "nobody"}, ValidationError, "validation_error"),
        ({"job_id": ""}, ValidationError, "validation_error"),
        ({"job_id": "a\x00b"}, ValidationError, "validation_error"),
        ({"job_id": "x" * 65}, ValidationError, "validation_error"),
    ],
)
def test_invalid_submission_is_refused(
    market: WorkingState, genesis: Genesis, extra: dict[str, Any], error: type[LedgerError], code: str
) -> None:
    payload: dict[str, Any] = {"job_id": "job-1", "client": "alice", "prompt": "hi", **extra}
    with pytest.raises(error) as info:
        run(market, genesis, "job.submit", T0 + 2_000, **payload)
    assert info.value.error_code == code


def test_prompt_over_the_network_limit_is_too_large(state: WorkingState) -> None:
    from chain.genesis import parse_genesis
    from tests.chain.devchain import genesis_doc

    doc = genesis_doc()
    doc["params"]["max_prompt_bytes"] = 8
    small = parse_genesis(doc)
    setup_market(state, small)
    run(state, small, "job.submit", T0 + 2_000, job_id="ok", client="alice", prompt="12345678")
    with pytest.raises(TooLarge) as info:
        run(state, small, "job.submit", T0 + 2_000, job_id="big", client="alice", prompt="1234567é")
    assert info.value.error_code == "payload_too_large"


def test_duplicate_job_id_is_conflict(market: WorkingState, genesis: Genesis) -> None:
    submit(market, genesis)
    with pytest.raises(Conflict) as info:
        submit(market, genesis)
    assert info.value.error_code == "job_exists"


def test_revoked_client_cannot_submit(market: WorkingState, genesis: Genesis) -> None:
    run(market, genesis, "account.revoke", T0 + 1_500, name="alice")
    with pytest.raises(ValidationError):
        submit(market, genesis)


# -- apply_tx's guarantees -----------------------------------------------------------------

FAILING: list[tuple[str, dict[str, Any]]] = [
    ("job.submit", {"job_id": "job-1", "client": "alice", "prompt": "again"}),
    ("job.claim", {"job_id": "job-1", "miner_id": "gpu-2", "owner": "minnie"}),
    ("job.claim", {"job_id": "job-404", "miner_id": "gpu-1", "owner": "minnie"}),
    ("job.complete", {"job_id": "job-1", "miner_id": "gpu-1", "owner": "minnie", "result": "r", "completed_at": T0}),
    ("job.fail", {"job_id": "job-1", "miner_id": "gpu-1", "owner": "minnie", "error": "x"}),
    ("job.cancel", {"job_id": "job-1", "sender": "bob"}),
    ("job.requeue", {"job_id": "job-1", "lease_deadline": 1}),
    ("account.create", {"name": "alice", "role": "client", "key_hash": key_hash("new")}),
    ("account.create", {"name": "new", "role": "client", "key_hash": key_hash("alice")}),
    ("account.create", {"name": "new", "role": "god", "key_hash": key_hash("new")}),
    ("account.revoke", {"name": "nobody"}),
    ("miner.register", {"miner_id": "gpu-1", "owner": "max", "capabilities": ["llama3.2"]}),
    ("miner.register", {"miner_id": "gpu-3", "owner": "max", "capabilities": []}),
    ("miner.heartbeat", {"miner_id": "gpu-1", "owner": "max"}),
]


@pytest.mark.parametrize(("tx_type", "payload"), FAILING, ids=[f"{t}-{i}" for i, (t, _) in enumerate(FAILING)])
def test_a_failed_transaction_leaves_the_state_unchanged(
    market: WorkingState, genesis: Genesis, tx_type: str, payload: dict[str, Any]
) -> None:
    submit(market, genesis)
    before = market.changes()
    with pytest.raises(LedgerError):
        run(market, genesis, tx_type, T0 + 3_000, **payload)
    assert market.changes() == before


def test_a_handler_failing_after_writing_leaves_the_state_unchanged(
    market: WorkingState, genesis: Genesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def writes_then_fails(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
        state.put(b"half", b"written")
        state.delete(jobs.counter_key("jobs"))
        raise Conflict("changed my mind")

    submit(market, genesis)
    before = market.changes()
    monkeypatch.setattr(transition, "HANDLERS", {**HANDLERS, "job.cancel": writes_then_fails})
    with pytest.raises(Conflict):
        run(market, genesis, "job.cancel", T0 + 3_000, job_id="job-1", sender="alice")
    assert market.changes() == before
    assert market.get(b"half") is None


def test_a_transaction_from_after_its_block_is_refused_without_writing(market: WorkingState, genesis: Genesis) -> None:
    before = market.changes()
    t = tx("account.create", T0 + 10_001, name="late", role="client", key_hash=key_hash("late"))
    with pytest.raises(LedgerError) as info:
        apply_tx(market, t, ApplyContext(time_ms=T0 + 10_000, genesis=genesis))
    assert info.value.error_code == "tx_from_future"
    assert market.changes() == before


def _script() -> list[Transaction]:
    return [
        tx("account.create", T0 + 1, name="alice", role="client", key_hash=key_hash("alice")),
        tx("account.create", T0 + 2, name="minnie", role="miner", key_hash=key_hash("minnie")),
        tx("miner.register", T0 + 3, miner_id="gpu-1", owner="minnie", capabilities=["llama3.2"]),
        tx("job.submit", T0 + 4, job_id="j1", client="alice", prompt="one"),
        tx("job.submit", T0 + 5, job_id="j2", client="alice", prompt="two", model="mistral-7b"),
        tx("job.claim", T0 + 6, job_id="j1", miner_id="gpu-1", owner="minnie"),
        tx("job.cancel", T0 + 7, job_id="j2", sender="alice"),
    ]


def _root_after(genesis: Genesis, transactions: list[Transaction], block_time: int) -> str:
    block0, base = genesis_block(genesis, EmptyState())
    state = base.child()
    for t in transactions:
        apply_tx(state, t, ApplyContext(time_ms=block_time, genesis=genesis))
    return state_root(block0.header.state_root, state.changes())


def test_state_root_is_deterministic_from_scratch(genesis: Genesis) -> None:
    first = _root_after(genesis, _script(), T0 + 10)
    second = _root_after(make_genesis(), _script(), T0 + 10)
    assert first == second
    assert len(first) == 64 and first != GENESIS_STATE_ROOT


def test_state_root_changes_with_any_transaction_or_block_time(genesis: Genesis) -> None:
    base = _root_after(genesis, _script(), T0 + 10)
    assert _root_after(genesis, _script(), T0 + 11) != base
    assert _root_after(genesis, _script()[:-1], T0 + 10) != base
    altered = _script()
    altered[3] = tx("job.submit", T0 + 4, job_id="j1", client="alice", prompt="one!")
    assert _root_after(genesis, altered, T0 + 10) != base


def test_state_root_commits_to_deletions_and_the_previous_root() -> None:
    change: list[tuple[bytes, bytes | None]] = [(b"k", b"v")]
    assert state_root(GENESIS_STATE_ROOT, change) != state_root("11" * 32, change)
    assert state_root(GENESIS_STATE_ROOT, [(b"k", None)]) != state_root(GENESIS_STATE_ROOT, [])
    assert state_root(GENESIS_STATE_ROOT, [(b"k", b"")]) != state_root(GENESIS_STATE_ROOT, [(b"k", None)])
    # Length prefixes keep key/value boundaries apart.
    assert state_root(GENESIS_STATE_ROOT, [(b"ab", b"c")]) != state_root(GENESIS_STATE_ROOT, [(b"a", b"bc")])


@settings(max_examples=100)
@given(
    st.binary(min_size=32, max_size=32),
    st.dictionaries(st.binary(max_size=40), st.none() | st.binary(max_size=300), max_size=30),
)
def test_state_root_is_blake3_of_the_previous_root_and_length_prefixed_changes(
    prev: bytes, writes: dict[bytes, bytes | None]
) -> None:
    """The state root's input, spelled out independently: the previous root's 32 bytes, then per
    change in key order a 4-byte big-endian key length, the key, and either a 4-byte big-endian
    value length and the value, or ff ff ff ff for a deletion."""
    changes = sorted(writes.items())
    spelled = prev + b"".join(
        len(k).to_bytes(4, "big") + k + (b"\xff" * 4 if v is None else len(v).to_bytes(4, "big") + v)
        for k, v in changes
    )
    assert state_root(prev.hex(), changes) == blake3.blake3(spelled).hexdigest()


def test_working_state_child_is_isolated_until_merged(state: WorkingState) -> None:
    state.put(b"a", b"1")
    child = state.child()
    child.put(b"b", b"2")
    child.delete(b"a")
    assert child.get(b"a") is None and state.get(b"a") == b"1" and state.get(b"b") is None
    child.merge_into_parent()
    assert state.get(b"a") is None and state.get(b"b") == b"2"


def test_genesis_accounts_exist_after_block_zero(state: WorkingState) -> None:
    account = get_account(state, "ops")
    assert account is not None and account["role"] == "admin" and account["created_at"] == T0
