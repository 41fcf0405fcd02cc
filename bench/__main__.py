"""python -m bench NAME [ARGS...]: run one benchmark module bench/NAME.py (its main(argv))."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    """The modules of bench/ that run as a benchmark (define main), not the helpers they share."""
    here = Path(__file__).resolve().parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and "\ndef main(" in (here / f"{m.name}.py").read_text()
    )


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [ARGS...]\n\nbenchmarks: " + ", ".join(names))
        return 0
    name = argv[0].removeprefix("bench_")
    candidates = [n for n in names if n in (name, f"bench_{name}")]
    if not candidates:
        print(f"no benchmark named {argv[0]!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{candidates[0]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
