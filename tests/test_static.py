"""Static checks, run with the tests so that CI and a contributor's `python -m pytest` run them:
the import contracts (import-linter), lint and formatting (ruff), and types (mypy).

Their settings are in pyproject.toml: [tool.importlinter], [tool.ruff], [tool.mypy].
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_import_contracts_are_kept() -> None:
    done = run_tool(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_module_of_node_is_in_one_layer() -> None:
    """A new module of node/ is placed in the layering on purpose, not left outside it."""
    layers = next(c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["id"] == "layers")["layers"]
    placed = [name for layer in layers for name in re.split(r"\s*[:|]\s*", layer)]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    modules = {f"node.{p.stem}" for p in (ROOT / "node").glob("*.py") if p.stem != "__init__"}
    modules |= {f"node.{p.name}" for p in (ROOT / "node").iterdir() if (p / "__init__.py").exists()}
    assert modules <= set(placed), f"not in any layer: {sorted(modules - set(placed))}"


def test_ruff_finds_nothing_to_fix() -> None:
    done = run_tool(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted() -> None:
    done = run_tool(sys.executable, "-m", "ruff", "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_type_errors() -> None:
    done = run_tool(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr


IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<after>.*)$")


def test_every_type_ignore_names_its_error_code_and_a_reason() -> None:
    """Each ignore comment carries its error code in brackets, then a comment saying why the
    error is not fixed instead: a bare ignore hides any error."""
    bad = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if ".venv" in path.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = IGNORE.search(line)
            if found is None:
                continue
            reason = found["after"].strip().lstrip("#").strip()
            if not found["codes"] or len(reason) < 8:
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
