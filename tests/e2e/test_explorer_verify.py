"""The in-browser receipt verifier, in Debian's Chromium on a real node: /verify checks a real
proof bundle step by step with the page's own JavaScript, names the step that a one-byte change
breaks, keeps working with the network cut or the node stopped, runs from the downloaded
self-contained file, and backs the receipt page's "Verify in this browser" button."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from chain.crypto import NodeKey, b64url
from chain.genesis import parse_genesis
from chain.receipts import completion_signing_bytes, result_hash, sign_receipt
from tests.e2e.test_explorer_browser import ARGS, CHROMIUM, TIMEOUT_MS
from tests.support import ALL_KEYS, CLIENT_A, MINER_1, NodeProcess

STEPS = ("signature", "inclusion", "header", "authority")
MINER_KEY = NodeKey(bytes(range(40, 72)))


def make_receipts(node: NodeProcess, count: int) -> list[dict[str, Any]]:
    """`count` co-signed receipts, completed at once so that blocks hold several of them (their
    bundles then have inclusion paths)."""
    with node.client(MINER_1["key"]) as miner, node.client(CLIENT_A["key"]) as client:
        body = {"miner_id": "verify-gpu", "capabilities": ["llama3.2"], "miner_pubkey": MINER_KEY.public_hex}
        assert miner.post("/v1/miners/register", json=body).status_code in (200, 201)
        jobs = []
        for i in range(count):
            resp = client.post("/v1/jobs", json={"prompt": f"verify me {i}", "model": "llama3.2"})
            assert resp.status_code == 201, resp.text
            jobs.append(resp.json()["job_id"])
        for job_id in jobs:
            assert miner.post(f"/v1/jobs/{job_id}/claim", json={"miner_id": "verify-gpu"}).status_code == 200

    def complete(job_id: str) -> dict[str, Any]:
        result = f"café au lait, s'il vous plaît {job_id}"
        signature = b64url(MINER_KEY.sign(completion_signing_bytes(job_id, result_hash(result))))
        with node.client(MINER_1["key"]) as http:
            resp = http.post(
                f"/v1/jobs/{job_id}/complete",
                json={"miner_id": "verify-gpu", "result": result, "miner_signature": signature},
            )
        assert resp.status_code == 200, resp.text
        receipt: dict[str, Any] = resp.json()
        return receipt

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(complete, jobs))


def bundle_text(node: NodeProcess, receipt_id: str) -> str:
    resp = httpx.get(f"{node.url}/explorer/receipts/{receipt_id}/proof", timeout=30)
    assert resp.status_code == 200
    return resp.text


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    proc = NodeProcess(tmp_path_factory.mktemp("verify") / "data", api_keys=ALL_KEYS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def receipts(node: NodeProcess) -> list[dict[str, Any]]:
    return make_receipts(node, 8)


@pytest.fixture(scope="module")
def bundle(node: NodeProcess, receipts: list[dict[str, Any]]) -> str:
    """A real bundle whose inclusion path is not empty (its block holds several transactions).
    Completions sent at once share a block whenever one arrives while another block is being
    written; a few more rounds make that certain enough."""
    batch = receipts
    for _ in range(5):
        for receipt in batch:
            text = bundle_text(node, receipt["receipt_id"])
            if json.loads(text)["inclusion_path"]:
                return text
        batch = make_receipts(node, 16)
    pytest.fail("no block held two completions: the bundles have no inclusion path to alter")


@pytest.fixture(scope="module")
def genesis_file(node: NodeProcess) -> Path:
    return node.data_dir / "genesis.json"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def cut_network(context: BrowserContext) -> list[str]:
    """From now on, every request over the network is refused and recorded, and the browser is
    offline (a file the visitor opens from disk still opens)."""
    attempted: list[str] = []

    def refuse(route: Route) -> None:
        attempted.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), refuse)
    context.set_offline(True)
    return attempted


def verify(page: Page, text: str) -> dict[str, tuple[str | None, str]]:
    """Paste text, press Verify, wait for every step; {step: (data-result, reason text)}."""
    page.fill("#verify-input", text)
    page.get_by_role("button", name="Verify", exact=True).click()
    return read_steps(page.locator("#verifier"))


def read_steps(root: Any) -> dict[str, tuple[str | None, str]]:
    out = {}
    for name in STEPS:
        step = root.locator(f'[data-check="{name}"]')
        expect(step).to_have_attribute("data-result", _ANY_RESULT)
        out[name] = (step.get_attribute("data-result"), step.locator(".check-reason").inner_text())
    return out


_ANY_RESULT = __import__("re").compile(r"^(pass|fail|skipped)$")


def results(steps: dict[str, tuple[str | None, str]]) -> dict[str, str | None]:
    return {name: result for name, (result, _) in steps.items()}


PAGE_ERRORS: dict[int, list[str]] = {}
"""Script errors of each page open_verify_page opened (by id of the page)."""


def open_verify_page(context: BrowserContext, node: NodeProcess) -> Page:
    page = context.new_page()
    errors = PAGE_ERRORS.setdefault(id(page), [])
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(node.url + "/verify")
    expect(page.locator("#verifier")).to_have_attribute("data-genesis", "ready")
    return page


# -- one byte altered, one step red --------------------------------------------------------


def _flip(text: str, at: int, alphabet: str) -> str:
    """text with the character at `at` replaced by another one of alphabet."""
    new = alphabet[0] if text[at] != alphabet[0] else alphabet[1]
    return text[:at] + new + text[at + 1 :]


def alter(bundle: str, part: str) -> str:
    """The bundle's raw text with one character changed in `part`."""
    doc = json.loads(bundle)
    if part == "signature":  # the receipt's Ed25519 signature, inside the transaction string
        target = json.loads(doc["transaction"])["payload"]["receipt"]["signature"]["sig"]
        changed = _flip(target, 5, "AB")
    elif part == "inclusion":
        target = doc["inclusion_path"][0]
        changed = _flip(target, 0, "01")
    elif part == "header":
        target = doc["header_signature"]
        changed = _flip(target, 10, "01")
    else:  # authority: the chain the bundle claims to belong to
        target = f'"chain_id":"{doc["chain_id"]}"'
        changed = target[:-2] + ("x" if target[-2] != "x" else "y") + '"'
    assert bundle.count(target) == 1 and len(changed) == len(target)
    return bundle.replace(target, changed)


