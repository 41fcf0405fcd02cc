"""The README stays true: its two commands match CI, it stays a front door, and the receipt snippet
it points to (docs/api/receipts.md) verifies real receipts."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECEIPTS_PAGE = ROOT / "docs" / "api" / "receipts.md"
README_MAX_BYTES = 12 * 1024
TEST_COMMAND = (
    "(command -v chromium && command -v strace && command -v etcd || "
    "(apt-get update && apt-get install -y chromium strace etcd-server)) >/dev/null && "
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/aitbc-node start"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command_verbatim() -> None:
    assert RUN_COMMAND in README
    assert TEST_COMMAND in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_is_a_front_door_with_a_picture_that_links_into_the_manual() -> None:
    assert len(README.encode("utf-8")) <= README_MAX_BYTES
    assert "```mermaid" in README
    for page in ("docs/getting-started/first-job.md", "docs/operate/followers.md", "docs/api/errors.md"):
        assert f"]({page})" in README


def readme_receipt_verifier() -> dict[str, object]:
    """The manual's "Verifying a receipt with nothing but PyNaCl" snippet, executed as printed."""
    text = RECEIPTS_PAGE.read_text(encoding="utf-8")
    section = text[text.index("**Verifying a receipt with nothing but PyNaCl**") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    assert len(code.strip().splitlines()) < 15
    namespace: dict[str, object] = {}
    exec(compile(code, str(RECEIPTS_PAGE), "exec"), namespace)  # noqa: S102 - the manual's own example
    return namespace


def test_the_documented_pynacl_snippet_verifies_a_node_receipt_and_the_published_sample() -> None:
    import json
    from decimal import Decimal

    import nacl.exceptions
    import pytest

    from chain.crypto import NodeKey
    from chain.receipts import receipt_body, sign_receipt

    verify = readme_receipt_verifier()["verify"]
    assert callable(verify)
    key = NodeKey(bytes(range(32)))
    job = {"job_id": "job-1", "client": "alice", "model": "llama3.2", "started_at": 1_767_225_603_000}
    receipt = sign_receipt(
        receipt_body(
            receipt_id="r-1",
            job=job,
            provider="gpu-1",
            result="a b c",
            completed_at_ms=1_767_225_604_000,
            price_per_unit=Decimal("0.000002"),
            coordinator_id="aitbc-devnet",
        ),
        key,
    )
    assert verify(receipt) == key.public_hex
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify({**receipt, "units": 4})
    sample = json.loads((ROOT / "tests" / "vectors" / "aitbc-receipt-sample.json").read_text())
    assert verify({**sample["payload"], "signature": sample["signature"]}) == sample["verify_key_hex"]
