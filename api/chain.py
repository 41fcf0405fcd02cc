"""Chain sync endpoints for followers (head, blocks, genesis, live feed). Filled in by the replication issue."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
