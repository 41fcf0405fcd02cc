"""Receipts: the authority's signed statement that a miner did a job, for a price.

Signing bytes follow the AITBC receipt protocol: drop `signature`, drop null values at
every depth (lists included), JSON with sorted keys, separators `,` and `:`, ASCII-escaped.
Ed25519 over those bytes; `alg` is "Ed25519", spelled exactly so (the AITBC reference
verifier compares the string); `sig` and `key_id` are base64url without padding; `key_id`
is the raw public key.

Receipt forms, all of which verify forever:
- the protocol form (written since 0.2.0): the legacy fields plus `version`, `duration_ms`
  and `coordinator_id`, signed with `alg` "Ed25519";
- the legacy form (0.1.x): the ten RECEIPT_FIELDS, signed with `alg` "ed25519".
Either may carry a miner co-signature (MINER_FIELDS).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeGuard

from chain.context import Signers
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
"""The fields of every receipt (the legacy form has exactly these, and `signature`)."""
PROTOCOL_FIELDS = ("version", "duration_ms", "coordinator_id")
"""The AITBC receipt protocol's optional fields that the node knows; on every receipt since 0.2.0.
(`prompt_hash` and `artifact_hash` are left out: receipts are public, and a plain hash of a
short prompt or result lets anyone confirm a guess.)"""
RECEIPT_VERSION = "1.0"
MINER_FIELDS = ("result_hash", "miner_signature")
"""Extension fields of a receipt whose miner registered a miner_pubkey (a co-signed receipt)."""
SIGNATURE_ALG = "Ed25519"
"""The protocol's algorithm name, written in every signature the node makes."""
LEGACY_SIGNATURE_ALG = "ed25519"
"""How 0.1.x spelled it; receipts sealed then still verify, and nothing writes it any more."""
ACCEPTED_ALGS = (SIGNATURE_ALG, LEGACY_SIGNATURE_ALG)


def body_fields(receipt: dict[str, Any]) -> tuple[str, ...]:
    """The body fields of the form this receipt claims (without signature and co-signature)."""
    return RECEIPT_FIELDS + PROTOCOL_FIELDS if "version" in receipt else RECEIPT_FIELDS


def has_receipt_fields(receipt: Any, cosigned: bool) -> TypeGuard[dict[str, Any]]:
    """receipt has exactly the fields of one receipt form (co-signed or not), and a signature."""
    if not isinstance(receipt, dict):
        return False
    expected = {*body_fields(receipt), "signature", *(MINER_FIELDS if cosigned else ())}
    return receipt.keys() == expected


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
    coordinator_id: str,
) -> dict[str, Any]:
    """The unsigned receipt, in the protocol form, for a job completed with the given result.
    coordinator_id is the chain id; duration_ms runs from the claim to the completion."""
    units = count_units(result)
    return {
        "version": RECEIPT_VERSION,
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
        "duration_ms": completed_at_ms - job["started_at"],
        "coordinator_id": coordinator_id,
    }


_signing_json = sorted_compact_json(ensure_ascii=True, allow_nan=True)


def without_nulls(value: Any) -> Any:
    """value with every null removed: dict entries whose value is null, and null list items, at
    every depth (as the AITBC reference's canonical_json does)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


def signing_bytes(receipt: dict[str, Any]) -> bytes:
    """The receipt protocol's canonical bytes: everything but `signature`, nulls dropped."""
    body = {k: without_nulls(v) for k, v in receipt.items() if k != "signature" and v is not None}
    return _signing_json(body).encode("ascii")


def sign_receipt(body: dict[str, Any], key: NodeKey) -> dict[str, Any]:
    signature = {"alg": SIGNATURE_ALG, "key_id": key.key_id, "sig": b64url(key.sign(signing_bytes(body)))}
    return {**body, "signature": signature}


Triple = tuple[bytes, bytes, bytes]
"""(public key, message, signature): one Ed25519 check."""


class SignatureRefused(ValueError):
    """A signature block that cannot be checked; the message says why."""


_SIGNATURE_KEYS = frozenset({"alg", "key_id", "sig"})


def _signature_parts(block: Any, what: str, *, exact: bool) -> tuple[bytes, bytes]:
    """(public key, signature) from a signature block {alg, key_id, sig}, or SignatureRefused.
    exact: no other keys either (the co-signature block, which the node always builds itself)."""
    if not isinstance(block, dict) or not (
        block.keys() == _SIGNATURE_KEYS if exact else _SIGNATURE_KEYS <= block.keys()
    ):
        raise SignatureRefused(f"{what} must be an object with {'exactly ' if exact else ''}alg, key_id and sig")
    alg = block["alg"]
    if alg not in ACCEPTED_ALGS:
        raise SignatureRefused(f"{what} alg {alg!r} is not supported (expected {SIGNATURE_ALG!r})")
    try:
        return b64url_decode(block["key_id"]), b64url_decode(block["sig"])
    except (ValueError, TypeError) as exc:
        raise SignatureRefused(f"{what} key_id and sig must be base64url: {exc}") from None


