"""The core's errors are domain errors: a stable error_code each, and no HTTP status (the API
maps them to statuses in one table, api.errors.STATUS_OF_DOMAIN_ERROR; the website to pages)."""

from __future__ import annotations

import inspect

import chain.errors
from chain.errors import LedgerError

ERRORS = [c for _, c in inspect.getmembers(chain.errors, inspect.isclass) if issubclass(c, LedgerError)]


def test_every_core_error_has_an_error_code_and_a_docstring() -> None:
    assert len(ERRORS) >= 8
    for kind in ERRORS:
        assert isinstance(kind.error_code, str) and kind.error_code, kind
        assert kind.__doc__, kind


def test_no_core_error_carries_an_http_status() -> None:
    for kind in ERRORS:
        for name in vars(kind):
            assert name not in {"status", "status_code", "http_status"}, f"{kind.__name__}.{name}"
