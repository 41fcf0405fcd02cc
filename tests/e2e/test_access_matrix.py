"""Every documented operation, called by every kind of caller, gets the documented status.

Callers: no key, a bad key, client A, client B, miner M1, miner M2, admin, peer. There is no
read or write across tenants: B cannot see, cancel or learn of A's jobs, and M2 cannot
complete or fail M1's claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import ADMIN, CLIENT_A, CLIENT_B, MINER_1, MINER_2, NodeProcess

PEER = {"key": "peer-key-matrix-0000000000000", "role": "peer", "name": "replica"}
CALLERS = {
    "none": None,
    "bad": "not-a-key-0000000000000000000",
    "client_a": CLIENT_A["key"],
    "client_b": CLIENT_B["key"],
    "miner_1": MINER_1["key"],
    "miner_2": MINER_2["key"],
    "admin": ADMIN["key"],
    "peer": PEER["key"],
}
ANY_KEY = {"client_a": 200, "client_b": 200, "miner_1": 200, "miner_2": 200, "admin": 200, "peer": 200}
UNAUTHENTICATED = {"none": 401, "bad": 401}
PUBLIC = dict.fromkeys(CALLERS, 200)


class World:
    """A node with two clients' jobs, two miners, a running claim and a receipt; makes fresh ones on demand."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.http = httpx.Client(base_url=node.url, timeout=30)
        self.serial = 0
        r = self.call("miner_1", "POST", "/v1/miners/register", json={"miner_id": "m1", "capabilities": ["llama3.2"]})
        assert r.status_code == 201
        r = self.call("miner_2", "POST", "/v1/miners/register", json={"miner_id": "m2", "capabilities": ["llama3.2"]})
        assert r.status_code == 201
        self.job_a = self.job("client_a")
        self.done = done = self.running("m1")
        r = self.call("miner_1", "POST", f"/v1/jobs/{done}/complete", json={"miner_id": "m1", "result": "done"})
        self.receipt = r.json()["receipt_id"]

    def call(self, caller: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        key = CALLERS[caller]
        headers = {"X-Api-Key": key} if key else {}
        return self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]  # httpx's own keyword arguments, passed through

    def job(self, client: str = "client_a") -> str:
        r = self.call(client, "POST", "/v1/jobs", json={"prompt": "matrix"})
        assert r.status_code == 201, r.text
        return str(r.json()["job_id"])

    def running(self, miner_id: str = "m1") -> str:
        job = self.job()
        owner = "miner_1" if miner_id == "m1" else "miner_2"
        assert self.call(owner, "POST", f"/v1/jobs/{job}/claim", json={"miner_id": miner_id}).status_code == 200
        return job

    def claim_next(self, caller: str) -> httpx.Response:
        """claim-next for m1, with a pending job to claim."""
        self.job()
        return self.call(caller, "POST", "/v1/jobs/claim-next", json={"miner_id": "m1"})

    def name(self) -> str:
        self.serial += 1
        return f"acct-{self.serial}"


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    call: Callable[[World, str], httpx.Response]
    expected: dict[str, int]


def _case(method: str, template: str, expected: dict[str, int], call: Callable[[World, str], httpx.Response]) -> Case:
    return Case(method, template, call, {**UNAUTHENTICATED, **expected} if template.startswith("/v1/") else expected)


def _get(path: Callable[[World], str]) -> Callable[[World, str], httpx.Response]:
    return lambda w, c: w.call(c, "GET", path(w))


FORBIDDEN_TO_NON_CLIENTS = {"miner_1": 403, "miner_2": 403, "peer": 403}
FORBIDDEN_TO_NON_MINERS = {"client_a": 403, "client_b": 403, "peer": 403}
ADMIN_ONLY = {"client_a": 403, "client_b": 403, "miner_1": 403, "miner_2": 403, "peer": 403, "admin": 200}

