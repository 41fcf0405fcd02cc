"""Transactions: every state change the node accepts is one of these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.crypto import hash_bytes
from chain.encoding import canonical
from chain.errors import EncodingError

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

    @property
    def encoded(self) -> bytes:
        return canonical(self.to_dict())

    @property
    def hash(self) -> bytes:
        return hash_bytes(self.encoded)

    @classmethod
    def from_dict(cls, raw: Any) -> Transaction:
        if not isinstance(raw, dict) or set(raw) != {"type", "payload", "timestamp"}:
            raise EncodingError("a transaction is an object with exactly type, payload, timestamp")
        tx_type, payload, timestamp = raw["type"], raw["payload"], raw["timestamp"]
        if tx_type not in TX_TYPES:
            raise EncodingError(f"unknown transaction type {tx_type!r}")
        if not isinstance(payload, dict):
            raise EncodingError("transaction payload must be an object")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
            raise EncodingError("transaction timestamp must be a non-negative integer")
        return cls(tx_type, payload, timestamp)
