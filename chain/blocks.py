"""Blocks: a header committing to transactions and state, sealed by an authority."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.crypto import NodeKey, hash_bytes, verify_signature
from chain.encoding import canonical, decode
from chain.errors import EncodingError, InvalidBlock
from chain.lazy import once
from chain.merkle import merkle_root
from chain.transactions import Transaction

HEADER_FIELDS = ("height", "prev_hash", "timestamp", "tx_root", "state_root", "tx_count", "proposer")


@dataclass(frozen=True)
class BlockHeader:
    """What a block's hash and signature commit to."""

    height: int
    """0 for the genesis block, then +1 per block."""
    prev_hash: str
    """Hex hash of the previous header; for block 0, the genesis document's hash."""
    timestamp: int
    """Unix milliseconds; never earlier than the previous block's."""
    tx_root: str
    """Hex RFC 9162 Merkle root (BLAKE3) over the transaction hashes."""
    state_root: str
    """Hex commitment to the state after this block (see chain.state)."""
    tx_count: int
    """Number of transactions in the block."""
    proposer: str
    """Hex Ed25519 public key of the sealing authority; empty for block 0."""

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HEADER_FIELDS}

    @once
    def hash_bytes(self) -> bytes:
        """BLAKE3 of the canonical header (computed once: sealing, storing, indexing and
        announcing a block each need it)."""
        return hash_bytes(canonical(self.to_dict()))

    @once
    def hash(self) -> str:
        return self.hash_bytes.hex()

    @classmethod
    def from_dict(cls, raw: Any) -> BlockHeader:
        if not isinstance(raw, dict) or set(raw) != set(HEADER_FIELDS):
            raise EncodingError(f"a block header has exactly the fields {', '.join(HEADER_FIELDS)}")
        for name in ("height", "timestamp", "tx_count"):
            value = raw[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise EncodingError(f"header field {name} must be a non-negative integer")
        for name in ("prev_hash", "tx_root", "state_root", "proposer"):
            if not isinstance(raw[name], str):
                raise EncodingError(f"header field {name} must be a string")
        return cls(**raw)


@dataclass(frozen=True)
class Block:
    """A sealed block: header, the proposer's signature over the header hash, transactions."""

    header: BlockHeader
    signature: str
    """Hex Ed25519 signature of header.hash_bytes by header.proposer; empty for block 0."""
    transactions: tuple[Transaction, ...]

    @property
    def hash(self) -> str:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def to_dict(self) -> dict[str, Any]:
        return {
            "header": self.header.to_dict(),
            "signature": self.signature,
            "transactions": [tx.to_dict() for tx in self.transactions],
        }

    def encode(self) -> bytes:
        """canonical(self.to_dict()), built from each transaction's cached encoding: canonical
        JSON is compositional (sorted keys: header, signature, transactions)."""
        return b"".join(
            (
                b'{"header":',
                canonical(self.header.to_dict()),
                b',"signature":',
                canonical(self.signature),
                b',"transactions":[',
                b",".join(tx.encoded for tx in self.transactions),
                b"]}",
            )
        )

    @classmethod
    def from_dict(cls, raw: Any) -> Block:
        if not isinstance(raw, dict) or set(raw) != {"header", "signature", "transactions"}:
            raise EncodingError("a block has exactly header, signature and transactions")
        if not isinstance(raw["signature"], str) or not isinstance(raw["transactions"], list):
            raise EncodingError("block signature must be a string and transactions a list")
        return cls(
            header=BlockHeader.from_dict(raw["header"]),
            signature=raw["signature"],
            transactions=tuple(Transaction.from_dict(t) for t in raw["transactions"]),
        )

    @classmethod
    def decode(cls, data: bytes) -> Block:
        return cls.from_dict(decode(data))


def tx_root(transactions: Sequence[Transaction]) -> str:
    return merkle_root([tx.hash for tx in transactions]).hex()


def seal_header(header: BlockHeader, key: NodeKey) -> str:
    """The proposer's signature over the header hash, hex."""
    return key.sign(header.hash_bytes).hex()


def check_seal(block: Block, authorities: Sequence[str]) -> None:
    """Raise InvalidBlock unless the block is signed by one of the authorities."""
    header = block.header
    if header.proposer not in authorities:
        raise InvalidBlock(
            f"block {header.height}: proposer {header.proposer[:16]}… is not an authority", error_code="bad_proposer"
        )
    try:
        signature = bytes.fromhex(block.signature)
        proposer = bytes.fromhex(header.proposer)
    except ValueError:
        raise InvalidBlock(
            f"block {header.height}: signature or proposer is not hex", error_code="bad_signature"
        ) from None
    if block.signature != signature.hex():
        # bytes.fromhex also reads upper case and spaces; only one spelling may verify,
        # or a block's bytes could change while it still verifies as the same block.
        raise InvalidBlock(f"block {header.height}: signature is not lowercase hex", error_code="bad_signature")
    if not verify_signature(proposer, header.hash_bytes, signature):
        raise InvalidBlock(f"block {header.height}: proposer signature does not verify", error_code="bad_signature")