CASES = [
    _case("GET", "/health", PUBLIC, _get(lambda w: "/health")),
    _case("GET", "/status", PUBLIC, _get(lambda w: "/status")),
    _case("GET", "/metrics", PUBLIC, _get(lambda w: "/metrics")),
    _case("GET", "/explorer", PUBLIC, _get(lambda w: "/explorer")),
    _case("GET", "/explorer/blocks", PUBLIC, _get(lambda w: "/explorer/blocks")),
    _case("GET", "/explorer/blocks/{ref}", PUBLIC, _get(lambda w: "/explorer/blocks/1")),
    _case("GET", "/explorer/transactions", PUBLIC, _get(lambda w: "/explorer/transactions")),
    _case(
        "GET",
        "/explorer/transactions/{tx_hash}",
        PUBLIC,
        _get(lambda w: "/explorer/transactions/" + w.http.get("/explorer/transactions").json()[0]["hash"]),
    ),
    _case("GET", "/explorer/receipts", PUBLIC, _get(lambda w: "/explorer/receipts")),
    _case("GET", "/explorer/receipts/{receipt_id}", PUBLIC, _get(lambda w: f"/explorer/receipts/{w.receipt}")),
    _case(
        "GET", "/explorer/receipts/{receipt_id}/proof", PUBLIC, _get(lambda w: f"/explorer/receipts/{w.receipt}/proof")
    ),
    _case("GET", "/explorer/jobs/{job_id}", PUBLIC, _get(lambda w: f"/explorer/jobs/{w.job_a}")),
    _case("GET", "/explorer/miners/{miner_id}", PUBLIC, _get(lambda w: "/explorer/miners/m1")),
    _case("GET", "/explorer/miners", PUBLIC, _get(lambda w: "/explorer/miners")),
    _case("GET", "/explorer/miner-receipts/{miner_id}", PUBLIC, _get(lambda w: "/explorer/miner-receipts/m1")),
    _case("GET", "/explorer/genesis", PUBLIC, _get(lambda w: "/explorer/genesis")),
    _case("GET", "/explorer/stats", PUBLIC, _get(lambda w: "/explorer/stats")),
    _case("GET", "/explorer/search", PUBLIC, _get(lambda w: "/explorer/search?q=m1")),
    # Jobs: clients and admins; another client's job is a 404, as if it did not exist.
    _case(
        "POST",
        "/v1/jobs",
        {"client_a": 201, "client_b": 201, "admin": 201, **FORBIDDEN_TO_NON_CLIENTS},
        lambda w, c: w.call(c, "POST", "/v1/jobs", json={"prompt": "p"}),
    ),
    _case(
        "GET",
        "/v1/jobs",
        {"client_a": 200, "client_b": 200, "admin": 200, **FORBIDDEN_TO_NON_CLIENTS},
        _get(lambda w: "/v1/jobs"),
    ),
    _case(
        "GET",
        "/v1/jobs/{job_id}",
        {"client_a": 200, "client_b": 404, "admin": 200, **FORBIDDEN_TO_NON_CLIENTS},
        _get(lambda w: f"/v1/jobs/{w.job_a}"),
    ),
    _case(
        "GET",
        "/v1/jobs/{job_id}/receipt",
        {"client_a": 200, "client_b": 404, "admin": 200, **FORBIDDEN_TO_NON_CLIENTS},
        _get(lambda w: f"/v1/jobs/{w.done}/receipt"),
    ),
    _case(
        "GET",
        "/v1/jobs/{job_id}/receipts",
        {"client_a": 200, "client_b": 404, "admin": 200, **FORBIDDEN_TO_NON_CLIENTS},
        _get(lambda w: f"/v1/jobs/{w.done}/receipts?limit=100"),
    ),
    _case(
        "POST",
        "/v1/jobs/{job_id}/cancel",
        {"client_a": 200, "client_b": 404, "admin": 200, **FORBIDDEN_TO_NON_CLIENTS},
        lambda w, c: w.call(c, "POST", f"/v1/jobs/{w.job()}/cancel"),
    ),
    # Miners: only for the miner_ids their key registered.
    _case(
        "POST",
        "/v1/miners/register",
        {"miner_1": 201, "miner_2": 201, "admin": 201, **FORBIDDEN_TO_NON_MINERS},
        lambda w, c: w.call(
            c, "POST", "/v1/miners/register", json={"miner_id": f"new-{w.name()}", "capabilities": ["llama3.2"]}
        ),
    ),
    _case(
        "GET",
        "/v1/jobs/available",
        {"miner_1": 200, "miner_2": 403, "admin": 200, **FORBIDDEN_TO_NON_MINERS},
        _get(lambda w: "/v1/jobs/available?miner_id=m1"),
    ),
    _case(
        "POST",
        "/v1/jobs/{job_id}/claim",
        {"miner_1": 200, "miner_2": 403, "admin": 200, **FORBIDDEN_TO_NON_MINERS},
        lambda w, c: w.call(c, "POST", f"/v1/jobs/{w.job()}/claim", json={"miner_id": "m1"}),
    ),
    _case(
        "POST",
        "/v1/jobs/claim-next",
        {"miner_1": 200, "miner_2": 403, "admin": 200, **FORBIDDEN_TO_NON_MINERS},
        lambda w, c: w.claim_next(c),
    ),
    _case(
        "POST",
        "/v1/jobs/{job_id}/complete",
        {"miner_1": 200, "miner_2": 403, "admin": 200, **FORBIDDEN_TO_NON_MINERS},
        lambda w, c: w.call(c, "POST", f"/v1/jobs/{w.running('m1')}/complete", json={"miner_id": "m1", "result": "r"}),
    ),
    _case(
        "POST",
        "/v1/jobs/{job_id}/fail",
        {"miner_1": 200, "miner_2": 403, "admin": 200, **FORBIDDEN_TO_NON_MINERS},
        lambda w, c: w.call(c, "POST", f"/v1/jobs/{w.running('m1')}/fail", json={"miner_id": "m1", "error": "oom"}),
    ),
    # Receipts are public facts: any key reads and verifies them.
    _case("GET", "/v1/receipts", ANY_KEY, _get(lambda w: "/v1/receipts")),
    _case("GET", "/v1/receipts/{receipt_id}", ANY_KEY, _get(lambda w: f"/v1/receipts/{w.receipt}")),
    _case("GET", "/v1/receipts/{receipt_id}/proof", ANY_KEY, _get(lambda w: f"/v1/receipts/{w.receipt}/proof")),
    _case(
        "POST",
        "/v1/receipts/verify",
        ANY_KEY,
        lambda w, c: w.call(
            c, "POST", "/v1/receipts/verify", json=w.http.get(f"/explorer/receipts/{w.receipt}").json()["receipt"]
        ),
    ),
    # Chain: head, genesis, checkpoints for any key; full blocks (prompts and results) for peers and admins.
    _case("GET", "/v1/chain/head", ANY_KEY, _get(lambda w: "/v1/chain/head")),
    _case("GET", "/v1/chain/genesis", ANY_KEY, _get(lambda w: "/v1/chain/genesis")),
    _case("GET", "/v1/chain/checkpoint", ANY_KEY, _get(lambda w: "/v1/chain/checkpoint")),
    _case("GET", "/v1/chain/consistency", ANY_KEY, _get(lambda w: "/v1/chain/consistency?from=1&to=2")),
    _case("GET", "/v1/chain/blocks", {**ADMIN_ONLY, "peer": 200}, _get(lambda w: "/v1/chain/blocks?from=0&limit=2")),
    # Administration.
    _case(
        "POST",
        "/v1/admin/accounts",
        {**ADMIN_ONLY, "admin": 201},
        lambda w, c: w.call(c, "POST", "/v1/admin/accounts", json={"name": w.name(), "role": "client"}),
    ),
    _case(
        "DELETE",
        "/v1/admin/accounts/{name}",
        ADMIN_ONLY,
        lambda w, c: w.call(c, "DELETE", f"/v1/admin/accounts/{_new_account(w)}"),
    ),
    _case("GET", "/v1/admin/backup", ADMIN_ONLY, _get(lambda w: "/v1/admin/backup")),
]


