"""Account management: POST /v1/admin/accounts and DELETE /v1/admin/accounts/{name}."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Api


@pytest.mark.parametrize("role", ["client", "miner", "admin"])
def test_create_account_returns_key_that_works_at_once(api: Api, role: str) -> None:
    name = api.unique(f"new-{role}")
    account = api.admin.post("/v1/admin/accounts", 201, json={"name": name, "role": role})
    assert account["name"] == name and account["role"] == role
    assert isinstance(account["key"], str) and len(account["key"]) >= 16
    caller = api.caller(account["key"])
    if role == "client":
        job = api.submit(caller)
        assert job["client"] == name
        assert [j["job_id"] for j in caller.get("/v1/jobs")] == [job["job_id"]]
    elif role == "miner":
        miner = caller.post(
            "/v1/miners/register", 201, json={"miner_id": api.unique("acct-rig"), "capabilities": ["llama3.2"]}
        )
        assert miner.get("owner") in (None, name)
    else:
        caller.post("/v1/admin/accounts", 201, json={"name": api.unique("made-by-new-admin"), "role": "client"})


def test_key_is_shown_once_and_keys_differ(api: Api) -> None:
    one = api.admin.post("/v1/admin/accounts", 201, json={"name": api.unique("once"), "role": "client"})
    two = api.admin.post("/v1/admin/accounts", 201, json={"name": api.unique("once"), "role": "client"})
    assert one["key"] != two["key"]
    # The key appears nowhere public afterwards.
    for path in ("/explorer/transactions", "/explorer/blocks"):
        assert one["key"] not in api.anon.http.get(path, params={"limit": 100}).text


def test_duplicate_name_is_409(api: Api) -> None:
    name = api.unique("dup")
    api.admin.post("/v1/admin/accounts", 201, json={"name": name, "role": "client"})
    api.admin.post("/v1/admin/accounts", 409, json={"name": name, "role": "miner"})
    # Names given by --api-keys are taken too.
    api.admin.post("/v1/admin/accounts", 409, json={"name": "client-a", "role": "client"})


BAD_ACCOUNTS: list[tuple[str, Any, str]] = [
    ("bad role", {"name": "x-bad-role", "role": "overlord"}, "role"),
    ("role not string", {"name": "x-bad-role2", "role": 3}, "role"),
    ("missing role", {"name": "x-missing-role"}, "role"),
    ("missing name", {"role": "client"}, "name"),
    ("name not string", {"name": 12, "role": "client"}, "name"),
    ("empty name", {"name": "", "role": "client"}, "name"),
    ("unknown field", {"name": "x-extra", "role": "client", "admin": True}, "admin"),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in BAD_ACCOUNTS], ids=[i for i, _, _ in BAD_ACCOUNTS])
def test_bad_account_is_400(api: Api, body: dict[str, Any], field: str) -> None:
    err = api.admin.post("/v1/admin/accounts", 400, json=body)
    assert field in err["detail"], err


def test_non_json_account_body_is_400(api: Api) -> None:
    api.admin.post("/v1/admin/accounts", 400, content=b"name=x", headers={"content-type": "application/json"})


def test_revoke(api: Api) -> None:
    name = api.unique("to-revoke")
    key = api.admin.post("/v1/admin/accounts", 201, json={"name": name, "role": "client"})["key"]
    user = api.caller(key)
    job = api.submit(user)
    assert api.admin.delete(f"/v1/admin/accounts/{name}") == {"name": name, "role": "client", "revoked": True}
    assert user.get("/v1/jobs", 401)["error_code"] == "unauthorized"
    # The revoked account's jobs are still there for an admin.
    assert api.admin.get(f"/v1/jobs/{job['job_id']}")["client"] == name
    # The name stays taken.
    api.admin.post("/v1/admin/accounts", 409, json={"name": name, "role": "client"})


def test_revoke_unknown_is_404(api: Api) -> None:
    err = api.admin.delete("/v1/admin/accounts/no-such-account", 404)
    assert err["error_code"]


def test_admin_cannot_revoke_itself(api: Api) -> None:
    api.admin.delete("/v1/admin/accounts/ops", 409)
    api.admin.get("/v1/jobs")
