"""The manual (docs/, mkdocs.yml) stays true to the code: it builds with no broken link or anchor,
it lists every command, flag, path and error code there is and no other, its generated protocol
examples match the code, and its getting-started shell blocks run as written against a node."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
import yaml

from tests.support import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CLI_PAGE = DOCS / "operate" / "cli.md"
ENDPOINTS_PAGE = DOCS / "api" / "endpoints.md"
ERRORS_PAGE = DOCS / "api" / "errors.md"
FIRST_JOB_PAGE = DOCS / "getting-started" / "first-job.md"
ALERTS = DOCS / "operate" / "prometheus-alerts.yml"
DASHBOARD = DOCS / "operate" / "grafana-dashboard.json"
DOCUMENTED_NODE = "http://127.0.0.1:8001"
"""Where the examples say the node listens; the test's node listens on a free port instead."""
GLOBAL_FLAGS = {"--config", "--help", "-h"}

CODE_PATTERNS = [
    re.compile(r'error_code="([a-z_]+)"'),
    re.compile(r'error_code = "([a-z_]+)"'),
    re.compile(r'ApiError\(\s*\d+,[^\n]*?"([a-z_]+)"\)'),
    re.compile(r'\d{3}: "([a-z_]+)"'),
    re.compile(r'error_response\(\s*\d+, "[^"]*", "([a-z_]+)"'),
    re.compile(r'"error_code":"([a-z_]+)"'),  # a body written as bytes, before the app sees the request
    re.compile(r'ApiError\(\s*\d{3},\n(?:[^\n]*\n){1,3}?\s*"([a-z_]+)",\n'),  # an ApiError over several lines
]


def pages() -> Iterator[Path]:
    yield README
    yield from sorted(DOCS.rglob("*.md"))


# -- the site builds ------------------------------------------------------------------------------


def test_mkdocs_builds_the_manual_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "protocol" / "examples" / "index.html").is_file()


# -- commands and flags ---------------------------------------------------------------------------


def cli_commands() -> dict[str, set[str]]:
    """Every leaf command of aitbc-node ("start", "keys create") and its flags, from the CLI itself."""
    from node.cli import cli

    found: dict[str, set[str]] = {}

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
            return
        flags = {o for p in command.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
        found[" ".join(path)] = flags - GLOBAL_FLAGS

    walk(cli, [])
    return found


def cli_page_sections() -> dict[str, set[str]]:
    """The flags in the table of each `## aitbc-node COMMAND` section of the CLI page."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in CLI_PAGE.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## `aitbc-node ([a-z -]+)`$", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif current is not None and line.startswith("| `-"):
            first_cell = line.split("|")[1]
            sections[current].update(re.findall(r"(?<![\w-])(--?[a-zA-Z][a-z-]*)", first_cell))
    return sections


def test_the_cli_page_lists_every_command_and_flag_and_no_other() -> None:
    commands, sections = cli_commands(), cli_page_sections()
    assert {"start", "keys create", "verify-receipt"} <= set(commands)  # the walk itself works
    assert sorted(sections) == sorted(commands)
    for name, flags in commands.items():
        assert sections[name] == flags, f"aitbc-node {name}: documented {sorted(sections[name])}, has {sorted(flags)}"


def code_texts(text: str) -> Iterator[str]:
    """Each line of each fenced block (continuation lines joined) and each inline code span."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    for block in fenced:
        yield from block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", prose)


def invocations() -> Iterator[tuple[Path, str, str, list[str]]]:
    """(page, the code, the command, its flags) for every aitbc-node command line the docs show."""
    for page in pages():
        for text in code_texts(page.read_text(encoding="utf-8")):
            for match in re.finditer(r"(?:^|bin/|\$\()aitbc-node ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", text.strip()):
                command = match.group(1)
                if command == "keys" and match.group(2):
                    command = f"keys {match.group(2)}"
                rest = re.split(r"\||&&|;|\)|#", text.strip()[match.end() :])[0]
                yield page, text, command, re.findall(r"(?<![\w-])(--?[a-zA-Z][a-z-]*)", rest)


def test_every_documented_aitbc_node_command_and_flag_exists() -> None:
    commands = cli_commands()
    shown = list(invocations())
    assert len(shown) >= 30  # the scan itself works
    wrong = [
        f"{page.relative_to(ROOT)}: {text.strip()}"
        for page, text, command, flags in shown
        if command not in commands or not set(flags) <= commands[command] | GLOBAL_FLAGS
    ]
    assert wrong == []


# -- the API: paths and error codes ---------------------------------------------------------------


def test_every_path_of_the_openapi_document_is_on_the_endpoints_page() -> None:
    from api.docs import openapi_document

    page = ENDPOINTS_PAGE.read_text(encoding="utf-8")
    paths = openapi_document()["paths"]
    assert "/v1/jobs/claim-next" in paths
    missing = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete") and f"`{method.upper()} {path}`" not in page
    ]
    assert missing == []


