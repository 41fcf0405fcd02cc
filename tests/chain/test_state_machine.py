"""A job market driven at random against a plain model; every sealed block replays on a follower."""

from __future__ import annotations

from typing import Any

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from chain import jobs
from chain.context import ApplyContext
from chain.errors import Conflict, LedgerError, NotFound
from chain.receipts import receipt_body, sign_receipt
from chain.state import WorkingState
from chain.transactions import Transaction
from chain.transition import apply_block, apply_tx, seal_block
from node.verify import MemoryState
from tests.chain.devchain import AUTHORITY, T0, Chain, key_hash, make_genesis, tx

MINERS = {"gpu-1": "minnie", "gpu-2": "max"}


class JobMarket(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    @initialize()
    def start(self) -> None:
        self.genesis = make_genesis()
        self.chain = Chain(self.genesis)
        self.follower = MemoryState()
        self.follower.data = dict(self.chain.state.data)
        self.now = T0 + 1_000
        self.pending: list[Transaction] = []
        self.working = WorkingState(self.chain.state)
        self.model: dict[str, dict[str, Any]] = {}
        self.serial = 0
        for name, role in [("alice", "client"), ("bob", "client"), ("minnie", "miner"), ("max", "miner")]:
            self._ok(tx("account.create", self.now, name=name, role=role, key_hash=key_hash(name)))
        for miner_id, owner in MINERS.items():
            self._ok(tx("miner.register", self.now, miner_id=miner_id, owner=owner, capabilities=["llama3.2"]))

    # -- applying -----------------------------------------------------------------

    def _apply(self, t: Transaction) -> dict[str, Any]:
        result = apply_tx(self.working, t, ApplyContext(time_ms=self.now, genesis=self.genesis))
        self.pending.append(t)
        return result

    def _ok(self, t: Transaction) -> dict[str, Any]:
        note(f"{t.type} {t.payload.get('job_id', '')} at {self.now} -> ok")
        return self._apply(t)

    def _refused(self, t: Transaction, error: type[LedgerError]) -> None:
        note(f"{t.type} {t.payload.get('job_id', '')} at {self.now} -> {error.__name__}")
        before = self.working.changes()
        try:
            self._apply(t)
        except error:
            assert self.working.changes() == before
        else:
            raise AssertionError(f"{t.type} was accepted but the model expected {error.__name__}")

    # -- rules --------------------------------------------------------------------

    @rule(target=jobs, client=st.sampled_from(["alice", "bob"]))
    def submit(self, client: str) -> str:
        self.serial += 1
        job_id = f"job-{self.serial}"
        self._ok(tx("job.submit", self.now, job_id=job_id, client=client, prompt=f"prompt {self.serial}"))
        self.model[job_id] = {"status": "pending", "attempts": 0, "miner": None, "client": client, "deadline": None}
        return job_id

    @rule(job_id=jobs, miner_id=st.sampled_from(sorted(MINERS)))
    def claim(self, job_id: str, miner_id: str) -> None:
        job = self.model[job_id]
        t = tx("job.claim", self.now, job_id=job_id, miner_id=miner_id, owner=MINERS[miner_id])
        if job["status"] != "pending":
            self._refused(t, Conflict)
            return
        self._ok(t)
        deadline = self.now + self.genesis.params.lease_seconds * 1000
        job.update(status="running", attempts=job["attempts"] + 1, miner=miner_id, deadline=deadline)

    def _holder(self, job: dict[str, Any]) -> str:
        return job["miner"] or "gpu-1"

    @rule(job_id=jobs)
    def fail(self, job_id: str) -> None:
        job = self.model[job_id]
        miner_id = self._holder(job)
        t = tx("job.fail", self.now, job_id=job_id, miner_id=miner_id, owner=MINERS[miner_id], error="boom")
        if job["status"] != "running":
            self._refused(t, Conflict)
            return
        self._ok(t)
        self._release(job)

    def _release(self, job: dict[str, Any]) -> None:
        if job["attempts"] >= self.genesis.params.max_attempts:
            job.update(status="failed", deadline=None)
        else:
            job.update(status="pending", miner=None, deadline=None)

    @rule(job_id=jobs, words=st.integers(0, 5))
    def complete(self, job_id: str, words: int) -> None:
        job = self.model[job_id]
        miner_id = self._holder(job)
        result = " ".join(["word"] * words)
        receipt: dict[str, Any] = {}
        if job["status"] == "running":
            record = jobs.get_job(self.working, job_id)
            body = receipt_body(
                receipt_id=f"r-{job_id}",
                job=record,
                provider=miner_id,
                result=result,
                completed_at_ms=self.now,
                price_per_unit=self.genesis.params.price_per_unit("llama3.2"),
                coordinator_id=self.genesis.chain_id,
            )
            receipt = sign_receipt(body, AUTHORITY)
        t = tx(
            "job.complete",
            self.now,
            job_id=job_id,
            miner_id=miner_id,
            owner=MINERS[miner_id],
            result=result,
            completed_at=self.now,
            receipt=receipt,
        )
        if job["status"] != "running":
            self._refused(t, Conflict)
            return
        self._ok(t)
        job.update(status="completed", deadline=None)

    @rule(job_id=jobs, sender=st.sampled_from(["alice", "bob", "ops"]))
    def cancel(self, job_id: str, sender: str) -> None:
        job = self.model[job_id]
        if job["status"] == "completed":
            return  # whether a completed job may be cancelled is not settled here
        t = tx("job.cancel", self.now, job_id=job_id, sender=sender)
        if sender != "ops" and sender != job["client"]:
            self._refused(t, NotFound)
        elif job["status"] not in ("pending", "running"):
            self._refused(t, Conflict)
        else:
            self._ok(t)
            job.update(status="cancelled", deadline=None)

    @rule(job_id=jobs)
    def requeue(self, job_id: str) -> None:
        job = self.model[job_id]
        deadline = job["deadline"] if job["deadline"] is not None else self.now
        t = tx("job.requeue", self.now, job_id=job_id, lease_deadline=deadline)
        if job["status"] != "running" or deadline > self.now:
            self._refused(t, Conflict)
            return
        self._ok(t)
        job["error"] = "lease expired"
        self._release(job)

    @rule(ms=st.sampled_from([1, 1_000, 30_000, 60_000, 61_000]))
    def seal_and_wait(self, ms: int) -> None:
        """Seal what is pending at the current block time, replay it on the follower, then let time pass."""
        if self.pending:
            block = seal_block(self.chain.tip, self.pending, self.working, self.now, AUTHORITY)
            derived = apply_block(self.follower, self.chain.tip, block, self.genesis)
            self.follower.apply(derived.changes())
            self.chain.blocks.append(block)
            self.chain.state.apply(self.working.changes())
            assert self.follower.data == self.chain.state.data
            self.pending = []
            self.working = WorkingState(self.chain.state)
        self.now += ms

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def jobs_match_the_model(self) -> None:
        for job_id, expected in self.model.items():
            job = jobs.get_job(self.working, job_id)
            assert job["status"] == expected["status"], job_id
            assert job["attempts"] == expected["attempts"], job_id
            assert job["lease_deadline"] == expected["deadline"], job_id

    @invariant()
    def status_counters_match_the_model(self) -> None:
        for status in jobs.STATUSES:
            expected = sum(1 for j in self.model.values() if j["status"] == status)
            assert self.working.get_int(jobs.counter_key("status", status)) == expected, status


JobMarket.TestCase.settings = settings(JobMarket.TestCase.settings, stateful_step_count=40)
test_job_market_agrees_with_its_model_and_its_follower = JobMarket.TestCase


# -- keys built from prefixes are the keys chain.state.key builds --------------------
from hypothesis import given as _given  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402

_ids = _st.text(_st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=12)
_ints = _st.integers(min_value=0, max_value=2**64 - 1)


@_given(_ids, _ids, _ids, _ints, _st.sampled_from(jobs.STATUSES))
def test_prefix_built_keys_equal_the_general_key_function(a: str, b: str, c: str, n: int, status: str) -> None:
    from chain import indexes, miners
    from chain.state import key

    assert jobs.job_key(a) == key("job", a)
    assert jobs.receipt_key(a) == key("rcpt", a)
    assert jobs.receipt_tx_key(a) == key("rcptx", a)
    assert jobs.counter_key("status", status) == key("ctr", "status", status)
    assert miners.miner_key(a) == key("miner", a)
    assert indexes.seen(n, a) == key("ix", "seen", n, a)
    job = {"seq": n, "status": status, "client": b, "model": c, "lease_deadline": n, "job_id": a}
    expected = [key("ix", "js", status, n), key("ix", "jcs", b, status, n)]
    if status == "pending":
        expected.append(key("ix", "pm", c, n))
    if status == "running":
        expected.append(key("ix", "lease", n, a))
    assert indexes.job_status_entries(job) == expected
    assert [k for k, _ in indexes.new_job_entries(a, b, n)] == [key("ix", "ja", n), key("ix", "jc", b, n)]
    assert indexes.receipt_entries(n, b, c) == [
        key("ix", "ra", n),
        key("ix", "rc", b, n),
        key("ix", "rp", c, n),
        key("ix", "rcp", b, c, n),
    ]
    assert indexes.jobs_of_client(b) == key("ix", "jc", b, "") and indexes.pending_queue(c) == key("ix", "pm", c, "")
