"""A hypothesis state machine drives the API in-process against a plain dict model of jobs,
their queue and the offers polling miners hold: submissions, polls (available), claims,
claim-next, completions, failures, cancellations, offers lapsing, leases expiring, restarts."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from starlette.testclient import TestClient

from node.composition import create_app
from node.config import Config
from node.roles import sequencer_of
from node.runtime import Node
from tests.support import ADMIN, CLIENT_A, CLIENT_B, MINER_1, MINER_2

KEYS = [CLIENT_A, CLIENT_B, MINER_1, MINER_2, ADMIN]
CLIENTS = {"client-a": CLIENT_A["key"], "client-b": CLIENT_B["key"]}
MINERS = {  # miner_id -> (key, capabilities)
    "m1": (MINER_1["key"], ["llama3.2"]),
    "m2": (MINER_2["key"], ["llama3.2", "mistral-7b"]),
}
MODELS = ["llama3.2", "mistral-7b"]
LEASE_SECONDS = 300
MAX_ATTEMPTS = 3
OFFER_MS = 2000


class FakeClock:
    """The node's clock, moved only by the test: offers and leases lapse when a rule says so."""

    def __init__(self) -> None:
        self.start_ms = time.time_ns() // 1_000_000
        self.offset_ms = 0

    def __call__(self) -> int:
        return self.start_ms + self.offset_ms