def test_a_genuine_bundle_turns_every_step_green_with_the_network_cut(
    context: BrowserContext, node: NodeProcess, bundle: str, genesis_file: Path
) -> None:
    page = open_verify_page(context, node)
    genesis = parse_genesis(json.loads(genesis_file.read_text()))
    expect(page.locator("#genesis-hash")).to_have_text(genesis.hash)
    expect(page.locator("#genesis-source")).to_contain_text("/explorer/genesis")
    attempted = cut_network(context)
    steps = verify(page, bundle)
    assert results(steps) == dict.fromkeys(STEPS, "pass")
    assert str(json.loads(bundle)["header"]["height"]) in steps["header"][1]
    expect(page.locator(".verify-summary")).to_have_attribute("data-result", "pass")
    assert attempted == [] and PAGE_ERRORS[id(page)] == []


@pytest.mark.parametrize("part", STEPS)
def test_one_altered_byte_turns_its_step_red_with_a_reason(
    context: BrowserContext, node: NodeProcess, bundle: str, part: str
) -> None:
    page = open_verify_page(context, node)
    steps = verify(page, alter(bundle, part))
    assert steps[part][0] == "fail" and steps[part][1].strip(), steps
    # The receipt sits inside the transaction, whose hash is the leaf: altering the receipt
    # breaks the inclusion path too. Everything else still passes.
    dependent = {"signature": {"inclusion"}}.get(part, set())
    assert {name for name, (result, _) in steps.items() if result == "fail"} == {part, *dependent}
    expect(page.locator(".verify-summary")).to_have_attribute("data-result", "fail")


def test_a_bare_receipt_from_a_foreign_key_fails_the_authority_step_only(
    context: BrowserContext, node: NodeProcess, receipts: list[dict[str, Any]]
) -> None:
    foreign = NodeKey(bytes(range(90, 122)))
    body = {k: v for k, v in receipts[0].items() if k != "signature"}
    page = open_verify_page(context, node)
    steps = verify(page, json.dumps(sign_receipt(body, foreign), indent=2))
    assert results(steps) == {"signature": "pass", "inclusion": "skipped", "header": "skipped", "authority": "fail"}
    assert foreign.public_hex in steps["authority"][1]
    # The genuine receipt, bare: its signer is the authority.
    steps = verify(page, json.dumps(receipts[0]))
    assert results(steps) == {"signature": "pass", "inclusion": "skipped", "header": "skipped", "authority": "pass"}


def test_text_that_is_no_bundle_fails_every_step_with_the_reason(context: BrowserContext, node: NodeProcess) -> None:
    page = open_verify_page(context, node)
    steps = verify(page, '{"format": "aitbc-receipt-proof/1", "chain_id": ')
    assert results(steps) == dict.fromkeys(STEPS, "fail")
    assert "not valid JSON" in steps["signature"][1]