def _new_account(w: World) -> str:
    name = w.name()
    assert w.call("admin", "POST", "/v1/admin/accounts", json={"name": name, "role": "client"}).status_code == 201
    return name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = [CLIENT_A, CLIENT_B, MINER_1, MINER_2, ADMIN, PEER]
    node = NodeProcess(
        tmp_path_factory.mktemp("matrix") / "data",
        api_keys=keys,
        extra_args=("--rate-limit", "0", "--unauth-rate-limit", "0"),
    )
    with node:
        w = World(node)
        try:
            yield w
        finally:
            w.http.close()


def test_the_matrix_covers_every_documented_operation(world: World) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in world.http.get("/openapi.json").json()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == {(c.method, c.template) for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.template}" for c in CASES])
def test_every_caller_gets_the_documented_status(world: World, case: Case) -> None:
    got = {caller: case.call(world, caller).status_code for caller in CALLERS if caller in case.expected}
    assert set(case.expected) == set(CALLERS)
    assert got == case.expected


def test_client_b_cannot_see_cancel_or_learn_of_client_a_jobs(world: World) -> None:
    job = world.job("client_a")
    listed = [j["job_id"] for j in world.call("client_b", "GET", "/v1/jobs", params={"limit": 100}).json()]
    assert job not in listed
    unknown = world.call("client_b", "GET", "/v1/jobs/job_does_not_exist")
    hidden = world.call("client_b", "GET", f"/v1/jobs/{job}")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"].replace(job, "X") == unknown.json()["detail"].replace("job_does_not_exist", "X")
    assert world.call("client_b", "POST", f"/v1/jobs/{job}/cancel").status_code == 404
    assert world.call("client_a", "GET", f"/v1/jobs/{job}").json()["status"] == "pending"


def test_miner_2_cannot_complete_or_fail_miner_1_claim(world: World) -> None:
    job = world.running("m1")
    assert (
        world.call("miner_2", "POST", f"/v1/jobs/{job}/complete", json={"miner_id": "m1", "result": "x"}).status_code
        == 403
    )
    assert (
        world.call("miner_2", "POST", f"/v1/jobs/{job}/complete", json={"miner_id": "m2", "result": "x"}).status_code
        == 409
    )
    assert (
        world.call("miner_2", "POST", f"/v1/jobs/{job}/fail", json={"miner_id": "m2", "error": "x"}).status_code == 409
    )
    state = world.call("admin", "GET", f"/v1/jobs/{job}").json()
    assert state["status"] == "running" and state["miner_id"] == "m1"
