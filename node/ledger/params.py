"""Query parameters of the read model's listings, shared by the API and the website: each is
read from the request's query mapping and refused with a ValidationError naming it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from chain.errors import ValidationError
from node.offers import MAX_WAIT_S

MAX_QUERY_INT = 2**63 - 1
"""No query integer goes beyond this (heights, offsets, counts: each fits every key it builds)."""
INTEGER = re.compile(r"-?[0-9]{1,20}")
"""A query integer as written: ASCII digits, an optional minus sign, nothing else (no spaces,
underscores or other scripts' digits, which int() would accept)."""


SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw):
        raise ValidationError(f"{name} must be an integer (ASCII digits)")
    value = int(raw)
    high = MAX_QUERY_INT if high is None else min(high, MAX_QUERY_INT)
    if value < low or value > high:
        bound = f"from {low} to {high}"
        raise ValidationError(f"{name} must be {bound}")
    return value


def page_limit(params: Mapping[str, str], default: int, max_page_size: int) -> int:
    """The `limit` of a listing: 1 to the node's --max-page-size."""
    return query_int(params, "limit", default, 1, max_page_size)


def before(params: Mapping[str, str]) -> int | None:
    """`before`: the height (blocks) or number (receipts) a page of older items starts below."""
    return query_int(params, "before", 0, 0) if "before" in params else None


def cursor(params: Mapping[str, str]) -> str | None:
    """`cursor`: the transaction hash a page of older transactions starts after."""
    return params.get("cursor") or None


def query_choice(params: Mapping[str, str], name: str, choices: Iterable[str]) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    options = list(choices)
    if raw not in options:
        raise ValidationError(f"{name} must be one of {', '.join(options)}")
    return raw


def wait_seconds(raw: object, name: str = "wait") -> float:
    """A long poll's `wait`: seconds, 0 to MAX_WAIT_S; a number, or its text in a query."""
    if raw is None:
        return 0.0
    if isinstance(raw, str):
        if not SECONDS.fullmatch(raw):
            raise ValidationError(f"{name} must be a number of seconds (ASCII digits)")
        raw = float(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= MAX_WAIT_S:
        raise ValidationError(f"{name} must be a number of seconds from 0 to {MAX_WAIT_S:g}")
    return float(raw)