def test_verification_runs_after_the_node_has_stopped(
    context: BrowserContext, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = NodeProcess(tmp_path_factory.mktemp("stopped") / "data", api_keys=ALL_KEYS).start()
    try:
        receipt = make_receipts(own, 2)[0]
        text = bundle_text(own, receipt["receipt_id"])
        page = open_verify_page(context, own)
    finally:
        own.stop()
    assert results(verify(page, text)) == dict.fromkeys(STEPS, "pass")
    assert results(verify(page, alter(text, "header"))) == {**dict.fromkeys(STEPS, "pass"), "header": "fail"}


# -- the self-contained file -----------------------------------------------------------------


def test_the_downloaded_file_verifies_offline_with_a_genesis_of_ones_own(
    context: BrowserContext, node: NodeProcess, bundle: str, genesis_file: Path, tmp_path: Path
) -> None:
    page = open_verify_page(context, node)
    with page.expect_download() as info:
        page.click("#offline-download")
    saved = tmp_path / "aitbc-verify.html"
    info.value.save_as(saved)
    page.close()

    attempted = cut_network(context)
    offline = context.new_page()
    errors: list[str] = []
    offline.on("pageerror", lambda exc: errors.append(str(exc)))
    offline.goto(saved.as_uri())
    expect(offline.locator("#verifier")).to_have_attribute("data-genesis", "missing")
    offline.set_input_files("#genesis-file", str(genesis_file))
    expect(offline.locator("#verifier")).to_have_attribute("data-genesis", "ready")
    expect(offline.locator("#genesis-source")).to_contain_text("genesis.json")
    expect(offline.locator("#genesis-hash")).to_have_text(parse_genesis(json.loads(genesis_file.read_text())).hash)
    assert results(verify(offline, bundle)) == dict.fromkeys(STEPS, "pass")
    assert results(verify(offline, alter(bundle, "inclusion")))["inclusion"] == "fail"
    assert attempted == [] and errors == []


# -- the receipt page ----------------------------------------------------------------------


def test_the_receipt_page_verifies_its_receipt_in_the_browser(
    context: BrowserContext, node: NodeProcess, receipts: list[dict[str, Any]]
) -> None:
    page = context.new_page()
    page.goto(f"{node.url}/receipts/{receipts[1]['receipt_id']}")
    expect(page.locator("#signature-badge")).to_have_text("✓ signature valid")
    page.get_by_role("button", name="Verify in this browser").click()
    box = page.locator("#receipt-verifier")
    assert results(read_steps(box)) == dict.fromkeys(STEPS, "pass")
    expect(box.locator("#genesis-hash")).to_have_text(
        parse_genesis(json.loads((node.data_dir / "genesis.json").read_text())).hash
    )


def test_without_javascript_the_receipt_page_shows_the_badge_and_the_cli_procedure(
    browser: Browser, node: NodeProcess, receipts: list[dict[str, Any]]
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{node.url}/receipts/{receipts[1]['receipt_id']}")
        expect(page.locator("#signature-badge")).to_have_text("✓ signature valid")
        expect(page.get_by_role("button", name="Verify in this browser")).to_be_hidden()
        page.get_by_role("link", name="command line").click()
        expect(page.locator("#offline-cli")).to_contain_text("aitbc-node verify-receipt receipt.proof.json --genesis")
    finally:
        context.close()


# -- standings and the activity chart ------------------------------------------------------------


def test_miners_page_ranks_the_miner_and_its_page_offers_csv(
    context: BrowserContext, node: NodeProcess, receipts: list[dict[str, Any]]
) -> None:
    standing = httpx.get(f"{node.url}/explorer/miners", timeout=30).json()["windows"]["24h"]["miners"]
    served = {s["miner_id"]: s["receipts"] for s in standing}["verify-gpu"]
    assert served >= len(receipts)
    page = context.new_page()
    page.goto(node.url + "/")
    page.get_by_role("link", name="Miners", exact=True).click()
    row = page.locator('[data-window="24h"] tr[data-miner="verify-gpu"]')
    expect(row).to_contain_text(str(served))
    row.get_by_role("link", name="verify-gpu").click()
    page.wait_for_url("**/miners/verify-gpu")
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV").click()
    lines = Path(info.value.path()).read_text().splitlines()
    assert lines[0].startswith("receipt_id,job_id,client") and len(lines) == min(served, 100) + 1


def test_the_home_chart_switches_between_1h_24h_and_7d(context: BrowserContext, node: NodeProcess) -> None:
    page = context.new_page()
    page.goto(node.url + "/")
    chart = page.locator(".grid2 .card").first
    expect(chart).to_contain_text("per minute, last hour")
    chart.get_by_role("link", name="24 h").click()
    expect(page.locator(".grid2 .card").first).to_contain_text("per hour, last 24 hours")
    page.locator(".grid2 .card").first.get_by_role("link", name="7 d").click()
    expect(page.locator(".grid2 .card").first).to_contain_text("per 6 hours, last 7 days")
    expect(page.locator("#live")).to_have_attribute("data-src", "/live/home?activity=7d")
