"""Client-side jobs: submit, list, read and cancel, with every listed 400/404/409/413."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Api

MAX_BODY = 2 * 1024 * 1024


def parse_utc(value: str) -> datetime:
    assert value.endswith("Z") or value.endswith("+00:00"), f"{value!r} is not ISO 8601 UTC"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    offset = moment.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    return moment


# -- POST /v1/jobs ----------------------------------------------------------------------


def test_submit_returns_pending_job_with_defaults(api: Api) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    job = api.a.post("/v1/jobs", 201, json={"prompt": "Explain proof of authority"})
    assert job["status"] == "pending"
    assert isinstance(job["job_id"], str) and job["job_id"]
    assert job["prompt"] == "Explain proof of authority"
    assert job["model"] == "llama3.2"
    assert job["params"] == {"max_tokens": 256, "temperature": 0.7, "top_p": 0.9}
    created = parse_utc(job["created_at"])
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
    for absent in ("result", "miner_id", "started_at", "completed_at"):
        assert job.get(absent) is None
    # Fresh id every time; readable straight away.
    other = api.submit(prompt="Explain proof of authority")
    assert other["job_id"] != job["job_id"]
    assert api.a.get(f"/v1/jobs/{job['job_id']}") == job


def test_submit_keeps_given_model_and_params(api: Api) -> None:
    job = api.submit(model="mistral-7b", params={"max_tokens": 32768, "temperature": 0, "top_p": 1})
    assert job["model"] == "mistral-7b"
    assert job["params"] == {"max_tokens": 32768, "temperature": 0, "top_p": 1}
    partial = api.submit(params={"temperature": 2})
    assert partial["params"] == {"max_tokens": 256, "temperature": 2, "top_p": 0.9}
    low = api.submit(params={"max_tokens": 1, "top_p": 0.0001})
    assert low["params"]["max_tokens"] == 1


def test_prompt_of_exactly_the_cap_is_accepted(api: Api) -> None:
    job = api.submit(prompt="p" * 65536)
    assert len(job["prompt"]) == 65536


BAD_JOBS: list[tuple[str, Any, str]] = [
    ("missing prompt", {"model": "llama3.2"}, "prompt"),
    ("null prompt", {"prompt": None}, "prompt"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("blank prompt", {"prompt": "   \n\t"}, "prompt"),
    ("integer prompt", {"prompt": 42}, "prompt"),
    ("list prompt", {"prompt": ["a"]}, "prompt"),
    ("max_tokens 0", {"prompt": "x", "params": {"max_tokens": 0}}, "max_tokens"),
    ("max_tokens 32769", {"prompt": "x", "params": {"max_tokens": 32769}}, "max_tokens"),
    ("max_tokens float", {"prompt": "x", "params": {"max_tokens": 2.5}}, "max_tokens"),
    ("max_tokens string", {"prompt": "x", "params": {"max_tokens": "12"}}, "max_tokens"),
    ("temperature -0.1", {"prompt": "x", "params": {"temperature": -0.1}}, "temperature"),
    ("temperature 2.1", {"prompt": "x", "params": {"temperature": 2.1}}, "temperature"),
    ("temperature string", {"prompt": "x", "params": {"temperature": "hot"}}, "temperature"),
    ("top_p 0", {"prompt": "x", "params": {"top_p": 0}}, "top_p"),
    ("top_p 1.1", {"prompt": "x", "params": {"top_p": 1.1}}, "top_p"),
    ("params not object", {"prompt": "x", "params": [1]}, "params"),
    ("model not string", {"prompt": "x", "model": 7}, "model"),
    ("unknown top-level field", {"prompt": "x", "priority": "high"}, "priority"),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in BAD_JOBS], ids=[i for i, _, _ in BAD_JOBS])
def test_bad_job_is_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    err = api.a.post("/v1/jobs", 400, json=body)
    assert field in err["detail"], f"detail {err['detail']!r} does not name {field!r}"


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"", b'{"prompt": ', b'["prompt"]', b'"just a string"', b"null"],
    ids=["text", "empty", "truncated", "array", "string", "null"],
)
def test_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes) -> None:
    api.a.post("/v1/jobs", 400, content=raw, headers={"content-type": "application/json"})


def test_unknown_model_is_400_unknown_model(api: Api) -> None:
    err = api.a.post("/v1/jobs", 400, json={"prompt": "x", "model": "gpt-17"})
    assert err["error_code"] == "unknown_model"
    assert "model" in err["detail"]


def test_prompt_over_64_kib_is_413(api: Api) -> None:
    err = api.a.post("/v1/jobs", 413, json={"prompt": "p" * 65537})
    assert "prompt" in err["detail"]
    # Multi-byte: 21846 three-byte characters are 65538 bytes.
    api.a.post("/v1/jobs", 413, json={"prompt": "\u20ac" * 21846})


def test_body_over_request_cap_is_413(api: Api) -> None:
    body = json.dumps({"prompt": "p" * (MAX_BODY - 13)}).encode()
    assert len(body) == MAX_BODY + 1
    api.a.post("/v1/jobs", 413, content=body, headers={"content-type": "application/json"})


def test_chunked_body_over_request_cap_is_413(api: Api) -> None:
    body = json.dumps({"prompt": "p" * (MAX_BODY - 13)}).encode()

    def chunks() -> Any:
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    api.a.post("/v1/jobs", 413, content=chunks(), headers={"content-type": "application/json"})


# -- GET /v1/jobs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing(api: Api) -> dict[str, list[str]]:
    """Client B submits 25 jobs, then some change state; client A has its own."""
    b_ids = [api.submit(api.b, prompt=f"b job {i}")["job_id"] for i in range(25)]
    a_id = api.submit(api.a, prompt="a's private job")["job_id"]
    miner = api.register()
    api.claim(b_ids[3], miner)
    api.complete(b_ids[3], miner)
    api.claim(b_ids[4], miner)
    api.b.post(f"/v1/jobs/{b_ids[5]}/cancel")
    return {"b": b_ids, "a": [a_id]}


def test_list_defaults_to_20_newest_first(api: Api, listing: dict[str, list[str]]) -> None:
    jobs = api.b.get("/v1/jobs")
    assert len(jobs) == 20
    assert [j["job_id"] for j in jobs] == listing["b"][::-1][:20]
    created = [j["created_at"] for j in jobs]
    assert created == sorted(created, reverse=True)


def test_list_limit_and_offset_page_through(api: Api, listing: dict[str, list[str]]) -> None:
    newest_first = listing["b"][::-1]
    everything = [j["job_id"] for j in api.b.get("/v1/jobs", params={"limit": 100})]
    assert everything == newest_first
    page = api.b.get("/v1/jobs", params={"limit": 5, "offset": 5})
    assert [j["job_id"] for j in page] == newest_first[5:10]
    assert [j["job_id"] for j in api.b.get("/v1/jobs", params={"limit": 1})] == newest_first[:1]
    assert api.b.get("/v1/jobs", params={"offset": 25}) == []
    assert [j["job_id"] for j in api.b.get("/v1/jobs", params={"offset": 24})] == newest_first[24:]


def test_list_filters_by_status(api: Api, listing: dict[str, list[str]]) -> None:
    b = listing["b"]
    expected = {"completed": [b[3]], "running": [b[4]], "cancelled": [b[5]], "failed": []}
    for status, ids in expected.items():
        jobs = api.b.get("/v1/jobs", params={"status": status})
        assert [j["job_id"] for j in jobs] == ids, status
        assert all(j["status"] == status for j in jobs)
    pending = api.b.get("/v1/jobs", params={"status": "pending", "limit": 100})
    assert [j["job_id"] for j in pending] == [i for i in b[::-1] if i not in (b[3], b[4], b[5])]
    two = api.b.get("/v1/jobs", params={"status": "pending", "limit": 2, "offset": 1})
    assert [j["job_id"] for j in two] == [j["job_id"] for j in pending[1:3]]


def test_clients_see_only_their_own_jobs_admin_sees_all(api: Api, listing: dict[str, list[str]]) -> None:
    a_jobs = {j["job_id"] for j in api.a.get("/v1/jobs", params={"limit": 100})}
    b_jobs = {j["job_id"] for j in api.b.get("/v1/jobs", params={"limit": 100})}
    assert listing["a"][0] in a_jobs and listing["a"][0] not in b_jobs
    assert not a_jobs & b_jobs
    assert all(j["client"] == "client-b" for j in api.b.get("/v1/jobs", params={"limit": 100}))
    every = {j["job_id"] for j in api.admin.get("/v1/jobs", params={"limit": 100})}
    assert set(listing["b"]) <= every and listing["a"][0] in every
    admin_running = api.admin.get("/v1/jobs", params={"status": "running", "limit": 100})
    assert listing["b"][4] in {j["job_id"] for j in admin_running}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"limit": 0},
        {"limit": -1},
        {"offset": -1},
        {"status": "bogus"},
        {"limit": "ten"},
        {"offset": "x"},
        {"status": "PENDING"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_list_bad_query_is_400(api: Api, params: dict[str, Any]) -> None:
    err = api.b.get("/v1/jobs", 400, params=params)
    assert next(iter(params)) in err["detail"]


def test_list_limit_100_is_allowed(api: Api, listing: dict[str, list[str]]) -> None:
    assert len(api.admin.get("/v1/jobs", params={"limit": 100})) <= 100


# -- GET /v1/jobs/{job_id} --------------------------------------------------------------


def test_get_completed_job_carries_result_miner_and_times(api: Api) -> None:
    done, receipt = api.run_job(result="alpha beta")
    assert done["status"] == "completed"
    assert done["result"] == "alpha beta"
    assert done["miner_id"] == receipt["provider"]
    started, completed = parse_utc(done["started_at"]), parse_utc(done["completed_at"])
    assert parse_utc(done["created_at"]) <= started <= completed
    assert done.get("receipt_id") in (None, receipt["receipt_id"])


def test_get_other_clients_job_is_404_and_unknown_is_404(api: Api) -> None:
    job = api.submit(api.a)
    err = api.b.get(f"/v1/jobs/{job['job_id']}", 404)
    unknown = api.b.get("/v1/jobs/job_does_not_exist", 404)
    # Indistinguishable from a job that does not exist.
    assert err["error_code"] == unknown["error_code"]
    api.a.get(f"/v1/jobs/{job['job_id']}")
    api.admin.get(f"/v1/jobs/{job['job_id']}")


# -- POST /v1/jobs/{job_id}/cancel --------------------------------------------------------


def test_cancel_pending_job(api: Api) -> None:
    job = api.submit()
    cancelled = api.a.post(f"/v1/jobs/{job['job_id']}/cancel")
    assert cancelled["job_id"] == job["job_id"] and cancelled["status"] == "cancelled"
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "cancelled"
    err = api.a.post(f"/v1/jobs/{job['job_id']}/cancel", 409)
    assert err["error_code"]
    # A cancelled job is offered to no miner and cannot be claimed.
    miner = api.register()
    api.m1.post(f"/v1/jobs/{job['job_id']}/claim", 409, json={"miner_id": miner})


def test_cancel_running_job_then_miner_complete_is_409(api: Api) -> None:
    job = api.submit()
    miner = api.register()
    api.claim(job["job_id"], miner)
    cancelled = api.a.post(f"/v1/jobs/{job['job_id']}/cancel")
    assert cancelled["status"] == "cancelled"
    api.m1.post(f"/v1/jobs/{job['job_id']}/complete", 409, json={"miner_id": miner, "result": "too late"})
    api.m1.post(f"/v1/jobs/{job['job_id']}/fail", 409, json={"miner_id": miner, "error": "too late"})
    after = api.a.get(f"/v1/jobs/{job['job_id']}")
    assert after["status"] == "cancelled" and after.get("result") is None
    assert not api.a.get("/v1/receipts", params={"provider": miner})


def test_cancel_completed_job_is_409(api: Api) -> None:
    done, _ = api.run_job()
    api.a.post(f"/v1/jobs/{done['job_id']}/cancel", 409)
    assert api.a.get(f"/v1/jobs/{done['job_id']}")["status"] == "completed"


def test_cancel_failed_job_is_409(api: Api) -> None:
    job = api.submit()
    miner = api.register()
    for _ in range(3):
        api.claim(job["job_id"], miner)
        api.m1.post(f"/v1/jobs/{job['job_id']}/fail", json={"miner_id": miner, "error": "GPU on fire"})
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "failed"
    api.a.post(f"/v1/jobs/{job['job_id']}/cancel", 409)


def test_cancel_unknown_or_other_clients_job_is_404(api: Api) -> None:
    api.a.post("/v1/jobs/job_does_not_exist/cancel", 404)
    job = api.submit(api.a)
    api.b.post(f"/v1/jobs/{job['job_id']}/cancel", 404)
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "pending"
