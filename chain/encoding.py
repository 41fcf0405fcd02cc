"""Canonical encoding: the one way any record becomes bytes for hashing and signing."""

from __future__ import annotations

import json
import math
from typing import Any

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


def decode(data: bytes) -> Any:
    """Parse canonical bytes back into a record."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EncodingError(f"bytes are not canonical JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
