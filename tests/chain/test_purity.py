"""chain/ stays pure: no storage, web, asyncio, clock or I/O modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHAIN = Path(__file__).resolve().parents[2] / "chain"
FORBIDDEN_MODULES = {
    "plyvel",
    "starlette",
    "uvicorn",
    "asyncio",
    "time",
    "os",
    "socket",
    "httpx",
    "websockets",
    "io",
    "pathlib",
    "subprocess",
    "random",
    "secrets",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open"}


@pytest.mark.parametrize("path", sorted(CHAIN.glob("*.py")), ids=lambda p: p.name)
def test_chain_module_imports_nothing_impure_and_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        assert not set(names) & FORBIDDEN_MODULES, f"{path.name}:{node.lineno} imports {names}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            assert name not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls {name}()"
