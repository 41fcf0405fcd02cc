"""The README stays true: its error-code table and its commands match the code and CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CODE_PATTERNS = [
    re.compile(r'error_code="([a-z_]+)"'),
    re.compile(r'error_code = "([a-z_]+)"'),
    re.compile(r'ApiError\(\s*\d+,[^\n]*?"([a-z_]+)"\)'),
    re.compile(r'\d{3}: "([a-z_]+)"'),
    re.compile(r'error_response\(\s*\d+, "[^"]*", "([a-z_]+)"'),
]
TEST_COMMAND = (
    "(command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)) && "
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/aitbc-node start"


def error_codes_in_source() -> set[str]:
    codes: set[str] = set()
    for folder in ("api", "chain", "node"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in CODE_PATTERNS:
                codes.update(pattern.findall(text))
    return codes


def test_every_error_code_in_the_source_is_documented_in_the_readme() -> None:
    codes = error_codes_in_source()
    assert {"unauthorized", "validation_error", "job_not_pending"} <= codes  # the scan itself works
    missing = sorted(c for c in codes if f"`{c}`" not in README)
    assert missing == []


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command_verbatim() -> None:
    assert RUN_COMMAND in README
    assert TEST_COMMAND in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def readme_receipt_verifier() -> dict[str, object]:
    """The README's "Verifying a receipt with nothing but PyNaCl" snippet, executed as printed."""
    section = README[README.index("**Verifying a receipt with nothing but PyNaCl**") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    assert len(code.strip().splitlines()) < 15
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    return namespace


def test_the_readme_pynacl_snippet_verifies_a_node_receipt_and_the_published_sample() -> None:
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
