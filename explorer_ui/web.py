"""The explorer website's routes (pages, assets, live feed). Filled in by the explorer issue."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
