"""BLAKE3 hashing and Ed25519 signatures (PyNaCl), with the encodings the chain uses."""

from __future__ import annotations

import base64

import blake3
from nacl.bindings import crypto_sign, crypto_sign_BYTES, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def hash_bytes(data: bytes) -> bytes:
    """BLAKE3 digest, 32 bytes."""
    return blake3.blake3(data).digest()


def hash_hex(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of b64url; raises ValueError on malformed input."""
    if not isinstance(text, str):
        raise ValueError("expected a base64url string")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64url: {exc}") from exc
    if b64url(data) != text:
        # One spelling per value: stray characters or unused trailing bits are refused.
        raise ValueError("base64url is not in canonical form")
    return data


class NodeKey:
    """An Ed25519 key pair held by a node (authority)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._signing = SigningKey(seed)
        self.public_key: bytes = bytes(self._signing.verify_key)
        self.key_id = b64url(self.public_key)
        """The public key as receipts name it (base64url)."""
        self._secret = crypto_sign_seed_keypair(seed)[1]
        """libsodium's 64-byte secret key, for signing without PyNaCl's SignedMessage (~10% of a signature)."""

    @classmethod
    def from_seed_hex(cls, text: str) -> NodeKey:
        return cls(bytes.fromhex(text.strip()))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    def sign(self, message: bytes) -> bytes:
        signature: bytes = crypto_sign(message, self._secret)[:crypto_sign_BYTES]
        return signature


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when signature is a valid Ed25519 signature of message by public_key."""
    if len(public_key) != 32 or len(signature) != 64 or not isinstance(message, bytes):
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
