"""Keys and roles: 401 for a missing, unknown or revoked key on every /v1 path; 403 for a wrong role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Api

# Every /v1 operation the node serves, with a plausible body.
V1_OPERATIONS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/jobs", {"prompt": "hi"}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/available?miner_id=gpu-x", None),
    ("GET", "/v1/jobs/job_x", None),
    ("POST", "/v1/jobs/job_x/cancel", None),
    ("POST", "/v1/jobs/job_x/claim", {"miner_id": "gpu-x"}),
    ("POST", "/v1/jobs/job_x/complete", {"miner_id": "gpu-x", "result": "r"}),
    ("POST", "/v1/jobs/job_x/fail", {"miner_id": "gpu-x", "error": "e"}),
    ("POST", "/v1/miners/register", {"miner_id": "gpu-x", "capabilities": ["llama3.2"]}),
    ("GET", "/v1/receipts", None),
    ("GET", "/v1/receipts/rcpt_x", None),
    ("POST", "/v1/receipts/verify", {"receipt_id": "rcpt_x"}),
    ("POST", "/v1/admin/accounts", {"name": "someone", "role": "client"}),
    ("DELETE", "/v1/admin/accounts/someone", None),
]
OP_IDS = [f"{m} {p}" for m, p, _ in V1_OPERATIONS]


def _call(api: Api, key: str | None, method: str, path: str, body: Any, expect: int) -> Any:
    caller = api.caller(key)
    return caller.request(method, path, expect, **({"json": body} if body is not None else {}))


@pytest.mark.parametrize(("method", "path", "body"), V1_OPERATIONS, ids=OP_IDS)
def test_missing_key_is_401(api: Api, method: str, path: str, body: Any) -> None:
    err = _call(api, None, method, path, body, 401)
    assert err["error_code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "body"), V1_OPERATIONS, ids=OP_IDS)
def test_unknown_key_is_401(api: Api, method: str, path: str, body: Any) -> None:
    err = _call(api, "not-a-real-key-000000000000", method, path, body, 401)
    assert err["error_code"] == "unauthorized"


def test_empty_key_header_is_401(api: Api) -> None:
    resp = api.anon.http.get("/v1/jobs", headers={"X-Api-Key": ""})
    assert api.check(resp, 401)["error_code"] == "unauthorized"


@pytest.mark.parametrize("role", ["client", "miner", "admin"])
def test_revoked_key_is_401_everywhere(api: Api, role: str) -> None:
    name = api.unique(f"revoked-{role}")
    account = api.admin.post("/v1/admin/accounts", 201, json={"name": name, "role": role})
    key = account["key"]
    # The key works before revocation.
    if role == "miner":
        api.register(api.caller(key))
    else:
        api.caller(key).get("/v1/jobs")
    revoked = api.admin.delete(f"/v1/admin/accounts/{name}")
    assert revoked == {"name": name, "role": role, "revoked": True}
    for method, path, body in V1_OPERATIONS:
        err = _call(api, key, method, path, body, 401)
        assert err["error_code"] == "unauthorized", (method, path)


def test_public_paths_need_no_key(api: Api) -> None:
    for path in ("/health", "/explorer/blocks", "/explorer/transactions", "/explorer/receipts", "/explorer/stats"):
        api.anon.get(path)
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert api.anon.http.get(path).status_code == 200


# (who, method, path, body): a valid key whose role may not do this.
def _wrong_role_cases(api: Api) -> list[tuple[str, str, str, Any]]:
    job = api.submit()
    jid = job["job_id"]
    miner = api.register()
    return [
        ("m1", "POST", "/v1/jobs", {"prompt": "miners do not submit"}),
        ("m1", "GET", "/v1/jobs", None),
        ("m1", "GET", f"/v1/jobs/{jid}", None),
        ("m1", "POST", f"/v1/jobs/{jid}/cancel", None),
        ("a", "POST", "/v1/miners/register", {"miner_id": "client-rig", "capabilities": ["llama3.2"]}),
        ("a", "GET", f"/v1/jobs/available?miner_id={miner}", None),
        ("a", "POST", f"/v1/jobs/{jid}/claim", {"miner_id": miner}),
        ("a", "POST", f"/v1/jobs/{jid}/complete", {"miner_id": miner, "result": "x"}),
        ("a", "POST", f"/v1/jobs/{jid}/fail", {"miner_id": miner, "error": "x"}),
        ("a", "POST", "/v1/admin/accounts", {"name": "by-a-client", "role": "admin"}),
        ("a", "DELETE", "/v1/admin/accounts/client-b", None),
        ("m1", "POST", "/v1/admin/accounts", {"name": "by-a-miner", "role": "admin"}),
        ("m1", "DELETE", "/v1/admin/accounts/client-b", None),
    ]


def test_wrong_role_is_403(api: Api) -> None:
    for who, method, path, body in _wrong_role_cases(api):
        caller = getattr(api, who)
        err = caller.request(method, path, 403, **({"json": body} if body is not None else {}))
        assert err["error_code"], (who, method, path)
    # Nothing happened: the job is still pending, client-b still works, no account was made.
    api.b.get("/v1/jobs")
    api.admin.post("/v1/admin/accounts", 201, json={"name": "by-a-client", "role": "client"})
    api.admin.post("/v1/admin/accounts", 201, json={"name": "by-a-miner", "role": "client"})
    pending = api.a.get("/v1/jobs", params={"status": "pending"})
    assert pending and all(j["status"] == "pending" for j in pending)


def test_admin_may_do_everything(api: Api) -> None:
    job = api.submit(api.a)
    assert api.admin.get(f"/v1/jobs/{job['job_id']}")["job_id"] == job["job_id"]
    miner = api.register(api.admin)
    api.admin.get("/v1/jobs/available", params={"miner_id": miner})
    api.admin.post(f"/v1/jobs/{job['job_id']}/cancel")
