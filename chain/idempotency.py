"""Idempotency keys: a write sent with an Idempotency-Key header carries, in its transaction's
payload, a record naming the account the key is scoped to, the key, and the BLAKE3 of the
request (method, path, body). Applying the transaction stores, under the account and key, the
request's hash, the transaction's hash, the block time and the transaction's result, so that
every node holding the block can answer a retry of the same request with the original answer,
and refuse the key for a different request. A key expires 24 h after the block that recorded
it, by block time.

The record has two forms, and every block ever sealed stays valid with its own:

- {"account", "key_hash", "request"}, from 0.4.0: the chain holds only
  key_hash(account, key), never the key, which the client chose and may not want published.
  The record is stored under "idemh" and listed in the expiry index
  (chain.indexes.IDEMPOTENCY_EXPIRY); applying a block first deletes the records expired by its
  time, at most max_block_txs of them (as many as one block can add), so the state holds about
  a day of keys, not every key ever used.
- {"account", "key", "request"}, as 0.3.0 sealed it: the raw key, stored under
  "idem" and never deleted (no index lists it, and deleting it now would change the state
  roots of blocks already sealed). Reads treat it as absent once expired, as they do the
  hashed form.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from chain import indexes
from chain.crypto import hash_hex
from chain.errors import Conflict, ValidationError
from chain.state import SEP, ReadableState, RecordReader, WorkingState, key

FIELD = "idempotency"
"""The payload field holding the record; transactions without it are as before 0.3.0."""
TTL_MS = 24 * 3600 * 1000
MAX_KEY_CHARS = 255
SWEPT = key("idemswept")
"""The expiry-index entry (its key after the index prefix) of the last record deleted on
expiry. Every entry up to it is gone, and every entry added later sorts after it (its expiry is
a later block time + TTL), so a block looks for expired records after it: LevelDB keeps what
was deleted as tombstones until a compaction, and stepping over them would cost each block
more the more records expired since."""
_DOMAIN = b"aitbc idempotency key\x00"


@dataclass(frozen=True)
class Claim:
    """A transaction's idempotency record, checked."""

    account: str
    key_hash: str | None
    """key_hash(account, key): the form sealed now."""
    legacy_key: str | None
    """The raw key: the form 0.3.0 sealed."""
    request: str

    @property
    def record_key(self) -> bytes:
        if self.key_hash is not None:
            return hashed_record_key(self.account, self.key_hash)
        assert self.legacy_key is not None
        return legacy_record_key(self.account, self.legacy_key)


def key_hash(account: str, idem_key: str) -> str:
    """What the chain holds of a key: the BLAKE3 of it with its account (so that one key
    used by two accounts gives two unrelated hashes), hex."""
    return hash_hex(_DOMAIN + account.encode("utf-8") + b"\x00" + idem_key.encode("ascii"))


def payload_record(account: str, idem_key: str, request: str) -> dict[str, str]:
    """The payload field a write sent with idem_key carries."""
    return {"account": account, "key_hash": key_hash(account, idem_key), "request": request}


def hashed_record_key(account: str, hashed: str) -> bytes:
    return key("idemh", account, hashed)


def legacy_record_key(account: str, idem_key: str) -> bytes:
    return key("idem", account, idem_key)


def valid_key(idem_key: str) -> bool:
    """1 to 255 printable ASCII characters (RFC 9110 field value, as the draft asks of keys)."""
    return 0 < len(idem_key) <= MAX_KEY_CHARS and all(" " <= c <= "~" for c in idem_key)


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def parse(raw: Any) -> Claim:
    """The payload's record, in either form; ValidationError if malformed."""
    if not isinstance(raw, dict) or set(raw) not in ({"account", "key_hash", "request"}, {"account", "key", "request"}):
        raise ValidationError("idempotency must be an object with exactly account, key_hash and request")
    account, request = raw["account"], raw["request"]
    if not isinstance(account, str):
        raise ValidationError("idempotency.account must be a string")
    if "key" in raw:
        if not isinstance(raw["key"], str) or not valid_key(raw["key"]):
            raise ValidationError("idempotency.key must be 1-255 printable ASCII characters")
    elif not _hex64(raw["key_hash"]):
        raise ValidationError("idempotency.key_hash must be a 64-character lowercase hex hash")
    if not isinstance(request, str) or len(request) != 64:
        raise ValidationError("idempotency.request must be a 64-character hex hash")
    return Claim(account, raw.get("key_hash"), raw.get("key"), request)


def _live(record: dict[str, Any] | None, now_ms: int) -> dict[str, Any] | None:
    return None if record is None or record["time"] + TTL_MS <= now_ms else record


def live_record(state: RecordReader, account: str, idem_key: str, now_ms: int) -> dict[str, Any] | None:
    """The record stored for the key, in either form, unless it has expired by now_ms (a block time)."""
    hashed = _live(state.get_record(hashed_record_key(account, key_hash(account, idem_key))), now_ms)
    return hashed if hashed is not None else _live(state.get_record(legacy_record_key(account, idem_key)), now_ms)


def check_unused(state: WorkingState, raw: Any, now_ms: int) -> Claim:
    claim = parse(raw)
    if _live(state.get_record(claim.record_key), now_ms) is not None:
        raise Conflict("this idempotency key has already been used", error_code="idempotency_key_used")
    return claim


def record(state: WorkingState, claim: Claim, tx_type: str, tx_hash: str, time_ms: int, result: Any) -> None:
    """Store the record; a hashed one is also listed by its expiry (replacing the entry of an
    expired record of the same key that no block has deleted yet)."""
    if claim.key_hash is not None:
        previous = state.get_record(claim.record_key)
        if previous is not None:
            state.delete(indexes.idempotency_expiry(previous["time"] + TTL_MS, claim.account, claim.key_hash))
        state.put(indexes.idempotency_expiry(time_ms + TTL_MS, claim.account, claim.key_hash), b"")
    state.put_record(
        claim.record_key,
        {"request": claim.request, "tx": tx_hash, "type": tx_type, "time": time_ms, "result": result},
    )


def expire(state: WorkingState, base: ReadableState, time_ms: int, limit: int) -> int:
    """Delete up to `limit` hashed records expired by time_ms (a block's time), soonest first,
    with their index entries, from `state`: a block's working state over `base` with nothing
    written to it yet. Return how many; the rest go with the next blocks.

    The index is read from base, not through state, so that state does not start keeping its
    writes in order for the scan (a cost on every later write of the block)."""
    swept = base.get(SWEPT)
    entries = base.scan(indexes.IDEMPOTENCY_EXPIRY, swept + SEP if swept else b"")
    due = list(itertools.islice(itertools.takewhile(lambda e: int(e[0][:16], 16) <= time_ms, entries), limit))
    for suffix, _ in due:
        _, account, hashed = indexes.parse_idempotency_expiry(suffix)
        state.delete(indexes.IDEMPOTENCY_EXPIRY + suffix)
        state.delete(hashed_record_key(account, hashed))
    if due:
        state.put(SWEPT, due[-1][0])
    return len(due)
