"""Receipts: the authority's signed statement that a miner did a job, for a price.

Signing bytes follow the AITBC receipt protocol: drop `signature`, drop null values,
JSON with sorted keys, separators `,` and `:`, ASCII-escaped. Ed25519 over those bytes;
`sig` and `key_id` are base64url without padding; `key_id` is the raw public key.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from chain.crypto import NodeKey, b64url, b64url_decode, verify_signature

UNIT_TYPE = "tokens"
PRICE_PLACES = Decimal("0.00000001")
RECEIPT_FIELDS = (
    "receipt_id",
    "job_id",
    "provider",
    "client",
    "units",
    "unit_type",
    "price",
    "model",
    "started_at",
    "completed_at",
)


def count_units(result: str) -> int:
    """Tokens in a result: its whitespace-separated words (str.split with no argument)."""
    return len(result.split())


def price_for(units: int, price_per_unit: Decimal) -> float:
    """units x price per unit, rounded half-even to 8 decimal places, as a JSON number."""
    exact = (Decimal(units) * price_per_unit).quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)
    return float(exact)


def receipt_body(
    *,
    receipt_id: str,
    job: dict[str, Any],
    provider: str,
    result: str,
    completed_at_ms: int,
    price_per_unit: Decimal,
) -> dict[str, Any]:
    """The unsigned receipt for a job completed with the given result."""
    units = count_units(result)
    return {
        "receipt_id": receipt_id,
        "job_id": job["job_id"],
        "provider": provider,
        "client": job["client"],
        "units": units,
        "unit_type": UNIT_TYPE,
        "price": price_for(units, price_per_unit),
        "model": job["model"],
        "started_at": job["started_at"] // 1000,
        "completed_at": completed_at_ms // 1000,
    }


def signing_bytes(receipt: dict[str, Any]) -> bytes:
    """The receipt protocol's canonical bytes."""
    body = {k: v for k, v in receipt.items() if k != "signature" and v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign_receipt(body: dict[str, Any], key: NodeKey) -> dict[str, Any]:
    signature = {"alg": "ed25519", "key_id": b64url(key.public_key), "sig": b64url(key.sign(signing_bytes(body)))}
    return {**body, "signature": signature}


def receipt_signer(receipt: Any) -> bytes | None:
    """The raw public key that validly signed this receipt, or None if the signature fails."""
    if not isinstance(receipt, dict):
        return None
    signature = receipt.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "ed25519":
        return None
    try:
        public_key = b64url_decode(signature.get("key_id"))  # type: ignore[arg-type]
        sig = b64url_decode(signature.get("sig"))  # type: ignore[arg-type]
        message = signing_bytes(receipt)
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    return public_key if verify_signature(public_key, message, sig) else None
