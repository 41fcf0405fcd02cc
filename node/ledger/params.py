"""Query parameters of the read model's listings, shared by the API and the website: each is
read from the request's query mapping and refused with a ValidationError naming it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chain.errors import ValidationError
from node.offers import MAX_WAIT_S


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValidationError(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
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
        try:
            raw = float(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a number of seconds") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= MAX_WAIT_S:
        raise ValidationError(f"{name} must be a number of seconds from 0 to {MAX_WAIT_S:g}")
    return float(raw)
