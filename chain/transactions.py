"""Transactions: every state change the node accepts is one of these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.crypto import hash_bytes, hash_hex
from chain.encoding import canonical_scalar_text, canonical_text, json_string, utf8
from chain.errors import EncodingError
from chain.lazy import once

PRIVATE_FIELDS = ("prompt", "result")
"""Payload fields only their parties may read. A transaction's hash commits to them through
their BLAKE3 digests, so its public form (and a proof built from it) reveals neither."""

TX_TYPES = (
    "account.create",
    "account.revoke",
    "miner.register",
    "miner.heartbeat",
    "job.submit",
    "job.claim",
    "job.complete",
    "job.fail",
    "job.cancel",
    "job.requeue",
    "job.claim_next",  # from 0.3.0
)


@dataclass(frozen=True)
class Transaction:
    """One state change, as sealed into a block."""

    type: str
    """One of TX_TYPES."""
    payload: dict[str, Any]
    """Type-specific fields; validated by the state transition."""
    timestamp: int
    """When the node accepted it, Unix milliseconds; never after its block's timestamp."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload, "timestamp": self.timestamp}

    @once
    def encoded(self) -> bytes:
        """The canonical bytes of the whole transaction, as blocks store it."""
        return utf8(self._texts[0])

    @once
    def public_encoded(self) -> bytes:
        """The canonical bytes of the public form: private fields replaced by their digests."""
        return utf8(self._texts[1])

    @once
    def _texts(self) -> tuple[str, str]:
        """The canonical text of the transaction and of its public form, each payload value
        encoded once (the transaction's hash needs the one, its block the other).

        A canonical object is `{` + its `"key":value` pairs in key order, joined by `,` + `}`,
        and a transaction's keys sort as payload, timestamp, type: so both are assembled from
        one encoding of each payload value. (tests/chain pins them to canonical() of the dicts.)
        """
        payload = self.payload
        if payload.keys().isdisjoint(PRIVATE_FIELDS):  # the public form is the same
            text = canonical_text(self.to_dict())
            return text, text
        if any(k.__class__ is not str for k in payload):  # not from JSON: leave it all to json
            full = self.to_dict()
            return canonical_text(full), canonical_text({**full, "payload": redact(payload)})
        pairs: list[str] = []
        public: list[str] = []
        for k in sorted(payload):
            value = payload[k]
            pair = json_string(k) + ":" + canonical_scalar_text(value)
            pairs.append(pair)
            if k in PRIVATE_FIELDS and isinstance(value, str):
                public.append(json_string(k) + ':{"blake3":"' + _digest(value) + '"}')
            else:
                public.append(pair)
        tail = (
            '},"timestamp":'
            + canonical_scalar_text(self.timestamp)
            + ',"type":'
            + canonical_scalar_text(self.type)
            + "}"
        )
        return '{"payload":{' + ",".join(pairs) + tail, '{"payload":{' + ",".join(public) + tail

    @once
    def hash(self) -> bytes:
        """BLAKE3 of the public form; the Merkle leaf and the transaction's id."""
        return hash_bytes(self.public_encoded)

    @classmethod
    def from_dict(cls, raw: Any) -> Transaction:
        if not isinstance(raw, dict) or set(raw) != {"type", "payload", "timestamp"}:
            raise EncodingError("a transaction is an object with exactly type, payload, timestamp")
        tx_type, payload, timestamp = raw["type"], raw["payload"], raw["timestamp"]
        if tx_type not in TX_TYPES:
            raise EncodingError(
                f"unknown transaction type {tx_type!r}: the chain is newer than this node; upgrade this node",
                error_code="upgrade_required",
            )
        if not isinstance(payload, dict):
            raise EncodingError("transaction payload must be an object")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
            raise EncodingError("transaction timestamp must be a non-negative integer")
        return cls(tx_type, payload, timestamp)


def redact(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with each private string field replaced by {"blake3": hex digest of its UTF-8}."""
    if payload.keys().isdisjoint(PRIVATE_FIELDS):
        return payload
    return {k: {"blake3": _digest(v)} if k in PRIVATE_FIELDS and isinstance(v, str) else v for k, v in payload.items()}


def _digest(private: str) -> str:
    return hash_hex(private.encode("utf-8", "surrogatepass"))
