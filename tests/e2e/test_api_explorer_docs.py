"""Public explorer JSON, /openapi.json against the contract, and offline /docs and /redoc."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import yaml

from tests.e2e.conftest import Api

CONTRACT = Path("/work/shared/spec/openapi.yaml")
REPO_CONTRACT = Path(__file__).resolve().parents[2] / "api" / "spec" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
EXTENSION_PATHS = {
    "/v1/jobs/{job_id}/fail": "post",
    "/v1/receipts/verify": "post",
    "/v1/admin/accounts": "post",
    "/v1/admin/accounts/{name}": "delete",
}


def contract() -> dict[str, Any]:
    path = CONTRACT if CONTRACT.exists() else REPO_CONTRACT
    answer: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return answer


# -- explorer ------------------------------------------------------------------------------


def test_blocks_default_10_newest_first(api: Api) -> None:
    for i in range(12):
        api.submit(prompt=f"filler {i}")
    stats = api.anon.get("/explorer/stats")
    blocks = api.anon.get("/explorer/blocks")
    assert len(blocks) == 10
    heights = [b["height"] for b in blocks]
    assert heights == list(range(stats["block_height"], stats["block_height"] - 10, -1))
    stamps = [b["timestamp"] for b in blocks]
    assert stamps == sorted(stamps, reverse=True)
    for b in blocks:
        assert set(b) >= {"height", "hash", "timestamp", "transactions"}
        assert re.fullmatch(r"[0-9a-f]{64}", b["hash"])
        assert b["transactions"] >= 0
    assert len({b["hash"] for b in blocks}) == 10
    assert [b["height"] for b in api.anon.get("/explorer/blocks", params={"limit": 3})] == heights[:3]
    everything = api.anon.get("/explorer/blocks", params={"limit": 100})
    assert len(everything) == min(100, stats["block_height"] + 1)


def test_blocks_bad_limit_is_400(api: Api) -> None:
    for limit in (0, 101, "x"):
        api.anon.get("/explorer/blocks", 400, params={"limit": limit})


def test_transactions_and_receipts(api: Api) -> None:
    done, receipt = api.run_job(result="explorer sees this")
    txs = api.anon.get("/explorer/transactions")
    assert isinstance(txs, list) and txs
    assert all(isinstance(t, dict) for t in txs)
    text = api.anon.http.get("/explorer/transactions", params={"limit": 100}).text
    for key in ("client-a-key", "miner-1-key", "admin-key"):
        assert key not in text
    receipts = api.anon.get("/explorer/receipts")
    assert isinstance(receipts, list) and receipts[0] == receipt
    for r in receipts:
        api.spec.validate_named(r, "Receipt")


def test_stats_move_as_jobs_run(api: Api) -> None:
    s0 = api.anon.get("/explorer/stats")
    assert set(s0) >= {"total_jobs", "active_miners", "total_receipts", "block_height"}
    job = api.submit()
    s1 = api.anon.get("/explorer/stats")
    assert s1["total_jobs"] == s0["total_jobs"] + 1
    assert s1["block_height"] > s0["block_height"]
    miner_id = api.register()
    s2 = api.anon.get("/explorer/stats")
    assert s2["active_miners"] == s1["active_miners"] + 1
    api.claim(job["job_id"], miner_id)
    api.complete(job["job_id"], miner_id)
    s3 = api.anon.get("/explorer/stats")
    assert s3["total_receipts"] == s2["total_receipts"] + 1
    assert s3["total_jobs"] == s2["total_jobs"]
    assert s3["active_miners"] == s2["active_miners"]
    assert s3["block_height"] > s2["block_height"]
    assert s3["total_receipts"] == len(api.a.get("/v1/receipts", params={"limit": 100}))


def test_explorer_json_needs_no_key_and_ignores_one(api: Api) -> None:
    for path in ("/explorer/blocks", "/explorer/transactions", "/explorer/receipts", "/explorer/stats"):
        assert api.anon.get(path) is not None
        api.a.get(path)


# -- /openapi.json -------------------------------------------------------------------------


def served(api: Api) -> dict[str, Any]:
    resp = api.anon.http.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = resp.json()
    return answer


def test_openapi_has_every_contract_path_operation_and_response(api: Api) -> None:
    doc, spec = served(api), contract()
    assert doc["openapi"].startswith("3.")
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            served_op = doc["paths"].get(path, {}).get(method)
            if served_op is None:
                missing.append(f"{method.upper()} {path}")
                continue
            for status in op.get("responses", {}):
                if status not in served_op.get("responses", {}):
                    missing.append(f"{method.upper()} {path} response {status}")
            if "requestBody" in op and "requestBody" not in served_op:
                missing.append(f"{method.upper()} {path} requestBody")
    assert not missing, missing


def test_openapi_keeps_every_contract_parameter(api: Api) -> None:
    doc, spec = served(api), contract()
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            served_params = {
                (p.get("name"), p.get("in")) for p in doc["paths"].get(path, {}).get(method, {}).get("parameters", [])
            }
            for p in op.get("parameters", []):
                if (p["name"], p["in"]) not in served_params:
                    missing.append(f"{method.upper()} {path}: {p['in']} parameter '{p['name']}'")
    assert not missing, missing


def test_openapi_keeps_every_contract_schema_and_property(api: Api) -> None:
    doc, spec = served(api), contract()
    schemas = doc["components"]["schemas"]
    for name, schema in spec["components"]["schemas"].items():
        assert name in schemas, name
        for prop, prop_schema in schema.get("properties", {}).items():
            assert prop in schemas[name].get("properties", {}), f"{name}.{prop}"
            for k in ("type", "$ref", "format", "enum"):
                if k in prop_schema:
                    assert schemas[name]["properties"][prop].get(k) == prop_schema[k], f"{name}.{prop}.{k}"
        for req in schema.get("required", []):
            assert req in schemas[name].get("required", []), f"{name} required {req}"
    assert doc["components"]["securitySchemes"]["ApiKey"] == spec["components"]["securitySchemes"]["ApiKey"]


def test_openapi_has_the_extensions(api: Api) -> None:
    doc = served(api)
    for path, method in EXTENSION_PATHS.items():
        assert method in doc["paths"].get(path, {}), f"{method.upper()} {path}"
        assert doc["paths"][path][method]["responses"], path


def test_openapi_refs_all_resolve(api: Api) -> None:
    doc = served(api)
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"unresolvable $ref {ref}"
            target = target[part]


# -- /docs and /redoc ----------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data-url") and value:
                self.urls.append(value)


def _check_page(api: Api, page: str) -> list[str]:
    resp = api.anon.http.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(resp.text)
    assert parser.urls, f"{page} references no assets"
    base = api.node.url + page
    own = urlsplit(api.node.url)
    for url in parser.urls:
        absolute = urljoin(base, url)
        parts = urlsplit(absolute)
        assert (parts.scheme, parts.netloc) == (own.scheme, own.netloc), f"{page} points off-host: {url}"
        with httpx.Client(timeout=30) as http:
            asset = http.get(absolute)
        assert asset.status_code == 200, f"{page}: {url} -> {asset.status_code}"
        assert asset.content
    return parser.urls


def test_docs_assets_all_served_locally(api: Api) -> None:
    urls = _check_page(api, "/docs")
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        if url.endswith(".js"):
            text = api.anon.http.get(url).text
            if len(text) < 10_000:  # our own init script: it loads the spec from this node
                assert not re.search(r"https?://", text), url


def test_redoc_assets_all_served_locally(api: Api) -> None:
    urls = _check_page(api, "/redoc")
    assert any(u.endswith(".js") for u in urls)
