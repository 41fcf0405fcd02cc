"""Many miners on one model: offers spread polling miners over the queue, long polls wait for a
job, claim-next picks and claims in one step, and under 32 concurrent miners every job
completes exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api, serving, start_node
from tests.support import CLIENT_A, MINER_1

OFFER_MS = 2000
MODEL = "mistral-7b"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serving(start_node(tmp_path_factory, "--rate-limit", "0", "--offer-ms", str(OFFER_MS)))


def in_thread(call: Any, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(call, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)


def test_claim_next_claims_the_oldest_fitting_job_and_answers_204_when_none_fits(api: Api) -> None:
    api.drain_pending()
    llama = api.submit(model="llama3.2")
    mistral = api.submit(model=MODEL)
    both = api.register(capabilities=[MODEL, "llama3.2"])
    only_qwen = api.register(capabilities=["qwen2.5-7b"])
    first = api.m1.post("/v1/jobs/claim-next", 200, json={"miner_id": both})
    assert first["job_id"] == llama["job_id"] and first["status"] == "running" and first["miner_id"] == both
    second = api.m1.post("/v1/jobs/claim-next", 200, json={"miner_id": both, "wait": 0})
    assert second["job_id"] == mistral["job_id"] and second["attempts"] == 1
    nothing = api.m1.http.post("/v1/jobs/claim-next", json={"miner_id": both})
    assert nothing.status_code == 204 and nothing.content == b""
    assert api.m1.http.post("/v1/jobs/claim-next", json={"miner_id": only_qwen}).status_code == 204
    receipt = api.complete(first["job_id"], both)
    assert receipt["job_id"] == llama["job_id"] and receipt["provider"] == both


def test_claim_next_refuses_bad_requests(api: Api) -> None:
    theirs = api.register(api.m2)
    mine = api.register()
    api.m1.post("/v1/jobs/claim-next", 400, json={})
    api.m1.post("/v1/jobs/claim-next", 400, json={"miner_id": mine, "wait": 31})
    api.m1.post("/v1/jobs/claim-next", 400, json={"miner_id": mine, "wait": "soon"})
    api.m1.post("/v1/jobs/claim-next", 400, json={"miner_id": mine, "job_id": "job_x"})
    api.m1.post("/v1/jobs/claim-next", 404, json={"miner_id": "never-registered"})
    api.m1.post("/v1/jobs/claim-next", 403, json={"miner_id": theirs})
    api.a.post("/v1/jobs/claim-next", 403, json={"miner_id": mine})
    for wait in ("-1", "31", "abc"):
        api.m1.get("/v1/jobs/available", 400, params={"miner_id": mine, "wait": wait})


def test_a_waiting_poll_gets_the_job_submitted_while_it_waits(api: Api) -> None:
    api.drain_pending()
    polling = api.register(capabilities=[MODEL])
    claiming = api.register(capabilities=[MODEL])
    offered = in_thread(api.m1.get, "/v1/jobs/available", params={"miner_id": polling, "wait": 20})
    claimed = in_thread(api.m1.post, "/v1/jobs/claim-next", json={"miner_id": claiming, "wait": 20})
    first = api.submit(model=MODEL)
    second = api.submit(model=MODEL)
    got_offer, got_claim = offered.result(timeout=60), claimed.result(timeout=60)
    assert {got_offer["job_id"], got_claim["job_id"]} <= {first["job_id"], second["job_id"]}
    assert got_claim["status"] == "running" and got_claim["miner_id"] == claiming
    if got_offer["job_id"] != got_claim["job_id"]:
        api.claim(got_offer["job_id"], polling)


def test_an_offer_not_claimed_goes_to_a_waiting_miner_once_its_window_ends(api: Api) -> None:
    api.drain_pending()
    job = api.submit(model=MODEL)
    idle = api.register(capabilities=[MODEL])
    eager = api.register(capabilities=[MODEL])
    assert api.m1.get("/v1/jobs/available", params={"miner_id": idle})["job_id"] == job["job_id"]
    assert api.m1.get("/v1/jobs/available", params={"miner_id": eager}) is None  # on offer to `idle`
    # `idle` never claims: the job is offered to the miner waiting for it when the window ends.
    waited = api.m1.get("/v1/jobs/available", params={"miner_id": eager, "wait": 20})
    assert waited["job_id"] == job["job_id"]
    assert api.m1.get("/v1/jobs/available", params={"miner_id": idle}) is None
    api.claim(job["job_id"], eager)


def test_thirty_two_miners_on_one_model_complete_every_job_exactly_once(api: Api) -> None:
    """Half poll and claim (the contract's flow), half claim-next; every job completes once."""
    api.drain_pending()
    jobs_total, miners_total = 160, 32
    miners = [api.register(capabilities=[MODEL]) for _ in range(miners_total)]
    refused = Counter[str]()

    async def submit_all(http: httpx.AsyncClient) -> set[str]:
        async def one(n: int) -> str:
            r = await http.post("/v1/jobs", json={"prompt": f"job {n}", "model": MODEL}, headers=client_key)
            assert r.status_code == 201, r.text
            return str(r.json()["job_id"])

        return set(await asyncio.gather(*(one(n) for n in range(jobs_total))))

    async def work(http: httpx.AsyncClient, miner_id: str, claim_next: bool, done: set[str], everything: int) -> None:
        while len(done) < everything:
            if claim_next:
                r = await http.post("/v1/jobs/claim-next", json={"miner_id": miner_id, "wait": 1}, headers=miner_key)
                if r.status_code == 204:
                    continue
                assert r.status_code == 200, r.text
                job_id = r.json()["job_id"]
            else:
                r = await http.get("/v1/jobs/available", params={"miner_id": miner_id, "wait": 1}, headers=miner_key)
                assert r.status_code == 200, r.text
                if r.json() is None:
                    continue
                job_id = r.json()["job_id"]
                r = await http.post(f"/v1/jobs/{job_id}/claim", json={"miner_id": miner_id}, headers=miner_key)
                if r.status_code == 409:
                    refused[r.json()["error_code"]] += 1
                    continue
                assert r.status_code == 200, r.text
            r = await http.post(
                f"/v1/jobs/{job_id}/complete", json={"miner_id": miner_id, "result": "ok"}, headers=miner_key
            )
            assert r.status_code == 200, r.text
            done.add(job_id)

    client_key, miner_key = {"X-Api-Key": CLIENT_A["key"]}, {"X-Api-Key": MINER_1["key"]}

    async def scenario() -> tuple[set[str], set[str]]:
        limits = httpx.Limits(max_connections=miners_total + 8)
        async with httpx.AsyncClient(base_url=api.node.url, timeout=60, limits=limits) as http:
            done: set[str] = set()
            workers = [
                work(http, miner_id, claim_next, done, jobs_total)
                for miner_id, claim_next in zip(miners, itertools.cycle((False, True)), strict=False)
            ]
            submitted, *_ = await asyncio.wait_for(asyncio.gather(submit_all(http), *workers), timeout=240)
            assert isinstance(submitted, set)
            return submitted, done

    submitted, done = asyncio.run(scenario())
    assert done == submitted and len(submitted) == jobs_total
    statuses = Counter(api.a.get(f"/v1/jobs/{job_id}")["status"] for job_id in submitted)
    assert statuses == {"completed": jobs_total}
    receipts = Counter(len(api.a.get(f"/v1/jobs/{job_id}/receipts")) for job_id in submitted)
    assert receipts == {1: jobs_total}  # each job completed exactly once
    print(f"claims refused with 409 while {miners_total} miners worked {jobs_total} jobs: {dict(refused)}")
