"""The served OpenAPI document and its two renderings, with every asset served locally."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse

from api.responses import JSONResponse

SPEC_DIR = Path(__file__).resolve().parent / "spec"
STATIC_DIR = Path(__file__).resolve().parent / "static"


def _merge_parameters(base: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameters are identified by (name, in): an extension refines one, it does not drop others."""
    merged = {(p["name"], p["in"]): copy.deepcopy(p) for p in base}
    for p in extra:
        ident = (p["name"], p["in"])
        merged[ident] = deep_merge(merged[ident], p) if ident in merged else copy.deepcopy(p)
    return list(merged.values())


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        elif k == "parameters" and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_parameters(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@functools.cache
def openapi_document() -> dict[str, Any]:
    contract = yaml.safe_load((SPEC_DIR / "openapi.yaml").read_text(encoding="utf-8"))
    extensions = yaml.safe_load((SPEC_DIR / "extensions.yaml").read_text(encoding="utf-8"))
    return deep_merge(contract, extensions)


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())


SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AITBC API — Swagger UI</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/swagger/swagger-ui-standalone-preset.js"></script>
<script src="/static/api/docs/swagger-init.js"></script>
</body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AITBC API — ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/static/api/redoc/redoc.standalone.js"></script>
</body></html>
"""


async def swagger_ui(request: Request) -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE)


async def redoc(request: Request) -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE)
