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
