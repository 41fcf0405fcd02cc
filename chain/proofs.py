"""Receipt proof bundles and signed checkpoints: what anyone can verify offline with genesis.json.

A bundle ties a receipt to the chain: the job.complete transaction carrying it, that
transaction's RFC 9162 inclusion path to the block's tx_root, and the block header with
its proposer's signature. README.md ("Receipt proofs") specifies the format for verifiers
in other languages; `verify_bundle` is this project's implementation of that text.

A checkpoint is a signed note (C2SP signed-note / tlog-checkpoint): the origin (chain_id),
the number of blocks, and the Merkle root over all block hashes, signed by an authority.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.blocks import Block, BlockHeader
from chain.crypto import NodeKey, b64url_decode, hash_bytes, verify_signature
from chain.encoding import canonical, parse_strict
from chain.errors import EncodingError, ProofInvalid
from chain.genesis import Genesis
from chain.merkle import inclusion_proof, root_from_inclusion_proof
from chain.receipts import MINER_FIELDS, has_receipt_fields, miner_refusal, receipt_refusal

BUNDLE_FORMAT = "aitbc-receipt-proof/1"
BUNDLE_FIELDS = ("format", "chain_id", "transaction", "tx_index", "inclusion_path", "header", "header_signature")
HEX32_RE = re.compile(r"^[0-9a-f]{64}$")
HEX64_BYTES_RE = re.compile(r"^[0-9a-f]{128}$")


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a bundle proved."""

    receipt: dict[str, Any]
    height: int
    """The block that holds the receipt's transaction."""
    tx_index: int
    block_hash: str
    proposer: str
    """Hex key of the authority that sealed the block."""
    receipt_signer: str
    """Hex key of the authority that signed the receipt."""
    miner_key: str | None
    """Hex key of the miner whose co-signature verified, if the receipt is co-signed."""


def build_bundle(chain_id: str, block: Block, tx_index: int) -> dict[str, Any]:
    """The proof bundle for the receipt carried by block.transactions[tx_index]."""
    tx = block.transactions[tx_index]
    if tx.type != "job.complete":
        raise ValueError(f"transaction {tx_index} of block {block.height} carries no receipt")
    path = inclusion_proof([t.hash for t in block.transactions], tx_index)
    return {
        "format": BUNDLE_FORMAT,
        "chain_id": chain_id,
        "transaction": tx.public_encoded.decode("utf-8"),
        "tx_index": tx_index,
        "inclusion_path": [p.hex() for p in path],
        "header": block.header.to_dict(),
        "header_signature": block.signature,
    }


