"""The explorer's JSON and pages against a real node: spec-valid shapes, paging, search,
bad arguments, escaping, and no private data anywhere public."""

from __future__ import annotations

import secrets
from html.parser import HTMLParser
from urllib.parse import quote

import httpx

from node.datadir import api_key_hash
from tests.e2e.conftest import Api
from tests.support import ALL_KEYS, CLIENT_A


def page(api: Api, path: str, expect: int = 200, **kwargs: object) -> httpx.Response:
    resp = api.anon.http.get(path, **kwargs)  # type: ignore[arg-type]  # httpx's own keyword arguments
    assert resp.status_code == expect, f"{path}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("text/html")
    return resp


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[tuple[str | None, bool]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        href = values.get("href")
        if tag == "a" and href:
            self.links.append(href)
        if tag == "script":
            self.scripts.append((values.get("src"), False))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append((None, True))


def links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


# -- spec shapes ------------------------------------------------------------------------------


def test_every_detail_path_answers_spec_valid_json(api: Api) -> None:
    miner_id = api.register(gpu_info={"name": "RTX 4090", "memory": "24GB"})
    done, receipt = api.run_job(miner_id=miner_id, result="four words of output")
    stats = api.anon.get("/explorer/stats")
    tip = stats["block_height"]
    block = api.anon.get(f"/explorer/blocks/{tip}")
    assert block["height"] == tip and block["next_height"] is None and block["previous_height"] == tip - 1
    assert api.anon.get(f"/explorer/blocks/{block['hash']}") == api.anon.get(
        f"/explorer/blocks/{block['hash'].upper()}"
    )
    assert api.anon.get(f"/explorer/blocks/{block['hash']}")["height"] == tip
    assert block["seal_valid"] is True and len(block["transaction_list"]) == block["transactions"]
    tx = api.anon.get(f"/explorer/transactions/{block['transaction_list'][0]['hash']}")
    assert tx["block_height"] == tip and tx["inclusion_proof"]["valid"] is True
    detail = api.anon.get(f"/explorer/receipts/{receipt['receipt_id']}")
    assert detail["receipt"] == receipt
    assert detail["verification"]["valid"] is True and detail["verification"]["on_chain"] is True
    completing = api.anon.get(f"/explorer/transactions/{detail['transaction']}")
    assert completing["type"] == "job.complete" and completing["fields"]["receipt"] == receipt
    job = api.anon.get(f"/explorer/jobs/{done['job_id']}")
    assert job["status"] == "completed" and job["miner_id"] == miner_id and job["receipt"] == receipt
    miner = api.anon.get(f"/explorer/miners/{miner_id}")
    assert miner["receipts"] == 1 and miner["units"] == 4 and miner["recent_receipts"] == [receipt]
    assert miner["active"] is True and miner["gpu_info"] == {"name": "RTX 4090", "memory": "24GB"}
    overview = api.anon.get("/explorer")
    assert overview["blocks"][0]["height"] >= tip and overview["receipts"][0] == receipt


def test_genesis_block_has_no_previous_block(api: Api) -> None:
    genesis = api.anon.get("/explorer/blocks/0")
    assert genesis["previous_height"] is None and genesis["proposer"] == "" and genesis["next_height"] == 1


def test_stats_count_jobs_by_status_units_price_and_the_last_hour(api: Api) -> None:
    before = api.anon.get("/explorer/stats")
    api.run_job(result="one two three four five")
    api.submit()
    after = api.anon.get("/explorer/stats")
    assert after["jobs_by_status"]["completed"] == before["jobs_by_status"]["completed"] + 1
    assert after["jobs_by_status"]["pending"] == before["jobs_by_status"]["pending"] + 1
    assert sum(after["jobs_by_status"].values()) == after["total_jobs"]
    assert after["total_units"] == before["total_units"] + 5
    # The devnet price of llama3.2 is 0.000002 per token: 5 tokens cost 0.00001.
    assert round(after["total_price"] - before["total_price"], 8) == 0.00001
    assert after["transaction_count"] >= before["transaction_count"] + 4
    assert len(after["last_hour"]) == 60
    assert sum(m["jobs"] for m in after["last_hour"]) >= sum(m["jobs"] for m in before["last_hour"]) + 2
    assert sum(m["receipts"] for m in after["last_hour"]) == sum(m["receipts"] for m in before["last_hour"]) + 1
    assert after["blocks_per_minute"] > 0 and after["jobs_per_minute"] > 0
    assert after["recent_block_sizes"][-1]["height"] == after["block_height"]


# -- paging ------------------------------------------------------------------------------------


def test_blocks_page_backwards_with_before(api: Api) -> None:
    for i in range(6):
        api.submit(prompt=f"paging {i}")
    first = api.anon.http.get("/explorer/blocks", params={"limit": 3})
    assert first.status_code == 200
    heights = [b["height"] for b in first.json()]
    assert 'rel="next"' in first.headers["link"] and f"before={heights[-1]}" in first.headers["link"]
    second = api.anon.get("/explorer/blocks", params={"limit": 3, "before": heights[-1]})
    assert [b["height"] for b in second] == [heights[-1] - 1, heights[-1] - 2, heights[-1] - 3]
    assert [b["height"] for b in api.anon.get("/explorer/blocks", params={"before": 2})] == [1, 0]
    assert api.anon.get("/explorer/blocks", params={"before": 0}) == []


def test_transaction_cursor_walks_the_whole_chain_once(api: Api) -> None:
    for i in range(3):
        api.submit(prompt=f"cursor {i}")
    seen: list[str] = []
    cursor = None
    total = api.anon.get("/explorer/stats")["transaction_count"]
    for _ in range(total + 1):
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page_ = api.anon.get("/explorer/transactions", params=params)
        seen.extend(t["hash"] for t in page_)
        if len(page_) < 7:
            break
        cursor = page_[-1]["hash"]
    assert len(seen) == len(set(seen))
    assert len(seen) >= total  # more may have been sealed meanwhile, never fewer
    positions = [(t["block_height"]) for t in api.anon.get("/explorer/transactions", params={"limit": 100})]
    assert positions == sorted(positions, reverse=True)


def test_receipts_page_backwards_through_every_receipt_once_in_json_and_on_the_website(api: Api) -> None:
    made = [api.run_job(result=f"paged receipt {i}")[1]["receipt_id"] for i in range(5)]
    total = api.anon.get("/explorer/stats")["total_receipts"]
    seen: list[str] = []
    url: str | None = "/explorer/receipts?limit=2"
    while url is not None:
        resp = api.anon.http.get(url)
        assert resp.status_code == 200, resp.text
        seen.extend(r["receipt_id"] for r in resp.json())
        link = resp.headers.get("link")
        url = None if link is None else link[link.index("<") + 1 : link.index(">")]
        assert len(seen) <= total, "the pages repeat themselves"
    assert len(seen) == len(set(seen)) == total
    assert seen[:5] == made[::-1]  # newest first
    assert api.anon.get("/explorer/receipts", params={"before": 1}) == []
    body = api.anon.get("/explorer/receipts?before=x", 400)
    assert body["error_code"] == "validation_error"

    shown: list[str] = []
    path: str | None = "/receipts?limit=2"
    while path is not None:
        html = page(api, path).text
        shown.extend(
            href.removeprefix("/receipts/")
            for href in links(html).links
            if href.startswith("/receipts/") and "?" not in href
        )
        older = [href for href in links(html).links if href.startswith("/receipts?before=")]
        path = older[0] if older else None
        assert len(shown) <= 2 * total
    assert list(dict.fromkeys(shown)) == seen


# -- bad arguments -----------------------------------------------------------------------------


def test_bad_path_arguments_get_400_or_404_with_the_error_body(api: Api) -> None:
    unknown = "ab" * 32
    cases = [
        ("/explorer/blocks/not-a-block", 400, "validation_error"),
        ("/explorer/blocks/99999999", 404, "block_not_found"),
        (f"/explorer/blocks/{unknown}", 404, "block_not_found"),
        ("/explorer/transactions/xyz", 400, "validation_error"),
        (f"/explorer/transactions/{unknown}", 404, "transaction_not_found"),
        ("/explorer/receipts/rcpt_nope", 404, "receipt_not_found"),
        ("/explorer/jobs/job_nope", 404, "job_not_found"),
        ("/explorer/miners/no-such-miner", 404, "miner_not_found"),
        ("/explorer/search?q=", 400, "validation_error"),
        ("/explorer/search?q=" + "x" * 201, 400, "validation_error"),
        ("/explorer/search?q=nothing-like-this", 404, "not_found"),
        ("/explorer/blocks?before=-1", 400, "validation_error"),
        ("/explorer/transactions?cursor=zz", 400, "validation_error"),
        (f"/explorer/transactions?cursor={unknown}", 404, "transaction_not_found"),
    ]
    for path, status, code in cases:
        body = api.anon.get(path, status)
        assert body["error_code"] == code, (path, body)


def test_bad_page_arguments_get_an_html_error_page_with_the_status(api: Api) -> None:
    for path, status in [
        ("/blocks/not-a-block", 400),
        ("/blocks/99999999", 404),
        ("/jobs/job_nope", 404),
        ("/receipts/rcpt_nope", 404),
        ("/miners/nobody", 404),
        ("/transactions/" + "cd" * 32, 404),
        ("/search?q=nothing-like-this", 404),
    ]:
        resp = page(api, path, status)
        assert ("Not found" if status == 404 else "does not look right") in resp.text


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_asking_for_a_path_nothing_serves_gets_the_not_found_page(api: Api) -> None:
    resp = page(api, "/no-such-page", 404, headers=BROWSER)
    assert "Not found" in resp.text and "There is no page at /no-such-page." in resp.text
    assert 'action="/search"' in resp.text and 'href="/"' in resp.text
    hostile = page(api, "/" + quote("<script>alert(1)</script>"), 404, headers=BROWSER)
    assert "<script>alert(1)</script>" not in hostile.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile.text


def test_unknown_paths_of_the_api_and_for_non_browsers_keep_the_error_body(api: Api) -> None:
    for path, headers in [
        ("/no-such-page", {}),
        ("/no-such-page", {"Accept": "application/json"}),
        ("/v1/no-such-thing", BROWSER),
        ("/explorer/no-such-thing", BROWSER),
        ("/static/nothing.css", BROWSER),
    ]:
        resp = api.anon.http.get(path, headers=headers)
        assert resp.status_code == 404, (path, headers)
        assert resp.headers["content-type"] == "application/json", (path, headers)
        assert resp.json() == {"detail": f"no such path: {path}", "error_code": "not_found"}, (path, headers)


# -- search ------------------------------------------------------------------------------------


def test_search_goes_straight_to_the_one_thing_it_finds(api: Api) -> None:
    miner_id = api.register()
    done, receipt = api.run_job(miner_id=miner_id)
    tip = api.anon.get("/explorer/stats")["block_height"]
    block = api.anon.get(f"/explorer/blocks/{tip}")
    tx_hash = block["transaction_list"][0]["hash"]
    targets = {
        str(tip): f"/blocks/{tip}",
        block["hash"]: f"/blocks/{block['hash']}",
        tx_hash: f"/transactions/{tx_hash}",
        done["job_id"]: f"/jobs/{done['job_id']}",
        receipt["receipt_id"]: f"/receipts/{receipt['receipt_id']}",
        miner_id: f"/miners/{miner_id}",
        f"  {miner_id} ": f"/miners/{miner_id}",
    }
    for query, target in targets.items():
        resp = api.anon.http.get("/search", params={"q": query})
        assert resp.status_code == 303, (query, resp.status_code)
        assert resp.headers["location"] == target
        assert api.anon.get("/explorer/search", params={"q": query})["results"][0]["path"] == target
        page(api, target)


def test_search_encodes_the_id_it_puts_into_location(api: Api) -> None:
    odd = "gpu 1/é?x=1#top"
    api.register(miner_id=odd)
    resp = api.anon.http.get("/search", params={"q": odd})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/miners/gpu%201%2F%C3%A9%3Fx%3D1%23top"
    assert resp.headers["location"].isascii()
    page(api, resp.headers["location"])


def test_search_lists_every_match_when_a_query_names_several_things(api: Api) -> None:
    api.register(miner_id="3")
    found = api.anon.get("/explorer/search", params={"q": "3"})
    assert {r["kind"] for r in found["results"]} == {"block", "miner"}
    resp = page(api, "/search", params={"q": "3"})
    hrefs = links(resp.text).links
    assert "/blocks/3" in hrefs and "/miners/3" in hrefs


def test_search_for_nothing_is_a_404_page(api: Api) -> None:
    resp = page(api, "/search", 404, params={"q": "no-such-thing-anywhere"})
    assert "no-such-thing-anywhere" in resp.text


# -- pages -------------------------------------------------------------------------------------


def test_every_page_links_its_json_twin_and_they_agree(api: Api) -> None:
    miner_id = api.register()
    done, receipt = api.run_job(miner_id=miner_id)
    tip = api.anon.get("/explorer/stats")["block_height"]
    tx_hash = api.anon.get(f"/explorer/blocks/{tip}")["transaction_list"][0]["hash"]
    pages = {
        "/": "/explorer",
        "/blocks": "/explorer/blocks",
        f"/blocks/{tip}": f"/explorer/blocks/{tip}",
        "/transactions": "/explorer/transactions",
        f"/transactions/{tx_hash}": f"/explorer/transactions/{tx_hash}",
        "/receipts": "/explorer/receipts",
        f"/receipts/{receipt['receipt_id']}": f"/explorer/receipts/{receipt['receipt_id']}",
        f"/jobs/{done['job_id']}": f"/explorer/jobs/{done['job_id']}",
        f"/miners/{miner_id}": f"/explorer/miners/{miner_id}",
    }
    for path, twin in pages.items():
        resp = page(api, path)
        assert twin in links(resp.text).links, f"{path} does not link {twin}"
        api.anon.get(twin)
    block_page = page(api, f"/blocks/{tip}").text
    block = api.anon.get(f"/explorer/blocks/{tip}")
    for field in ("hash", "prev_hash", "tx_root", "state_root", "proposer", "signature"):
        assert block[field] in block_page, field
    assert f"/blocks/{tip - 1}" in links(block_page).links
    receipt_page = page(api, f"/receipts/{receipt['receipt_id']}").text
    assert "signature valid" in receipt_page and receipt["signature"]["sig"] in receipt_page


def test_pages_have_no_inline_script_and_load_only_local_assets(api: Api) -> None:
    for path in ("/", "/blocks", "/transactions", "/receipts", "/blocks/0"):
        parsed = links(page(api, path).text)
        assert parsed.scripts and all(src and src.startswith("/static/explorer/") for src, _ in parsed.scripts)
        assert not any(inline for _, inline in parsed.scripts)
        assert not any(href.startswith(("http://", "https://", "//")) for href in parsed.links)
    for asset in ("/static/explorer/explorer.js", "/static/explorer/explorer.css", "/static/explorer/favicon.svg"):
        assert api.anon.http.get(asset).status_code == 200


def test_a_miner_id_with_markup_is_shown_as_text(api: Api) -> None:
    miner_id = "<script>alert('x')</script>&"  # '/' in an id is kept as one path segment
    api.register(miner_id=miner_id)
    resp = page(api, "/miners/" + quote(miner_id, safe=""))
    assert "<script>alert" not in resp.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;" in resp.text
    assert "<script>alert" not in page(api, "/").text
    # (the id holds a '/', which the spec checker's path templates do not match, so read it raw)
    assert api.anon.http.get("/explorer/miners/" + quote(miner_id, safe="")).json()["miner_id"] == miner_id


# -- nothing private ---------------------------------------------------------------------------


def test_a_secret_prompt_result_error_or_key_appears_in_no_explorer_json_or_page(api: Api) -> None:
    secret = "SECRET-" + secrets.token_hex(8)
    miner_id = api.register()
    failed = api.submit(prompt=f"prompt {secret}-p")
    api.claim(failed["job_id"], miner_id)
    api.m1.post(f"/v1/jobs/{failed['job_id']}/fail", 200, json={"miner_id": miner_id, "error": f"oops {secret}-e"})
    done, receipt = api.run_job(miner_id=miner_id, prompt=f"prompt {secret}-q", result=f"result {secret}-r")
    forbidden = [secret] + [k["key"] for k in ALL_KEYS] + [api_key_hash(k["key"]) for k in ALL_KEYS]

    tip = api.anon.get("/explorer/stats")["block_height"]
    json_paths = [
        "/explorer",
        "/explorer/stats",
        "/explorer/receipts?limit=100",
        "/explorer/blocks?limit=100",
        f"/explorer/jobs/{failed['job_id']}",
        f"/explorer/jobs/{done['job_id']}",
        f"/explorer/receipts/{receipt['receipt_id']}",
        f"/explorer/miners/{miner_id}",
    ]
    html_paths = [
        "/",
        "/blocks",
        "/receipts",
        f"/jobs/{failed['job_id']}",
        f"/jobs/{done['job_id']}",
        f"/receipts/{receipt['receipt_id']}",
        f"/miners/{miner_id}",
        "/live/home",
    ]
    cursor = None
    while True:  # every transaction of the chain, from its list and its own page
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        txs = api.anon.get("/explorer/transactions", params=params)
        json_paths.append("/explorer/transactions?" + str(httpx.QueryParams(params)))
        for t in txs:
            json_paths.append(f"/explorer/transactions/{t['hash']}")
            html_paths.append(f"/transactions/{t['hash']}")
        if len(txs) < 100:
            break
        cursor = txs[-1]["hash"]
    for height in range(tip + 1):
        json_paths.append(f"/explorer/blocks/{height}")
        html_paths.append(f"/blocks/{height}")
    html_paths.append("/transactions")

    for path in json_paths:
        resp = api.anon.http.get(path)
        assert resp.status_code == 200, path
        leaks = [f for f in forbidden if f in resp.text]
        assert not leaks, f"{path} shows {leaks}"
    for path in html_paths:
        text = page(api, path).text
        leaks = [f for f in forbidden if f in text]
        assert not leaks, f"{path} shows {leaks}"
    # What is withheld is said to be withheld.
    submit_tx = next(
        t for t in api.anon.get("/explorer/transactions", params={"limit": 100}) if t["type"] == "job.submit"
    )
    assert {"field": "prompt", "what": "the job's prompt"} in api.anon.get(
        f"/explorer/transactions/{submit_tx['hash']}"
    )["withheld"]


def test_explorer_json_ignores_an_api_key(api: Api) -> None:
    job = api.submit()
    assert api.a.get(f"/explorer/jobs/{job['job_id']}") == api.anon.get(f"/explorer/jobs/{job['job_id']}")
    assert api.anon.get(f"/explorer/jobs/{job['job_id']}")["client"] == CLIENT_A["name"]
