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
        assert not set(names) & FORBIDDEN_MODULES, f"{path.name}:{getattr(node, 'lineno', '?')} imports {names}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            assert name not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls {name}()"


MUTABLE_CONSTRUCTORS = {"dict", "list", "set", "bytearray", "defaultdict", "deque", "OrderedDict", "Counter"}
MUTABLE_LITERALS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, MUTABLE_LITERALS):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        return name in MUTABLE_CONSTRUCTORS
    return False


@pytest.mark.parametrize("path", sorted(CHAIN.glob("*.py")), ids=lambda p: p.name)
def test_chain_module_keeps_no_mutable_state_of_its_own(path: Path) -> None:
    """What apply_tx does depends on its arguments alone: no module holds a dict, list or set
    (tables are MappingProxyType or tuples), and no function rebinds a module's names.
    functools caches of pure functions are allowed: they change how fast, not what."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            assert not _mutable(stmt.value), f"{path.name}:{stmt.lineno} holds mutable state: {ast.unparse(stmt)[:60]}"
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Global), f"{path.name}:{node.lineno} rebinds a module name (global)"


def _assigned(source: str) -> ast.expr | None:
    stmt = ast.parse(source).body[0]
    assert isinstance(stmt, ast.Assign | ast.AnnAssign)
    return stmt.value


def test_the_mutable_state_check_sees_what_it_forbids() -> None:
    for source in ("_seen = {}", "_seen: set[str] = set()", "CACHE = dict()", "Q = deque()", "X = [i for i in y]"):
        assert _mutable(_assigned(source))
    for source in ("T = MappingProxyType({})", "N = (1, 2)", "F = frozenset({1})", "S = 'x'"):
        assert not _mutable(_assigned(source))