def error_codes_in_source() -> set[str]:
    codes: set[str] = set()
    for folder in ("api", "chain", "node"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in CODE_PATTERNS:
                codes.update(pattern.findall(text))
    return codes


def test_every_error_code_in_the_source_is_in_the_error_table() -> None:
    codes = error_codes_in_source()
    scan_works = {"unauthorized", "validation_error", "job_not_pending", "rate_limited", "headers_too_large"}
    assert scan_works <= codes
    page = ERRORS_PAGE.read_text(encoding="utf-8")
    assert sorted(c for c in codes if f"`{c}`" not in page) == []


# -- generated protocol examples ------------------------------------------------------------------


def test_the_worked_protocol_examples_are_what_the_code_computes_now() -> None:
    spec = importlib.util.spec_from_file_location("gen_examples", DOCS / "gen_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (DOCS / "protocol" / "examples.md").read_text(encoding="utf-8")
    assert module.render() == page, "stale: run .venv/bin/python docs/gen_examples.py"


# -- monitoring files -----------------------------------------------------------------------------


def monitoring_metrics() -> set[str]:
    """Every aitbc_* metric family the alert rules and the dashboard query."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    exprs = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "annotations"} <= set(rule), rule
            exprs.append(str(rule["expr"]))
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["panels"]
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs for n in re.findall(r"\baitbc_[a-z_]+", e)}
    return names


def test_the_alert_rules_and_the_dashboard_parse_and_cover_what_matters() -> None:
    names = monitoring_metrics()
    alerts = ALERTS.read_text(encoding="utf-8")
    for needed in ("aitbc_chain_tip_age_seconds", "aitbc_transactions_rejected_total", "aitbc_sync_lag_blocks"):
        assert needed in names
    assert "node_filesystem_avail_bytes" in alerts  # disk


# -- the getting-started shell blocks, run as written ---------------------------------------------


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def readme_first_job() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A first job") :]
    return section[: section.index("\n## ", 3)]


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[tuple[Path, NodeProcess]]:
    """A directory laid out like a clone where the README's first command ran: .venv and .aitbc."""
    work = tmp_path / "aitbc"
    work.mkdir()
    venv = Path(sys.prefix)
    assert (venv / "bin" / "aitbc-node").exists(), f"the tests run from a venv with aitbc-node installed, not {venv}"
    (work / ".venv").symlink_to(venv, target_is_directory=True)
    node = NodeProcess(work / ".aitbc")
    with node:
        yield work, node


def run_as_written(blocks: list[str], work: Path, node: NodeProcess) -> subprocess.CompletedProcess[str]:
    script = "\n".join(blocks)
    assert DOCUMENTED_NODE in script
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(DOCUMENTED_NODE, node.url)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if not k.startswith("AITBC_")},
    )


def test_the_first_job_pages_run_as_written_against_a_fresh_node(clone: tuple[Path, NodeProcess]) -> None:
    work, node = clone
    page = shell_blocks(FIRST_JOB_PAGE.read_text(encoding="utf-8"))
    assert len(page) >= 6
    done = run_as_written(page, work, node)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: receipt rcpt_" in done.stdout  # verify-receipt, offline
    assert '"valid":true' in done.stdout  # POST /v1/receipts/verify
    assert re.search(r"^completed rcpt_\w+ in block \d+ signed by [0-9a-f]{64}$", done.stdout, flags=re.M)

    readme = shell_blocks(readme_first_job())
    assert len(readme) == 1
    done = run_as_written(readme, work, node)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: receipt rcpt_" in done.stdout

    # The monitoring files query only metrics this node serves.
    served = httpx.get(f"{node.url}/metrics", timeout=30).text
    families = set(re.findall(r"^# TYPE (aitbc_[a-z_]+)", served, flags=re.M))
    families |= {f"{name}_total" for name in families}
    assert sorted(monitoring_metrics() - families) == []
