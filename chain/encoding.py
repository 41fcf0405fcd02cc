"""Canonical encoding: the one way any record becomes bytes for hashing and signing."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from chain.errors import EncodingError


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodingError("non-finite numbers cannot be encoded")


def canonical(record: Any) -> bytes:
    """JSON with sorted keys, compact separators, UTF-8. NaN and Infinity are refused."""
    try:
        return json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"record cannot be encoded canonically: {exc}") from exc


# orjson reads integers beyond 64 bits as floats; any run of 19 digits takes the exact path.
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")


def decode(data: bytes) -> Any:
    """Parse JSON bytes back into a record (strict: UTF-8, no NaN or Infinity).

    orjson parses the same values as the standard library, several times faster, except for
    integers beyond 64 bits, which only the standard library keeps exact. Encoding always
    stays with the standard library, whose float spelling is part of the canonical form.
    """
    try:
        if _LONG_DIGIT_RUN.search(data) is None:
            return orjson.loads(data)
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (orjson.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise EncodingError(f"bytes are not canonical JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key '{k}'")
        out[k] = v
    return out


def parse_strict(text: str) -> Any:
    """JSON from outside (requests, proof bundles): duplicate keys, NaN and Infinity are refused.

    Raises ValueError (or RecursionError for absurd nesting)."""
    return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant)
