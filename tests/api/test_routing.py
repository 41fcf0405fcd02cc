"""FastRouter (node/framework_internals.py) picks the route Starlette would, answers the same
way, and runs every middleware of the app."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import BaseRoute, Match
from starlette.testclient import TestClient

from api.routes import NodeApp
from node.composition import create_app
from node.config import Config
from node.framework_internals import FastRouter, RouteTable
from node.runtime import Node
from tests.support import ADMIN, CLIENT_A, MINER_1

HOT = [
    ("GET", "/health"),
    ("GET", "/explorer/stats"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/available"),
    ("GET", "/v1/jobs/job_1"),
    ("POST", "/v1/jobs/job_1/claim"),
    ("POST", "/v1/jobs/job_1/complete"),
    ("POST", "/v1/jobs/job_1/fail"),
    ("POST", "/v1/jobs/job_1/cancel"),
    ("POST", "/v1/miners/register"),
    ("GET", "/v1/receipts"),
    ("GET", "/v1/receipts/rcpt_1"),
]
VALUES = ["job_1", "available", "a.b", "a b", "%2F", "x" * 300, "ü", "-", "verify", "proof"]
EXTRA_PATHS = [
    "/",
    "",
    "/v1",
    "/v1/",
    "/v1/jobs/",
    "/v1/jobs//claim",
    "/v1/jobs/x/claim/",
    "/v1/jobs\n",
    "/health\n",
    "/static/api/x.css",
    "/static/swagger/",
    "/explorer/receipts/a/b",
    "/explorer/receipts/a/proof",
    "/explorer/jobs/a/b/c",
    "/receipts/a/b",
    "//v1/jobs",
    "/v1/receipts/verify",
    "/v1/receipts/r/proof",
]
METHODS = ["GET", "HEAD", "POST", "DELETE", "PUT"]


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def _starlette_choice(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[BaseRoute, dict[str, Any]] | None:
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child["path_params"]
    return None


def _paths(routes: list[BaseRoute]) -> list[str]:
    out = list(EXTRA_PATHS)
    for route in routes:
        template = getattr(route, "path", "")
        out.append(template)
        for value in VALUES:
            filled = template
            while "{" in filled:
                start = filled.index("{")
                filled = filled[:start] + value + filled[filled.index("}", start) + 1 :]
            out.append(filled)
            out.append(filled + "/x")
    return out


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aitbc-dispatch-"))
    (path / "keys.json").write_text(json.dumps([CLIENT_A, MINER_1, ADMIN]))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _app_routes(workdir: Path, follow: str | None = None) -> list[BaseRoute]:
    config = Config(data_dir=workdir / ("f" if follow else "a"), follow=follow, peer_key="k" if follow else None)
    return list(create_app(Node(config)).routes)


@pytest.mark.parametrize("follow", [None, "http://127.0.0.1:9"])
def test_the_table_picks_the_route_starlette_picks(workdir: Path, follow: str | None) -> None:
    routes = _app_routes(workdir, follow)
    table = RouteTable(routes)
    for path in _paths(routes):
        for method in METHODS:
            scope = _scope(method, path)
            found = table.find(scope)
            if found is None:
                continue  # left to the Router: always right
            expected = _starlette_choice(routes, scope)
            assert expected is not None, (method, path)
            assert found[0] is expected[0] and found[2] == expected[1], (method, path)
            assert found[1] is expected[0].endpoint


def test_hot_paths_take_the_direct_way(workdir: Path) -> None:
    table = RouteTable(_app_routes(workdir))
    for method, path in HOT:
        assert table.find(_scope(method, path)) is not None, (method, path)
    # what only the Router can answer
    for method, path in [
        ("PUT", "/v1/jobs"),
        ("GET", "/nowhere"),
        ("GET", "/static/api/x.css"),
        ("GET", "/explorer/receipts/a/b"),
    ]:
        assert table.find(_scope(method, path)) is None, (method, path)
    assert table.find({**_scope("GET", "/health"), "root_path": "/api"}) is None


class Both:
    """One app, asked twice: once through the table, once with an empty table (Router.app only)."""

    def __init__(self, client: TestClient, router: FastRouter) -> None:
        self.client = client
        self.router = router
        self.table = router.table

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, Any]:
        fast = self.client.request(method, path, **kwargs)
        self.router.table = RouteTable([])
        try:
            slow = self.client.request(method, path, **kwargs)
        finally:
            self.router.table = self.table
        return fast, slow


@pytest.fixture(scope="module")
def both(workdir: Path) -> Iterator[tuple[Both, Node]]:
    node = Node(Config(data_dir=workdir / "data", api_keys=workdir / "keys.json", rate_limit=0))
    node.open()
    app = create_app(node)
    assert isinstance(app.router, FastRouter)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Both(client, app.router), node


def _comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
    return response.status_code, headers, response.json() if response.content else None


def test_answers_and_headers_are_the_same_on_both_ways(both: tuple[Both, Node]) -> None:
    ways, _ = both
    fast = ways.client
    client_key, miner_key = {"X-Api-Key": CLIENT_A["key"]}, {"X-Api-Key": MINER_1["key"]}
    job = fast.post("/v1/jobs", json={"prompt": "p"}, headers=client_key)
    assert job.status_code == 201 and "x-aitbc-height" in job.headers and "x-request-id" in job.headers
    job_id = job.json()["job_id"]
    assert (
        fast.post(
            "/v1/miners/register", json={"miner_id": "m1", "capabilities": ["llama3.2"]}, headers=miner_key
        ).status_code
        == 201
    )
    requests: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", "/health", {}, None),
        ("GET", "/explorer/stats", {}, None),
        ("GET", f"/v1/jobs/{job_id}", client_key, None),
        ("GET", "/v1/jobs/nope", client_key, None),  # 404 from an ApiError
        ("GET", "/v1/jobs", {}, None),  # 401
        ("GET", "/v1/jobs", miner_key, None),  # 403
        ("GET", "/v1/jobs?limit=x", client_key, None),  # 400
        ("GET", "/v1/jobs/available?miner_id=nope", miner_key, None),  # 404
        ("POST", "/v1/jobs", client_key, b"{not json"),  # 400
        ("POST", "/v1/jobs", client_key, b"x" * (3 * 1024 * 1024)),  # 413
        ("POST", "/v1/jobs/nope/claim", miner_key, {"miner_id": "m1"}),  # 404 from the chain (LedgerError)
        ("POST", "/v1/jobs/nope/claim", miner_key, {"miner_id": "m2"}),  # 404 from the API
        ("PUT", "/v1/jobs", client_key, None),  # 405: the Router's in both
        ("GET", "/nowhere", {}, None),  # 404: the Router's in both
    ]
    for method, path, headers, body in requests:
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, bytes):
            kwargs["content"] = body
        elif body is not None:
            kwargs["json"] = body
        a, b = ways.request(method, path, **kwargs)
        if path == "/explorer/stats" or path == "/health":
            assert a.headers.keys() == b.headers.keys() and a.status_code == b.status_code == 200
            continue
        assert _comparable(a) == _comparable(b), (method, path)
        assert a.status_code < 500


def test_unexpected_errors_are_500_on_both_ways(both: tuple[Both, Node], monkeypatch: pytest.MonkeyPatch) -> None:
    ways, node = both

    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(node, "health", broken)
    a, b = ways.request("GET", "/health")
    assert a.status_code == b.status_code == 500
    assert a.json() == b.json() == {"detail": "internal error", "error_code": "internal_error"}
    # The 500 carries what every answer carries, as any other answer does, either way.
    for answer in (a, b):
        assert "x-request-id" in answer.headers and answer.headers["x-content-type-options"] == "nosniff"


def test_metrics_name_the_route_template(both: tuple[Both, Node]) -> None:
    fast = both[0].client
    fast.post("/v1/jobs/someone/claim", json={"miner_id": "m1"}, headers={"X-Api-Key": MINER_1["key"]})
    text = fast.get("/metrics").text
    assert 'route="/v1/jobs/{job_id}/claim"' in text
    assert "/v1/jobs/someone/claim" not in text


def test_a_middleware_added_to_the_app_runs_on_a_fast_path_route(workdir: Path) -> None:
    seen: list[str] = []

    class Witness:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.app(scope, receive, send)

    node = Node(Config(data_dir=workdir / "witness", api_keys=workdir / "keys.json", rate_limit=0))
    node.open()
    app = create_app(node)
    app.add_middleware(Witness)
    assert isinstance(app, NodeApp) and isinstance(app.router, FastRouter)
    assert app.router.table.find(_scope("GET", "/health")) is not None  # a route the table serves
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        job = client.post("/v1/jobs", json={"prompt": "p"}, headers={"X-Api-Key": CLIENT_A["key"]})
        assert job.status_code == 201 and "x-request-id" in job.headers  # and ours ran too
    assert seen == ["/health", "/v1/jobs"]