class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="aitbc-sm-"))
        (self.dir / "keys.json").write_text(json.dumps(KEYS))
        self.clock = FakeClock()
        self.client: TestClient | None = None
        self.model: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.offers: dict[str, tuple[str, int]] = {}
        """miner -> (the job it was offered, when the offer lapses)"""
        self._open()

    # -- plumbing ------------------------------------------------------------------
    def _open(self) -> None:
        config = Config(data_dir=self.dir / "data", api_keys=self.dir / "keys.json", rate_limit=0, offer_ms=OFFER_MS)
        self.node = Node(config, clock=self.clock)
        self.node.open()
        self.client = TestClient(create_app(self.node))
        self.client.__enter__()

    def _close(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
            self.client = None

    def teardown(self) -> None:
        self._close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> Any:
        assert self.client is not None
        response = self.client.request(method, path, headers={"X-Api-Key": key}, **kwargs)
        note(f"{method} {path} -> {response.status_code} {response.text[:200]}")
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"detail", "error_code"}
        return response

    # -- rules ---------------------------------------------------------------------
    @initialize()
    def register_miners(self) -> None:
        for miner_id, (key, caps) in MINERS.items():
            assert (
                self.call(
                    "POST", "/v1/miners/register", key, json={"miner_id": miner_id, "capabilities": caps}
                ).status_code
                == 201
            )

    @rule(target=jobs, client=st.sampled_from(sorted(CLIENTS)), model=st.sampled_from(MODELS))
    def submit(self, client: str, model: str) -> str:
        r = self.call("POST", "/v1/jobs", CLIENTS[client], json={"prompt": f"job for {client}", "model": model})
        assert r.status_code == 201
        job = r.json()
        assert job["status"] == "pending" and job["model"] == model
        self.model[job["job_id"]] = {
            "status": "pending",
            "client": client,
            "model": model,
            "miner": None,
            "attempts": 0,
        }
        job_id: str = job["job_id"]
        self.order.append(job_id)
        return job_id

    def _pending_for(self, caps: list[str]) -> list[str]:
        """The pending jobs of the models caps names, oldest first."""
        return [j for j in self.order if self.model[j]["status"] == "pending" and self.model[j]["model"] in caps]

    @rule(miner=st.sampled_from(sorted(MINERS)))
    def available(self, miner: str) -> None:
        key, caps = MINERS[miner]
        r = self.call("GET", "/v1/jobs/available", key, params={"miner_id": miner})
        assert r.status_code == 200
        now = self.clock()
        self.offers = {m: offer for m, offer in self.offers.items() if offer[1] > now}
        own = self.offers.get(miner)
        if own is not None and self.model[own[0]]["status"] == "pending":
            expected: str | None = own[0]  # its own offer back, its window not extended
        else:
            self.offers.pop(miner, None)
            held = {job for m, (job, _) in self.offers.items() if m != miner}
            expected = next((j for j in self._pending_for(caps) if j not in held), None)
            if expected is not None:
                self.offers[miner] = (expected, now + OFFER_MS)
        got = r.json()
        assert (got and got["job_id"]) == expected

    @rule(miner=st.sampled_from(sorted(MINERS)))
    def claim_next(self, miner: str) -> None:
        key, caps = MINERS[miner]
        r = self.call("POST", "/v1/jobs/claim-next", key, json={"miner_id": miner})
        now = self.clock()
        held = {job for m, (job, lapses) in self.offers.items() if m != miner and lapses > now}
        expected = next((j for j in self._pending_for(caps) if j not in held), None)  # offers are passed over
        if expected is None:
            assert r.status_code == 204 and r.content == b""
            return
        assert r.status_code == 200
        job = r.json()
        assert job["job_id"] == expected and job["status"] == "running" and job["miner_id"] == miner
        m = self.model[expected]
        m.update(status="running", miner=miner, attempts=m["attempts"] + 1)
        self._claimed(expected, miner)

    def _claimed(self, job: str, miner: str) -> None:
        """A claim ends the claimer's offer and any offer of the claimed job."""
        self.offers = {m: offer for m, offer in self.offers.items() if m != miner and offer[0] != job}

    @rule()
    def offers_lapse(self) -> None:
        self.clock.offset_ms += OFFER_MS
        self.offers.clear()

    @rule(job=jobs, miner=st.sampled_from(sorted(MINERS)))
    def claim(self, job: str, miner: str) -> None:
        key, caps = MINERS[miner]
        r = self.call("POST", f"/v1/jobs/{job}/claim", key, json={"miner_id": miner})
        m = self.model[job]
        if m["status"] == "pending" and m["model"] in caps:
            assert r.status_code == 200
            assert r.json()["status"] == "running" and r.json()["miner_id"] == miner
            m.update(status="running", miner=miner, attempts=m["attempts"] + 1)
            self._claimed(job, miner)
        else:
            assert r.status_code == 409

    @rule(job=jobs, miner=st.sampled_from(sorted(MINERS)), words=st.integers(0, 20))
    def complete(self, job: str, miner: str, words: int) -> None:
        result = " ".join(["word"] * words)
        r = self.call("POST", f"/v1/jobs/{job}/complete", MINERS[miner][0], json={"miner_id": miner, "result": result})
        m = self.model[job]
        if m["status"] == "running" and m["miner"] == miner:
            assert r.status_code == 200
            receipt = r.json()
            assert receipt["job_id"] == job and receipt["provider"] == miner and receipt["units"] == words
            m["status"] = "completed"
        else:
            assert r.status_code == 409

    @rule(job=jobs, miner=st.sampled_from(sorted(MINERS)))
    def fail(self, job: str, miner: str) -> None:
        r = self.call(
            "POST", f"/v1/jobs/{job}/fail", MINERS[miner][0], json={"miner_id": miner, "error": "out of memory"}
        )
        m = self.model[job]
        if m["status"] == "running" and m["miner"] == miner:
            assert r.status_code == 200
            self._release(m)
            assert r.json()["status"] == m["status"]
        else:
            assert r.status_code == 409

    @rule(job=jobs, client=st.sampled_from(sorted(CLIENTS)))
    def cancel(self, job: str, client: str) -> None:
        r = self.call("POST", f"/v1/jobs/{job}/cancel", CLIENTS[client])
        m = self.model[job]
        if m["client"] != client:
            assert r.status_code == 404
        elif m["status"] in ("pending", "running"):
            assert r.status_code == 200 and r.json()["status"] == "cancelled"
            m["status"] = "cancelled"
        else:
            assert r.status_code == 409

    @rule()
    def leases_expire(self) -> None:
        running = [j for j, m in self.model.items() if m["status"] == "running"]
        self.clock.offset_ms += (LEASE_SECONDS + 1) * 1000
        self.offers.clear()
        sequencer_of(self.node.role).wake()
        for job in running:
            self._release(self.model[job])
        deadline = time.monotonic() + 30
        for job in running:
            while self._status(job) == "running":
                assert time.monotonic() < deadline, f"lease of {job} never expired"

    @rule()
    def restart(self) -> None:
        self._close()
        self._open()
        self.offers.clear()  # held in the sequencer's memory only

    def _release(self, m: dict[str, Any]) -> None:
        if m["attempts"] >= MAX_ATTEMPTS:
            m["status"] = "failed"
        else:
            m.update(status="pending", miner=None)

    def _status(self, job: str) -> str:
        r = self.call("GET", f"/v1/jobs/{job}", CLIENTS[self.model[job]["client"]])
        assert r.status_code == 200
        return str(r.json()["status"])

    # -- invariants ----------------------------------------------------------------
    @invariant()
    def every_job_matches_the_model(self) -> None:
        for job, m in self.model.items():
            assert self._status(job) == m["status"], job

    @invariant()
    def status_listings_and_stats_match_the_model(self) -> None:
        for status in ("pending", "running", "completed", "failed", "cancelled"):
            r = self.call("GET", "/v1/jobs", ADMIN["key"], params={"status": status, "limit": 100})
            expected = [j for j in reversed(self.order) if self.model[j]["status"] == status]
            assert [j["job_id"] for j in r.json()] == expected[:100]
        assert self.client is not None
        stats = self.client.get("/explorer/stats").json()
        assert stats["total_jobs"] == len(self.model)
        assert stats["total_receipts"] == sum(1 for m in self.model.values() if m["status"] == "completed")

    @invariant()
    def clients_see_only_their_own_jobs(self) -> None:
        for client, key in CLIENTS.items():
            listed = [j["job_id"] for j in self.call("GET", "/v1/jobs", key, params={"limit": 100}).json()]
            assert listed == [j for j in reversed(self.order) if self.model[j]["client"] == client][:100]


JobLifecycle.TestCase.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
test_job_lifecycle_matches_model = JobLifecycle.TestCase
