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
        _remember(_check_digest(self.public_key, message, signature))  # this node checks its own receipts next
        return signature


# -- signatures known to be valid ----------------------------------------------------
# A bounded memo of the signatures this process made, each kept as the BLAKE3 digest of key,
# signature and message (fixed-length key and signature first, so the digest names one
# triple). A signature made with the key verifies, so a hit answers what a fresh check would;
# it spares the authority re-checking a receipt it has just signed. Membership tests, adds and
# clear are each atomic under the GIL.
KNOWN_VALID_LIMIT = 65_536
"""At most this many digests (about 6 MB); the memo starts afresh when full."""
_known_valid: set[bytes] = set()


def _check_digest(public_key: bytes, message: bytes, signature: bytes) -> bytes:
    return blake3.blake3(public_key + signature + message).digest()


def _remember(digest: bytes) -> None:
    if len(_known_valid) >= KNOWN_VALID_LIMIT:
        _known_valid.clear()
    _known_valid.add(digest)


def forget_known_valid() -> None:
    """Empty the memo (a benchmark or a test that must see every signature checked afresh)."""
    _known_valid.clear()


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when signature is a valid Ed25519 signature of message by public_key."""
    if len(public_key) != 32 or len(signature) != 64 or not isinstance(message, bytes):
        return False
    if _known_valid and _check_digest(public_key, message, signature) in _known_valid:
        return True
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