def _fail(message: str) -> ProofInvalid:
    return ProofInvalid(message)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_bundle(data: bytes) -> Any:
    """A bundle file's bytes as JSON: UTF-8, no duplicate keys, no NaN."""
    try:
        return parse_strict(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(f"bundle is not valid JSON: {exc}") from None


def verify_bundle(bundle: Any, genesis: Genesis) -> VerifiedReceipt:
    """Check everything a bundle claims; raise ProofInvalid naming the first check that fails."""
    authorities = genesis.authorities
    if not authorities:
        raise _fail("the genesis lists no authorities (use the node's effective genesis.json from its data dir)")
    if not isinstance(bundle, dict) or set(bundle) != set(BUNDLE_FIELDS):
        raise _fail(f"bundle must be an object with exactly the fields {', '.join(BUNDLE_FIELDS)}")
    if bundle["format"] != BUNDLE_FORMAT:
        raise _fail(f"bundle format must be {BUNDLE_FORMAT!r}")
    if bundle["chain_id"] != genesis.chain_id:
        raise _fail(f"bundle is for chain {bundle['chain_id']!r}, the genesis is for {genesis.chain_id!r}")

    # 1. the receipt, from the transaction that carries it
    tx_text = bundle["transaction"]
    if not isinstance(tx_text, str):
        raise _fail("transaction must be a string holding the transaction's canonical JSON")
    tx = parse_bundle(tx_text.encode("utf-8", "surrogatepass"))
    if not isinstance(tx, dict) or set(tx) != {"type", "payload", "timestamp"} or tx["type"] != "job.complete":
        raise _fail("transaction is not a job.complete transaction")
    payload = tx["payload"]
    receipt = payload.get("receipt") if isinstance(payload, dict) else None
    cosigned = isinstance(receipt, dict) and any(name in receipt for name in MINER_FIELDS)
    if not isinstance(receipt, dict) or not has_receipt_fields(receipt, cosigned):
        raise _fail("the transaction carries no receipt with the receipt fields")
    if payload.get("job_id") != receipt["job_id"]:
        raise _fail("the transaction completes another job than the receipt names")

    # 2. the authority's receipt signature
    refusal = receipt_refusal(receipt)
    if refusal is not None:
        raise _fail(f"receipt signature refused: {refusal}")
    signer = b64url_decode(receipt["signature"]["key_id"])
    if signer.hex() not in authorities:
        raise _fail("receipt is signed by a key that is not an authority of this genesis")

    # 3. the miner's co-signature, when the miner registered a key
    miner_key: bytes | None = None
    if cosigned:
        digest = payload.get("result")
        if not isinstance(digest, dict) or set(digest) != {"blake3"} or digest["blake3"] != receipt["result_hash"]:
            raise _fail("receipt result_hash is not the digest of the transaction's result")
        problem = miner_refusal(receipt)
        if problem is not None:
            raise _fail(f"miner co-signature refused: {problem}")
        miner_key = b64url_decode(receipt["miner_signature"]["key_id"])

    # 4. the inclusion path from the transaction to tx_root
    try:
        header = BlockHeader.from_dict(bundle["header"])
    except EncodingError as exc:
        raise _fail(f"header is malformed: {exc.detail}") from None
    for name in ("prev_hash", "tx_root", "state_root", "proposer"):
        value = getattr(header, name)
        if not HEX32_RE.match(value):
            raise _fail(f"header {name} must be 64 lowercase hex characters")
    index, path = bundle["tx_index"], bundle["inclusion_path"]
    if not _is_uint(index) or index >= header.tx_count:
        raise _fail("tx_index must be an integer below the header's tx_count")
    if not isinstance(path, list) or not all(isinstance(p, str) and HEX32_RE.match(p) for p in path):
        raise _fail("inclusion_path must be a list of 64-character lowercase hex hashes")
    tx_hash = hash_bytes(tx_text.encode("utf-8", "surrogatepass"))
    try:
        root = root_from_inclusion_proof(tx_hash, index, header.tx_count, [bytes.fromhex(p) for p in path])
    except ValueError as exc:
        raise _fail(f"inclusion path does not lead to tx_root: {exc}") from None
    if root.hex() != header.tx_root:
        raise _fail("inclusion path does not lead to the header's tx_root")

    # 5. the header hash and the proposer's signature
    signature = bundle["header_signature"]
    if header.proposer not in authorities:
        raise _fail("block proposer is not an authority of this genesis")
    if not isinstance(signature, str) or not HEX64_BYTES_RE.match(signature):
        raise _fail("header_signature must be 128 lowercase hex characters")
    if not verify_signature(bytes.fromhex(header.proposer), header.hash_bytes, bytes.fromhex(signature)):
        raise _fail("proposer signature over the header hash does not verify")
    return VerifiedReceipt(
        receipt=receipt,
        height=header.height,
        tx_index=index,
        block_hash=header.hash,
        proposer=header.proposer,
        receipt_signer=signer.hex(),
        miner_key=None if miner_key is None else miner_key.hex(),
    )


# -- checkpoints: signed notes ------------------------------------------------------------

SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space, as C2SP signed-note specifies


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint."""

    origin: str
    """The chain_id."""
    size: int
    """How many blocks the tree covers (blocks 0 .. size-1)."""
    root: bytes
    """Merkle root (RFC 9162, BLAKE3) over the blocks' 32-byte hashes."""
    signer: str
    """Hex key of the authority whose signature verified."""


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The signed text: origin, size and base64 root, one per line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def note_key_hash(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key ID for an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public_key).digest()[:4]


def sign_checkpoint(origin: str, size: int, root: bytes, key: NodeKey) -> str:
    """The checkpoint as a signed note, signed by key under the name origin."""
    body = checkpoint_body(origin, size, root)
    blob = note_key_hash(origin, key.public_key) + key.sign(body.encode("utf-8"))
    return f"{body}\n{SIGNATURE_PREFIX}{origin} {base64.b64encode(blob).decode('ascii')}\n"


def open_checkpoint(note: Any, trusted_keys: Sequence[str]) -> Checkpoint:
    """Parse a signed note and check that one of trusted_keys (hex) signed it."""
    if not isinstance(note, str) or "\n\n" not in note:
        raise _fail("checkpoint is not a signed note (text, a blank line, signature lines)")
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise _fail("checkpoint body must hold origin, size and root")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise _fail("checkpoint size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise _fail("checkpoint root is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_text:
        raise _fail("checkpoint root is not a base64 32-byte hash")
    keys = {note_key_hash(origin, bytes.fromhex(k)): k for k in trusted_keys}
    for line in signatures.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            continue
        try:
            name, blob_text = line[len(SIGNATURE_PREFIX) :].split(" ")
            blob = base64.b64decode(blob_text, validate=True)
        except (ValueError, binascii.Error):
            continue
        key_hex = keys.get(blob[:4])
        if (
            name == origin
            and key_hex is not None
            and verify_signature(bytes.fromhex(key_hex), body.encode("utf-8"), blob[4:])
        ):
            return Checkpoint(origin=origin, size=int(size_text), root=root, signer=key_hex)
    raise _fail("checkpoint carries no valid signature by a trusted key")


def note_signer(note: Any) -> str | None:
    """The first signature line's key hash, base64 — for naming an untrusted signer."""
    if not isinstance(note, str):
        return None
    for line in note.split("\n"):
        if line.startswith(SIGNATURE_PREFIX):
            return line[len(SIGNATURE_PREFIX) :]
    return None


def canonical_bundle(bundle: dict[str, Any]) -> bytes:
    """The bytes a bundle is served and saved as."""
    return canonical(bundle)
