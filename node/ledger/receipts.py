"""Receipts as the ledger answers for them: what verifying one says, and a job's receipts."""

from __future__ import annotations

from typing import Any

from chain.crypto import b64url_decode
from chain.errors import ValidationError
from chain.receipts import MINER_FIELDS, miner_refusal, receipt_refusal
from node.ledger import reads
from node.store import Store


def verify_receipt_document(store: Store, receipt: Any) -> dict[str, Any]:
    """Signature validity, whether the signer is a genesis authority, and where it is on chain."""
    if not isinstance(receipt, dict):
        raise ValidationError("the body must be a receipt object")
    refusal = receipt_refusal(receipt)
    claimed_key: bytes | None = None
    signature = receipt.get("signature")
    key_id = signature.get("key_id") if isinstance(signature, dict) else None
    if isinstance(key_id, str):
        try:
            claimed_key = b64url_decode(key_id)
        except ValueError:
            claimed_key = None
    authority = claimed_key is not None and claimed_key.hex() in store.genesis.authorities
    receipt_id = receipt.get("receipt_id")
    on_chain = False
    block_height: int | None = None
    if isinstance(receipt_id, str) and reads.get_receipt(store, receipt_id) == receipt:
        on_chain, block_height = True, reads.receipt_height(store, receipt_id)
    # A co-signed receipt (result_hash + miner_signature) is valid only if both signatures are.
    cosigned = any(name in receipt for name in MINER_FIELDS)
    miner_problem = miner_refusal(receipt) if cosigned else None
    reason = (
        refusal
        or (None if authority else "the receipt's key_id is not an authority of this chain's genesis")
        or (None if miner_problem is None else f"miner co-signature: {miner_problem}")
    )
    return {
        "receipt_id": receipt_id if isinstance(receipt_id, str) else None,
        "signature_valid": refusal is None,
        "signer_is_authority": bool(authority),
        "miner_signature_valid": miner_problem is None if cosigned else None,
        "valid": reason is None,
        "reason": reason,
        "on_chain": on_chain,
        "block_height": block_height,
    }
