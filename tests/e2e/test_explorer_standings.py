"""The explorer's public JSON beside the pages: the genesis without a key, miners' standings, and a
miner's receipts as JSON and CSV with paging (paths that /explorer/miners/{miner_id:path} cannot
take), all in the OpenAPI document."""

from __future__ import annotations

import csv
import io
import json

import httpx

from chain.encoding import canonical
from tests.e2e.conftest import Api


def get(api: Api, path: str, **params: str | int) -> httpx.Response:
    return httpx.get(api.node.url + path, params=params, timeout=30)  # no key: all of this is public


def test_genesis_is_public_and_is_the_chains_effective_genesis(api: Api) -> None:
    resp = get(api, "/explorer/genesis")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    effective = json.loads((api.data_dir / "genesis.json").read_text())
    assert resp.content == canonical(effective)
    assert all(set(account) == {"name", "role", "key_hash"} for account in resp.json()["accounts"])


def test_standings_rank_miners_by_receipts_or_units(api: Api) -> None:
    busy, quiet = api.register(), api.register()
    for _ in range(3):
        api.run_job(miner_id=busy, result="one two")
    api.run_job(miner_id=quiet, result="one two three four five six seven")
    by_receipts = get(api, "/explorer/miners", limit=100).json()
    window = by_receipts["windows"]["24h"]
    ranked = [s["miner_id"] for s in window["miners"]]
    assert ranked.index(busy) < ranked.index(quiet)
    mine = {s["miner_id"]: (s["receipts"], s["units"]) for s in window["miners"]}
    assert mine[busy] == (3, 6) and mine[quiet] == (1, 7)
    assert by_receipts["counted_from_height"] == 0
    assert by_receipts["windows"]["30d"]["receipts"] >= by_receipts["windows"]["24h"]["receipts"] >= 4
    by_units = [
        s["miner_id"] for s in get(api, "/explorer/miners", by="units", limit=100).json()["windows"]["7d"]["miners"]
    ]
    assert by_units.index(quiet) < by_units.index(busy)
    bad = get(api, "/explorer/miners", by="price")
    assert bad.status_code == 400 and bad.json()["error_code"] == "validation_error"


def test_a_miners_receipts_page_as_json_and_csv(api: Api) -> None:
    miner = api.register()
    ids = [api.run_job(miner_id=miner)[1]["receipt_id"] for _ in range(3)]
    first = get(api, f"/explorer/miner-receipts/{miner}", limit=2)
    assert first.status_code == 200
    assert [r["receipt_id"] for r in first.json()] == ids[::-1][:2]
    link = first.headers["link"]
    assert link.endswith('rel="next"')
    rest = httpx.get(api.node.url + link[1 : link.index(">")], timeout=30)
    assert [r["receipt_id"] for r in rest.json()] == ids[:1] and "link" not in rest.headers
    as_csv = get(api, f"/explorer/miner-receipts/{miner}", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["receipt_id"] for r in rows] == ids[::-1] and rows[0]["units"] == "3"
    assert get(api, "/explorer/miner-receipts/no-such-miner").status_code == 404
    assert get(api, f"/explorer/miner-receipts/{miner}", format="xml").status_code == 400
    # The miner's own page is still the miner's, not taken by the new paths.
    assert get(api, f"/explorer/miners/{miner}").json()["miner_id"] == miner


def test_the_new_paths_are_in_the_openapi_document(api: Api) -> None:
    paths = get(api, "/openapi.json").json()["paths"]
    for path in ("/explorer/genesis", "/explorer/miners", "/explorer/miner-receipts/{miner_id}"):
        assert "get" in paths[path] and "security" not in paths[path]["get"]
