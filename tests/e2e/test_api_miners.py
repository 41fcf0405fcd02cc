"""Miner side: register, available, claim (with a 50-way race), complete, fail."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api
from tests.support import MINER_1, MINER_2

RECEIPT_FIELDS = {
    "receipt_id",
    "job_id",
    "provider",
    "client",
    "units",
    "unit_type",
    "price",
    "model",
    "started_at",
    "completed_at",
    "signature",
    "version",
    "duration_ms",
    "coordinator_id",
}


def utc_seconds(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def utc_ms(value: str) -> int:
    return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


# -- POST /v1/miners/register ----------------------------------------------------------


def test_register_returns_201_miner_record(api: Api) -> None:
    miner_id = api.unique("rig")
    body = {
        "miner_id": miner_id,
        "capabilities": ["llama3.2", "mistral-7b"],
        "gpu_info": {"name": "RTX 4090", "memory": "24GB"},
    }
    miner = api.m1.post("/v1/miners/register", 201, json=body)
    assert miner["miner_id"] == miner_id
    assert miner["capabilities"] == ["llama3.2", "mistral-7b"]
    assert miner["gpu_info"] == {"name": "RTX 4090", "memory": "24GB"}
    assert miner.get("owner") in (None, MINER_1["name"])
    without_gpu = api.m1.post(
        "/v1/miners/register", 201, json={"miner_id": api.unique("rig"), "capabilities": ["llama3.2"]}
    )
    assert without_gpu.get("gpu_info") is None


def test_reregister_same_key_updates_capabilities_and_gpu_info(api: Api) -> None:
    api.drain_pending()
    miner_id = api.register(capabilities=["llama3.2"], gpu_info={"name": "RTX 3060", "memory": "12GB"})
    job = api.submit(model="qwen2.5-7b")
    assert api.m1.get("/v1/jobs/available", params={"miner_id": miner_id}) is None
    again = api.m1.post(
        "/v1/miners/register",
        201,
        json={"miner_id": miner_id, "capabilities": ["qwen2.5-7b"], "gpu_info": {"name": "H100", "memory": "80GB"}},
    )
    assert again["capabilities"] == ["qwen2.5-7b"]
    assert again["gpu_info"] == {"name": "H100", "memory": "80GB"}
    assert api.m1.get("/v1/jobs/available", params={"miner_id": miner_id})["job_id"] == job["job_id"]


def test_register_miner_id_of_another_key_is_409(api: Api) -> None:
    miner_id = api.register(api.m1)
    err = api.m2.post("/v1/miners/register", 409, json={"miner_id": miner_id, "capabilities": ["mistral-7b"]})
    assert err["error_code"]
    # The owner keeps it, unchanged.
    again = api.m1.post("/v1/miners/register", 201, json={"miner_id": miner_id, "capabilities": ["llama3.2"]})
    assert again["capabilities"] == ["llama3.2"]


BAD_REGISTRATIONS: list[tuple[str, Any, str]] = [
    ("missing miner_id", {"capabilities": ["llama3.2"]}, "miner_id"),
    ("missing capabilities", {"miner_id": "rig-x"}, "capabilities"),
    ("miner_id not a string", {"miner_id": 7, "capabilities": ["llama3.2"]}, "miner_id"),
    ("empty miner_id", {"miner_id": "", "capabilities": ["llama3.2"]}, "miner_id"),
    ("capabilities a string", {"miner_id": "rig-x", "capabilities": "llama3.2"}, "capabilities"),
    ("capabilities of numbers", {"miner_id": "rig-x", "capabilities": [1, 2]}, "capabilities"),
    ("gpu_info a string", {"miner_id": "rig-x", "capabilities": ["llama3.2"], "gpu_info": "RTX"}, "gpu_info"),
    (
        "gpu_info with a number",
        {"miner_id": "rig-x", "capabilities": ["llama3.2"], "gpu_info": {"memory": 24}},
        "gpu_info",
    ),
    ("unknown field", {"miner_id": "rig-x", "capabilities": ["llama3.2"], "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_REGISTRATIONS], ids=[i for i, _, _ in BAD_REGISTRATIONS]
)
def test_bad_registration_is_400(api: Api, body: dict[str, Any], field: str) -> None:
    err = api.m1.post("/v1/miners/register", 400, json=body)
    assert field in err["detail"], err
    api.m1.post("/v1/miners/register", 400, content=b"{nope", headers={"content-type": "application/json"})


# -- GET /v1/jobs/available --------------------------------------------------------------


def test_available_offers_the_oldest_fitting_job_no_other_miner_holds(api: Api) -> None:
    api.drain_pending()
    first_mistral = api.submit(model="mistral-7b")
    first_llama = api.submit(model="llama3.2")
    second_mistral = api.submit(model="mistral-7b")
    llama_only = api.register(capabilities=["llama3.2"])
    mistral_only = api.register(capabilities=["mistral-7b"])
    both = api.register(capabilities=["llama3.2", "mistral-7b"])
    qwen_only = api.register(capabilities=["qwen2.5-7b"])

    def offer(miner_id: str) -> Any:
        job = api.m1.get("/v1/jobs/available", params={"miner_id": miner_id})
        return None if job is None else job["job_id"]

    assert offer(llama_only) == first_llama["job_id"]
    assert offer(mistral_only) == first_mistral["job_id"]
    assert offer(both) == second_mistral["job_id"]  # the two older ones are on offer to others
    assert offer(qwen_only) is None
    full = api.m1.get("/v1/jobs/available", params={"miner_id": both})  # its own offer, again
    assert full["status"] == "pending" and full["model"] == "mistral-7b" and full["prompt"] == second_mistral["prompt"]

    api.claim(first_mistral["job_id"], mistral_only)
    assert offer(mistral_only) is None  # the only other mistral job is on offer to `both`
    api.claim(first_llama["job_id"], llama_only)
    assert offer(llama_only) is None
    assert offer(both) == second_mistral["job_id"]
    api.claim(second_mistral["job_id"], both)


def test_available_returns_json_null_when_nothing_matches(api: Api) -> None:
    api.drain_pending()
    miner_id = api.register(capabilities=["llama3.1-8b"])
    resp = api.m1.http.get("/v1/jobs/available", params={"miner_id": miner_id})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.text.strip() == "null"
    assert api.check(resp, 200) is None


def test_concurrent_miners_are_offered_different_jobs_and_each_claim_succeeds(api: Api) -> None:
    api.drain_pending()
    jobs = [api.submit(model="llama3.1-8b")["job_id"] for _ in range(2)]
    one = api.register(capabilities=["llama3.1-8b"])
    two = api.register(api.m2, capabilities=["llama3.1-8b"])
    seen = [api.m1.get("/v1/jobs/available", params={"miner_id": one})["job_id"] for _ in range(2)]
    seen.append(api.m2.get("/v1/jobs/available", params={"miner_id": two})["job_id"])
    assert seen == [jobs[0], jobs[0], jobs[1]]
    assert [api.a.get(f"/v1/jobs/{j}")["status"] for j in jobs] == ["pending", "pending"]  # an offer is not a claim
    api.claim(jobs[1], two, api.m2)
    api.claim(jobs[0], one)


def test_available_errors(api: Api) -> None:
    api.m1.get("/v1/jobs/available", 404, params={"miner_id": "never-registered"})
    err = api.m1.get("/v1/jobs/available", 400)
    assert "miner_id" in err["detail"]
    theirs = api.register(api.m2)
    api.m1.get("/v1/jobs/available", 403, params={"miner_id": theirs})


# -- POST /v1/jobs/{job_id}/claim -------------------------------------------------------


def test_claim_sets_running_miner_and_started_at(api: Api) -> None:
    job = api.submit()
    miner_id = api.register()
    claimed = api.m1.post(f"/v1/jobs/{job['job_id']}/claim", json={"miner_id": miner_id})
    assert claimed["status"] == "running"
    assert claimed["miner_id"] == miner_id
    assert utc_seconds(claimed["started_at"]) >= utc_seconds(job["created_at"])
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "running"


def test_claim_errors(api: Api) -> None:
    job = api.submit()
    mine = api.register()
    theirs = api.register(api.m2)
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 403, json={"miner_id": theirs})
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 404, json={"miner_id": "never-registered"})
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 400, json={})
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 400, json={"miner_id": 12})
    api.m1.post("/v1/jobs/job_does_not_exist/claim", 404, json={"miner_id": mine})
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "pending"
    api.claim(job["job_id"], mine)
    # Any job that is not pending: running (by itself or another miner), completed, cancelled.
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": mine})
    other_mine = api.register()
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": other_mine})
    api.m2.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": theirs})
    api.complete(job["job_id"], mine)
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": other_mine})
    cancelled = api.submit()
    api.a.post(f"/v1/jobs/{cancelled['job_id']}/cancel")
    api.m1.post(f"/v1/jobs/{cancelled['job_id']}/claim", 409, json={"miner_id": mine})


def test_fifty_concurrent_claims_exactly_one_wins(api: Api) -> None:
    job = api.submit()
    miners = [
        (MINER_1["key"] if i % 2 == 0 else MINER_2["key"], api.register(api.m1 if i % 2 == 0 else api.m2))
        for i in range(50)
    ]

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=api.node.url, timeout=60, limits=limits) as http:
            return await asyncio.gather(
                *(
                    http.post(f"/v1/jobs/{job['job_id']}/claim", json={"miner_id": m}, headers={"X-Api-Key": k})
                    for k, m in miners
                )
            )

    responses = asyncio.run(race())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 49, statuses
    winners = [r for r in responses if r.status_code == 200]
    for r in responses:
        api.check(r, (200, 409))
    winner = winners[0].json()["miner_id"]
    final = api.a.get(f"/v1/jobs/{job['job_id']}")
    assert final["status"] == "running" and final["miner_id"] == winner
    assert final.get("attempts", 1) == 1


# -- POST /v1/jobs/{job_id}/complete ------------------------------------------------------


def expected_price(units: int, per_unit: str) -> float:
    return float((Decimal(units) * Decimal(per_unit)).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN))


@pytest.mark.parametrize(
    ("model", "per_unit", "result", "units"),
    [
        ("llama3.2", "0.000002", "The  quick\tbrown\nfox jumps ", 5),
        ("llama3.2", "0.000002", "word", 1),
        ("llama3.2", "0.000002", "   ", 0),
        ("llama3.1-8b", "0.000004", " ".join(["tok"] * 1234), 1234),
        ("mistral-7b", "0.000003", "a b c d e f g", 7),
    ],
)
def test_complete_returns_full_receipt(api: Api, model: str, per_unit: str, result: str, units: int) -> None:
    job = api.submit(model=model)
    miner_id = api.register(capabilities=[model])
    claimed = api.claim(job["job_id"], miner_id)
    receipt = api.m1.post(f"/v1/jobs/{job['job_id']}/complete", json={"miner_id": miner_id, "result": result})
    assert set(receipt) == RECEIPT_FIELDS
    assert receipt["receipt_id"] and isinstance(receipt["receipt_id"], str)
    assert receipt["job_id"] == job["job_id"]
    assert receipt["provider"] == miner_id
    assert receipt["client"] == "client-a"
    assert receipt["units"] == units
    assert receipt["unit_type"] == "tokens"
    assert receipt["price"] == expected_price(units, per_unit)
    assert receipt["model"] == model
    for field in ("started_at", "completed_at"):
        assert type(receipt[field]) is int, field
    assert receipt["started_at"] == utc_seconds(claimed["started_at"])
    assert receipt["started_at"] <= receipt["completed_at"]
    assert receipt["version"] == "1.0" and receipt["coordinator_id"] == api.anon.get("/health")["chain_id"]
    sig = receipt["signature"]
    assert sig["alg"] == "Ed25519" and isinstance(sig["key_id"], str) and isinstance(sig["sig"], str)
    assert "=" not in sig["key_id"] + sig["sig"]
    done = api.a.get(f"/v1/jobs/{job['job_id']}")
    assert done["status"] == "completed" and done["result"] == result and done["miner_id"] == miner_id
    assert receipt["completed_at"] == utc_seconds(done["completed_at"])
    assert receipt["duration_ms"] == utc_ms(done["completed_at"]) - utc_ms(claimed["started_at"])
    assert api.a.get(f"/v1/receipts/{receipt['receipt_id']}") == receipt


def test_complete_with_iso_completed_at(api: Api) -> None:
    job = api.submit()
    miner_id = api.register()
    claimed = api.claim(job["job_id"], miner_id)
    receipt = api.m1.post(
        f"/v1/jobs/{job['job_id']}/complete",
        json={"miner_id": miner_id, "result": "done", "completed_at": claimed["started_at"]},
    )
    assert receipt["completed_at"] == utc_seconds(claimed["started_at"])
    bad = api.submit()
    api.claim(bad["job_id"], miner_id)
    api.m1.post(
        f"/v1/jobs/{bad['job_id']}/complete",
        400,
        json={"miner_id": miner_id, "result": "done", "completed_at": "yesterday-ish"},
    )
    assert api.a.get(f"/v1/jobs/{bad['job_id']}")["status"] == "running"


def test_complete_by_someone_other_than_the_claim_holder(api: Api) -> None:
    job = api.submit()
    holder = api.register(api.m1)
    sibling = api.register(api.m1)
    foreign = api.register(api.m2)
    api.claim(job["job_id"], holder)
    path = f"/v1/jobs/{job['job_id']}/complete"
    # Another miner of the same key, not holding the claim: 409.
    api.m1.post(path, 409, json={"miner_id": sibling, "result": "mine now"})
    # Another key, naming the holder's miner_id: 403.
    api.m2.post(path, 403, json={"miner_id": holder, "result": "stolen"})
    # Another key with its own miner: refused (403 or 409, as documented).
    api.m2.post(path, (403, 409), json={"miner_id": foreign, "result": "stolen"})
    api.a.post(path, 403, json={"miner_id": holder, "result": "client"})
    still = api.a.get(f"/v1/jobs/{job['job_id']}")
    assert still["status"] == "running" and still["miner_id"] == holder
    api.complete(job["job_id"], holder)


def test_complete_job_that_is_not_running_is_409(api: Api) -> None:
    miner_id = api.register()
    pending = api.submit()
    api.m1.post(f"/v1/jobs/{pending['job_id']}/complete", 409, json={"miner_id": miner_id, "result": "x"})
    assert api.a.get(f"/v1/jobs/{pending['job_id']}")["status"] == "pending"
    api.claim(pending["job_id"], miner_id)
    api.complete(pending["job_id"], miner_id)
    api.m1.post(f"/v1/jobs/{pending['job_id']}/complete", 409, json={"miner_id": miner_id, "result": "twice"})
    api.m1.post("/v1/jobs/job_does_not_exist/complete", 404, json={"miner_id": miner_id, "result": "x"})


def test_complete_bad_bodies(api: Api) -> None:
    job = api.submit()
    miner_id = api.register()
    api.claim(job["job_id"], miner_id)
    path = f"/v1/jobs/{job['job_id']}/complete"
    api.m1.post(path, 400, json={"miner_id": miner_id})
    api.m1.post(path, 400, json={"result": "x"})
    api.m1.post(path, 400, json={"miner_id": miner_id, "result": 5})
    api.m1.post(path, 400, content=b"][", headers={"content-type": "application/json"})
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "running"


def test_result_over_1_mib_is_413(api: Api) -> None:
    job = api.submit()
    miner_id = api.register()
    api.claim(job["job_id"], miner_id)
    path = f"/v1/jobs/{job['job_id']}/complete"
    err = api.m1.post(path, 413, json={"miner_id": miner_id, "result": "r" * (1024 * 1024 + 1)})
    assert "result" in err["detail"]
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "running"
    receipt = api.m1.post(path, json={"miner_id": miner_id, "result": "r" * (1024 * 1024)})
    assert receipt["units"] == 1


# -- POST /v1/jobs/{job_id}/fail --------------------------------------------------------


def test_fail_requeues_until_max_attempts_then_failed(api: Api) -> None:
    job = api.submit()
    miner_id = api.register()
    path = f"/v1/jobs/{job['job_id']}/fail"
    for attempt in (1, 2):
        api.claim(job["job_id"], miner_id)
        requeued = api.m1.post(path, json={"miner_id": miner_id, "error": f"out of memory #{attempt}"})
        assert requeued["status"] == "pending"
        assert requeued["attempts"] == attempt
        assert requeued.get("miner_id") is None
        assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "pending"
    api.claim(job["job_id"], miner_id)
    failed = api.m1.post(path, json={"miner_id": miner_id, "error": "out of memory #3"})
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "failed"
    assert job["job_id"] in {j["job_id"] for j in api.a.get("/v1/jobs", params={"status": "failed"})}
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": miner_id})
    api.m1.post(path, 409, json={"miner_id": miner_id, "error": "again"})


def test_fail_errors(api: Api) -> None:
    job = api.submit()
    holder = api.register()
    sibling = api.register()
    foreign = api.register(api.m2)
    path = f"/v1/jobs/{job['job_id']}/fail"
    api.m1.post(path, 409, json={"miner_id": holder, "error": "not even claimed"})
    api.claim(job["job_id"], holder)
    api.m1.post(path, 400, json={"miner_id": holder})
    api.m1.post(path, 400, json={"error": "who"})
    api.m1.post(path, 409, json={"miner_id": sibling, "error": "not mine"})
    api.m2.post(path, 403, json={"miner_id": holder, "error": "not mine"})
    api.m2.post(path, (403, 409), json={"miner_id": foreign, "error": "not mine"})
    api.m1.post("/v1/jobs/job_does_not_exist/fail", 404, json={"miner_id": holder, "error": "x"})
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "running"
