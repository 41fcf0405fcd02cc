"""Receipts: the authority's signed statement that a miner did a job, for a price.

Signing bytes follow the AITBC receipt protocol: drop `signature`, drop null values,
JSON with sorted keys, separators `,` and `:`, ASCII-escaped. Ed25519 over those bytes;
`sig` and `key_id` are base64url without padding; `key_id` is the raw public key.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from chain.crypto import NodeKey, b64url, b64url_decode, hash_hex, verify_signature
from chain.encoding import canonical, sorted_compact_json
from chain.errors import EncodingError

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
MINER_FIELDS = ("result_hash", "miner_signature")
"""Extension fields of a receipt whose miner registered a miner_pubkey (a co-signed receipt)."""


def count_units(result: str) -> int:
    """Tokens in a result: its whitespace-separated words (str.split with no argument)."""
    return len(result.split())


@functools.lru_cache(maxsize=4096)
def exact_price(units: int, price_per_unit: Decimal) -> Decimal:
    """units x price per unit, rounded half-even to 8 decimal places. (Remembered: a completion
    prices its receipt three times, and results of the same length repeat.)"""
    return (Decimal(units) * price_per_unit).quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)


def price_for(units: int, price_per_unit: Decimal) -> float:
    """The receipt's price: exact_price as a JSON number."""
    return float(exact_price(units, price_per_unit))


def price_e8(units: int, price_per_unit: Decimal) -> int:
    """The price in units of 10^-8, for an exact running total (the explorer's total price)."""
    return int(exact_price(units, price_per_unit).scaleb(8))


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


_signing_json = sorted_compact_json(ensure_ascii=True, allow_nan=True)


def signing_bytes(receipt: dict[str, Any]) -> bytes:
    """The receipt protocol's canonical bytes."""
    body = {k: v for k, v in receipt.items() if k != "signature" and v is not None}
    return _signing_json(body).encode("ascii")


def sign_receipt(body: dict[str, Any], key: NodeKey) -> dict[str, Any]:
    signature = {"alg": "ed25519", "key_id": key.key_id, "sig": b64url(key.sign(signing_bytes(body)))}
    return {**body, "signature": signature}


Triple = tuple[bytes, bytes, bytes]
"""(public key, message, signature): one Ed25519 check."""


def receipt_check(receipt: Any) -> Triple | None:
    """The authority signature check a receipt asks for, or None if it is malformed."""
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
    return public_key, message, sig


def receipt_signer(receipt: Any) -> bytes | None:
    """The raw public key that validly signed this receipt, or None if the signature fails."""
    check = receipt_check(receipt)
    return check[0] if check is not None and verify_signature(*check) else None


# -- miner co-signatures -----------------------------------------------------------------
# A miner that registered an Ed25519 `miner_pubkey` signs canonical({job_id, result_hash})
# when it completes; the receipt then carries `result_hash` and `miner_signature`, and the
# authority's signature covers both.

def result_hash(result: str) -> str:
    """BLAKE3 hex of the result's UTF-8 bytes."""
    return hash_hex(result.encode("utf-8", "surrogatepass"))


def completion_signing_bytes(job_id: str, result_hash_hex: str) -> bytes:
    """What a miner signs: the canonical bytes of {"job_id", "result_hash"}."""
    return canonical({"job_id": job_id, "result_hash": result_hash_hex})


def sign_completion(key: NodeKey, job_id: str, result: str) -> str:
    """A miner's co-signature for completing job_id with result: base64url, no padding."""
    return b64url(key.sign(completion_signing_bytes(job_id, result_hash(result))))


def completion_signature_valid(public_key: bytes, job_id: str, result_hash_hex: str, sig_b64: Any) -> bool:
    try:
        sig = b64url_decode(sig_b64)
    except ValueError:
        return False
    return verify_signature(public_key, completion_signing_bytes(job_id, result_hash_hex), sig)


def miner_signature_block(public_key: bytes, sig_b64: str) -> dict[str, str]:
    """The receipt's `miner_signature` field."""
    return {"alg": "ed25519", "key_id": b64url(public_key), "sig": sig_b64}


def miner_check(receipt: Any) -> Triple | None:
    """The miner co-signature check a receipt asks for, or None if it has none or it is malformed."""
    if not isinstance(receipt, dict):
        return None
    block, digest, job_id = receipt.get("miner_signature"), receipt.get("result_hash"), receipt.get("job_id")
    if not isinstance(block, dict) or set(block) != {"alg", "key_id", "sig"} or block["alg"] != "ed25519":
        return None
    if not isinstance(digest, str) or not isinstance(job_id, str):
        return None
    try:
        return b64url_decode(block["key_id"]), completion_signing_bytes(job_id, digest), b64url_decode(block["sig"])
    except (ValueError, EncodingError):
        return None


def miner_signer(receipt: Any) -> bytes | None:
    """The miner key whose co-signature on this receipt verifies, or None (also when absent)."""
    check = miner_check(receipt)
    return check[0] if check is not None and verify_signature(*check) else None


# -- completions checked ahead -------------------------------------------------------------
# A follower has the signatures of the next block's completions checked on another core
# (node.sigcheck) and notes the outcome here under the transaction's hash, which commits to
# the whole receipt (a transaction's public form keeps it). Applying that transaction then
# takes the noted signers instead of checking again. Each note is taken once; the table is
# bounded and starts afresh when full.
Signers = tuple[bytes | None, bytes | None]
"""(receipt_signer(receipt), miner_signer(receipt))"""
CHECKED_LIMIT = 16_384
_checked: dict[str, Signers] = {}


def completion_signers(receipt: Any) -> Signers:
    return receipt_signer(receipt), miner_signer(receipt)


def note_checked_completion(tx_hash: str, signers: Signers) -> None:
    """Record what completion_signers found for the job.complete transaction tx_hash (hex)."""
    if len(_checked) >= CHECKED_LIMIT:
        _checked.clear()
    _checked[tx_hash] = signers


def take_checked_completion(tx_hash: str) -> Signers | None:
    return _checked.pop(tx_hash, None)
