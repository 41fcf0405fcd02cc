"""The AITBC receipt protocol as its reference code applies it, written out independently of
chain/ so that tests compare the node against the protocol, not against itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.signing
from nacl.exceptions import BadSignatureError

SAMPLE: dict[str, Any] = json.loads((Path(__file__).parent / "aitbc-receipt-sample.json").read_text())
"""The signed sample published with the AITBC receipt protocol (a verbatim copy)."""


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def remove_none(value: Any) -> Any:
    """The reference's canonical_json step: nulls go at every depth, lists included."""
    if isinstance(value, dict):
        return {k: remove_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [remove_none(v) for v in value if v is not None]
    return value


def reference_verify(receipt: dict[str, Any]) -> bool:
    """What AITBC's SDK does with each receipt it fetches (verify_receipt): the payload is the
    receipt without `signature` and `attestations`; its ReceiptVerifier compares `alg` with
    "Ed25519" exactly, drops nulls at every depth, and checks Ed25519 over sorted compact JSON."""
    signature = receipt.get("signature") or {}
    if signature.get("alg") != "Ed25519":
        return False
    payload = remove_none({k: v for k, v in receipt.items() if k not in {"signature", "attestations"}})
    message = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    try:
        nacl.signing.VerifyKey(b64url_decode(signature["key_id"])).verify(message, b64url_decode(signature["sig"]))
    except BadSignatureError:
        return False
    return True