def receipt_check(receipt: Any) -> Triple:
    """The authority signature check a receipt asks for; SignatureRefused if it is malformed."""
    if not isinstance(receipt, dict):
        raise SignatureRefused("a receipt must be an object")
    public_key, sig = _signature_parts(receipt.get("signature"), "signature", exact=False)
    try:
        message = signing_bytes(receipt)
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError) as exc:
        raise SignatureRefused(f"receipt cannot be encoded for signing: {exc}") from None
    return public_key, message, sig


Verdict = tuple[bytes | None, str | None]
"""(the key whose signature verifies, None) or (None, why it does not)."""


def _verdict(check: Callable[[Any], Triple], receipt: Any, what: str) -> Verdict:
    try:
        public_key, message, sig = check(receipt)
    except SignatureRefused as exc:
        return None, str(exc)
    if verify_signature(public_key, message, sig):
        return public_key, None
    return None, f"{what} does not verify"


def receipt_refusal(receipt: Any) -> str | None:
    """Why the receipt's authority signature fails (bad alg, malformed, bad signature), or None."""
    return _verdict(receipt_check, receipt, "signature over the receipt's canonical bytes")[1]


def receipt_signer(receipt: Any) -> bytes | None:
    """The raw public key that validly signed this receipt, or None if the signature fails."""
    return _verdict(receipt_check, receipt, "signature")[0]


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
    return {"alg": SIGNATURE_ALG, "key_id": b64url(public_key), "sig": sig_b64}


def miner_check(receipt: Any) -> Triple:
    """The miner co-signature check a receipt asks for; SignatureRefused if absent or malformed."""
    if not isinstance(receipt, dict):
        raise SignatureRefused("a receipt must be an object")
    public_key, sig = _signature_parts(receipt.get("miner_signature"), "miner_signature", exact=True)
    digest, job_id = receipt.get("result_hash"), receipt.get("job_id")
    if not isinstance(digest, str) or not isinstance(job_id, str):
        raise SignatureRefused("a co-signed receipt needs a string job_id and result_hash")
    try:
        return public_key, completion_signing_bytes(job_id, digest), sig
    except EncodingError as exc:
        raise SignatureRefused(exc.detail) from None


def miner_refusal(receipt: Any) -> str | None:
    """Why the receipt's miner co-signature fails, or None if it verifies."""
    return _verdict(miner_check, receipt, "miner_signature over {job_id, result_hash}")[1]


def miner_signer(receipt: Any) -> bytes | None:
    """The miner key whose co-signature on this receipt verifies, or None (also when absent)."""
    return _verdict(miner_check, receipt, "miner_signature")[0]


# -- both signers at once -------------------------------------------------------------------
def completion_signers(receipt: Any) -> Signers:
    """(receipt_signer, miner_signer): what job.complete checks, computed ahead by whoever can."""
    return receipt_signer(receipt), miner_signer(receipt)


# -- bare receipts: any signer, no chain ------------------------------------------------------


def parse_public_key(text: str) -> bytes:
    """An Ed25519 public key given as 64 hex characters or as a base64url key_id (43 characters)."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else b64url_decode(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("a public key is 64 hex characters or a 43-character base64url key_id (32 bytes)")
    return key


def unwrap_receipt(document: Any) -> dict[str, Any]:
    """The signed receipt in a document: a bare receipt, or the protocol sample's wrapper
    ({"payload": <receipt without signature>, "signature": {...}}, other keys ignored)."""
    if not isinstance(document, dict):
        raise SignatureRefused("the document must be a JSON object: a receipt, or {payload, signature}")
    payload = document.get("payload")
    if isinstance(payload, dict) and "receipt_id" not in document:
        if "signature" in payload:
            raise SignatureRefused("the wrapper's payload must not carry its own signature")
        return {**payload, "signature": document.get("signature")}
    return document


def check_bare_receipt(receipt: dict[str, Any], public_key: bytes) -> None:
    """The receipt's signature is valid Ed25519 by public_key over the protocol's canonical bytes.
    Raises SignatureRefused naming the reason: bad alg, key mismatch, or bad signature."""
    claimed, message, sig = receipt_check(receipt)
    if claimed != public_key:
        raise SignatureRefused(
            f"key mismatch: the receipt's key_id is {b64url(claimed)}, not the given key {b64url(public_key)}"
        )
    if not verify_signature(public_key, message, sig):
        raise SignatureRefused("bad signature: it does not verify over the receipt's canonical bytes")
