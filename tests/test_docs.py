"""docs/architecture.md stays true to the tree: every file it names exists, and the route
it follows is the one the app serves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_file_the_architecture_names_exists() -> None:
    named = set(re.findall(r"\b((?:chain|node|api|explorer_ui)/[\w/]+\.(?:py|yaml))\b", ARCHITECTURE))
    assert len(named) >= 15
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_diagram_follows_the_route_and_the_functions_that_exist() -> None:
    from starlette.routing import Route

    from api import jobs
    from api.routes import ROUTES
    from node.ledger.commands import Commands
    from node.producer import Producer
    from node.roles import sequencer_of

    posts = [r for r in ROUTES if isinstance(r, Route) and r.path == "/v1/jobs" and "POST" in (r.methods or ())]
    assert [r.endpoint for r in posts] == [jobs.submit_job]
    for name in ("submit_job(request)", "Commands.submit_job", "sequencer_of(node.role)", "Producer.submit()"):
        assert name in ARCHITECTURE
    assert callable(Commands.submit_job) and callable(Producer.submit) and callable(sequencer_of)
