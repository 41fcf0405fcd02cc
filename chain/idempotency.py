"""Idempotency keys (from 0.3.0): a write sent with an Idempotency-Key header carries, in its
transaction's payload, the record {"account", "key", "request"}: the account the key is scoped
to, the key, and the BLAKE3 of the request (method, path, body). Applying the transaction
stores, under the account and key, the request's hash, the transaction's hash, the block time
and the transaction's result, so that every node holding the block can answer a retry of the
same request with the original answer, and refuse the key for a different request. A key
expires 24 h after the block that recorded it, by block time."""

from __future__ import annotations

from typing import Any

from chain.errors import Conflict, ValidationError
from chain.state import RecordReader, WorkingState, key

FIELD = "idempotency"
"""The payload field holding the record; transactions without it are as before 0.3.0."""
TTL_MS = 24 * 3600 * 1000
MAX_KEY_CHARS = 255


def record_key(account: str, idem_key: str) -> bytes:
    return key("idem", account, idem_key)


def valid_key(idem_key: str) -> bool:
    """1 to 255 printable ASCII characters (RFC 9110 field value, as the draft asks of keys)."""
    return 0 < len(idem_key) <= MAX_KEY_CHARS and all(" " <= c <= "~" for c in idem_key)


def parse(raw: Any) -> tuple[str, str, str]:
    """(account, key, request hash) of a payload's record; ValidationError if malformed."""
    if not isinstance(raw, dict) or set(raw) != {"account", "key", "request"}:
        raise ValidationError("idempotency must be an object with exactly account, key and request")
    account, idem_key, request = raw["account"], raw["key"], raw["request"]
    if not isinstance(account, str) or not isinstance(idem_key, str) or not valid_key(idem_key):
        raise ValidationError("idempotency.key must be 1-255 printable ASCII characters")
    if not isinstance(request, str) or len(request) != 64:
        raise ValidationError("idempotency.request must be a 64-character hex hash")
    return account, idem_key, request


def live_record(state: RecordReader, account: str, idem_key: str, now_ms: int) -> dict[str, Any] | None:
    """The record stored for the key, unless it has expired by now_ms (a block time)."""
    record: dict[str, Any] | None = state.get_record(record_key(account, idem_key))
    if record is None or record["time"] + TTL_MS <= now_ms:
        return None
    return record


def check_unused(state: WorkingState, raw: Any, now_ms: int) -> tuple[str, str, str]:
    account, idem_key, request = parse(raw)
    if live_record(state, account, idem_key, now_ms) is not None:
        raise Conflict("this idempotency key has already been used", error_code="idempotency_key_used")
    return account, idem_key, request


def record(
    state: WorkingState, parsed: tuple[str, str, str], tx_type: str, tx_hash: str, time_ms: int, result: Any
) -> None:
    account, idem_key, request = parsed
    state.put_record(
        record_key(account, idem_key),
        {"request": request, "tx": tx_hash, "type": tx_type, "time": time_ms, "result": result},
    )
