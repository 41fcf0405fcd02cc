"""The in-browser verifier's canonical bytes (explorer_ui/static/verify.js) are Python's, byte for
byte: generated receipts, with non-ASCII text, floats, big integers and nulls at any depth, are
serialised by Python, parsed by the page's JavaScript in Debian's Chromium, and re-serialised."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, sync_playwright

from chain.crypto import NodeKey
from chain.encoding import canonical, canonical_text
from chain.receipts import RECEIPT_FIELDS, sign_receipt, signing_bytes
from explorer_ui.web import STATIC_DIR
from tests.e2e.test_explorer_browser import ARGS, CHROMIUM

KEY = NodeKey(bytes(range(7, 39)))


@pytest.fixture(scope="module")
def js() -> Iterator[Page]:
    """A blank page holding the noble libraries and the verifier: no node, no network."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.set_content("<!doctype html><title>verifier</title>")
            page.add_script_tag(content=(STATIC_DIR / "vendor" / "noble.js").read_text(encoding="utf-8"))
            page.add_script_tag(content=(STATIC_DIR / "verify.js").read_text(encoding="utf-8"))
            yield page
        finally:
            browser.close()


SIGNING_BYTES = "text => AitbcVerify.toHex(AitbcVerify.receiptSigningBytes(AitbcVerify.parseJSON(text)))"
CANONICAL_BYTES = "text => AitbcVerify.toHex(AitbcVerify.canonicalBytes(AitbcVerify.parseJSON(text)))"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["café", "☕ ünïcödé", "\U0001f600 astral", "\ue000 private", "tab\tnew\nline", '"quoted" \\', "\x7f"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def receipts(draw: st.DrawFn) -> dict[str, Any]:
    """A signed receipt whose fields hold any JSON value (the signing bytes take any)."""
    body: dict[str, Any] = {name: draw(values) for name in RECEIPT_FIELDS}
    body["price"] = draw(st.floats(min_value=0, max_value=1e6) | st.sampled_from([4e-06, 1e-08, 0.1, 1e16, 123.0]))
    body["units"] = draw(st.integers(min_value=0, max_value=2**64))
    body["extra"] = draw(st.dictionaries(st.text(max_size=4), values, max_size=3))
    return sign_receipt(body, KEY)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(receipt=receipts())
def test_js_signing_bytes_equal_pythons(js: Page, receipt: dict[str, Any]) -> None:
    expected = signing_bytes(receipt).hex()
    # as stored on chain (canonical, UTF-8), and as a person may paste it (indented, ASCII-escaped)
    for text in (canonical_text(receipt), json.dumps(receipt, indent=2, ensure_ascii=True)):
        assert js.evaluate(SIGNING_BYTES, text) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_js_canonical_bytes_equal_pythons(js: Page, value: Any) -> None:
    assert js.evaluate(CANONICAL_BYTES, json.dumps(value, ensure_ascii=False)) == canonical(value).hex()


def test_numbers_keep_their_spelling(js: Page) -> None:
    text = '{"price": 4e-06, "units": 18446744073709551617, "x": 1.0, "y": -0.0, "z": [null, 1e+16]}'
    assert js.evaluate(SIGNING_BYTES, text) == signing_bytes(json.loads(text)).hex()
    assert bytes.fromhex(js.evaluate(SIGNING_BYTES, text)) == (
        b'{"price":4e-06,"units":18446744073709551617,"x":1.0,"y":-0.0,"z":[1e+16]}'
    )


@pytest.mark.parametrize(
    "text",
    ['{"a": 1, "a": 2}', '{"a": NaN}', '{"a": Infinity}', "\ufeff{}", '{"a": 01}', "[1,]", '{"a": "\x01"}', "{} x"],
)
def test_the_parser_refuses_what_the_node_refuses(js: Page, text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse)
    assert (
        js.evaluate(
            "text => { try { AitbcVerify.parseJSON(text); return 'parsed'; } catch (e) { return e.name; } }", text
        )
        == "SyntaxError"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def _refuse(name: str) -> Any:
    raise ValueError(name)
