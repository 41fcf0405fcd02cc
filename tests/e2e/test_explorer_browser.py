"""A real browser (Debian's Chromium driven by Playwright) on a real node: the live home page,
search, and the API docs rendered with no network beyond the node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.support import ALL_KEYS, CLIENT_A, NodeProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    proc = NodeProcess(tmp_path_factory.mktemp("browser") / "data", api_keys=ALL_KEYS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, node: NodeProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    offsite: list[str] = []
    # Anything not served by the node is refused and recorded: the site must not need it.

    def refuse(route: Route) -> None:
        offsite.append(route.request.url)
        route.abort()

    context.route(
        lambda url: not url.startswith(node.url) and not url.startswith(f"ws://127.0.0.1:{node.port}"), refuse
    )
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    try:
        yield p
    finally:
        context.close()
    assert not offsite, f"requests off the node: {offsite}"


def test_home_page_shows_a_new_block_live_then_search_finds_the_job(page: Page, node: NodeProcess) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(node.url + "/")
    expect(page.locator("#live-status")).to_have_text("live")
    before = int(page.locator("#live tr[data-height]").first.get_attribute("data-height") or "-1")

    with node.client(CLIENT_A["key"]) as http:
        resp = http.post("/v1/jobs", json={"prompt": "a job the browser should see"})
    assert resp.status_code == 201
    job_id = resp.json()["job_id"]
    height = before + 1

    # The block appears without a reload: same document, new row at the top.
    page.evaluate("window.__same_document = true")
    expect(page.locator(f"#live tr[data-height='{height}']").first).to_be_visible()
    expect(page.locator(f"#live a[href='/jobs/{job_id}']").first).to_be_visible()
    assert page.evaluate("window.__same_document") is True
    expect(page.locator("#tip-height")).to_have_text(str(height))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-home.png"), full_page=True)

    page.fill("header input[name=q]", job_id)
    page.press("header input[name=q]", "Enter")
    page.wait_for_url(f"**/jobs/{job_id}")
    expect(page.locator("h1")).to_contain_text(job_id)
    expect(page.locator("main")).to_contain_text("pending")
    assert "a job the browser should see" not in page.content()
    assert errors == []


def test_search_for_nothing_shows_the_not_found_page(page: Page, node: NodeProcess) -> None:
    page.goto(node.url + "/")
    page.fill("header input[name=q]", "no-such-thing")
    with page.expect_response(lambda r: "/search" in r.url) as info:
        page.press("header input[name=q]", "Enter")
    assert info.value.status == 404
    expect(page.locator("main h1")).to_have_text("Not found")


def test_a_mistyped_address_shows_the_not_found_page_with_the_way_back(page: Page, node: NodeProcess) -> None:
    response = page.goto(node.url + "/blokcs/1")
    assert response is not None and response.status == 404
    expect(page.locator("main h1")).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("There is no page at /blokcs/1.")
    page.click("main >> text=Back to the overview")
    page.wait_for_url(node.url + "/")
    expect(page.locator("header input[name=q]")).to_be_visible()


def test_swagger_ui_and_redoc_render_the_api_with_no_network(page: Page, node: NodeProcess) -> None:
    page.goto(node.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AITBC")
    expect(page.locator(".opblock-summary-path").filter(has_text="/v1/jobs").first).to_be_visible()
    page.goto(node.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("AITBC")
    expect(page.get_by_text("Submit a new job").first).to_be_attached()
