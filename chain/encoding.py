"""Canonical encoding: the one way any record becomes bytes for hashing and signing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson

from chain.errors import EncodingError


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodingError("non-finite numbers cannot be encoded")


def sorted_compact_json(*, ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=..., allow_nan=...)`,
    with its encoder built once instead of on every call (the same text).

    It keeps no record of containers being encoded (json.dumps's circular-reference check), so
    a self-containing value raises RecursionError instead of ValueError; decoded JSON never is one.
    """
    return json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan, check_circular=False
    ).encode


_canonical_json = sorted_compact_json(ensure_ascii=False, allow_nan=False)


def canonical(record: Any) -> bytes:
    """JSON with sorted keys, compact separators, UTF-8. NaN and Infinity are refused."""
    try:
        return _canonical_json(record).encode("utf-8")
    except (ValueError, TypeError, RecursionError) as exc:
        raise EncodingError(f"record cannot be encoded canonically: {exc}") from exc


def canonical_text(record: Any) -> str:
    """canonical(record) before its UTF-8 encoding (a caller that joins parts encodes once)."""
    try:
        return _canonical_json(record)
    except (ValueError, TypeError, RecursionError) as exc:
        raise EncodingError(f"record cannot be encoded canonically: {exc}") from exc


json_string: Callable[[str], str] = json.JSONEncoder(ensure_ascii=False).encode
"""A str as a JSON string, exactly as canonical() spells it (non-ASCII kept, not escaped)."""


def canonical_scalar_text(value: Any) -> str:
    """canonical_text(value), without the general encoder for the commonest values (exact str and int)."""
    kind = value.__class__
    if kind is str:
        return json_string(value)
    if kind is int:
        return int.__repr__(value)
    return canonical_text(value)


def utf8(text: str) -> bytes:
    """text as UTF-8, refusing lone surrogates as canonical() does."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError(f"record cannot be encoded canonically: {exc}") from exc


# orjson reads integers beyond 64 bits as floats; any run of 19 digits takes the exact path.
# (Found by mapping digits to "1" and the rest to "0", then a substring search: several times
# faster than a regular expression over the same bytes.)
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_LONG_DIGIT_RUN = b"1" * 19


def decode(data: bytes) -> Any:
    """Parse JSON bytes back into a record (strict: UTF-8, no NaN or Infinity).

    orjson parses the same values as the standard library, several times faster, except for
    integers beyond 64 bits, which only the standard library keeps exact. Encoding always
    stays with the standard library, whose float spelling is part of the canonical form.
    """
    try:
        if _LONG_DIGIT_RUN not in data.translate(_DIGITS_AS_ONES):
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


_strict_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant)
"""Built once: json.loads with these options would build a decoder per call."""


def parse_strict(text: str) -> Any:
    """JSON from outside (requests, proof bundles): duplicate keys, NaN and Infinity are refused.

    Raises ValueError (or RecursionError for absurd nesting)."""
    if text.startswith("\ufeff"):
        raise ValueError("JSON must not start with a byte order mark")  # as json.loads refuses it
    return _strict_decoder.decode(text)
