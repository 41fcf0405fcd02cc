"""Hashing, key pairs, signatures and base64url."""

from __future__ import annotations

from typing import Any

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from chain.crypto import HASH_SIZE, NodeKey, b64url, b64url_decode, hash_bytes, hash_hex, verify_signature


def test_hash_is_32_byte_blake3() -> None:
    assert hash_bytes(b"abc") == blake3.blake3(b"abc").digest()
    assert len(hash_bytes(b"")) == HASH_SIZE
    assert hash_hex(b"abc") == hash_bytes(b"abc").hex()


def test_node_key_is_deterministic_from_its_seed() -> None:
    a, b = NodeKey(bytes(32)), NodeKey.from_seed_hex("00" * 32 + "\n")
    assert a.public_key == b.public_key and a.seed == bytes(32)
    assert a.public_hex == a.public_key.hex() and len(a.public_key) == 32
    assert NodeKey(bytes([1]) * 32).public_key != a.public_key


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_node_key_refuses_a_seed_that_is_not_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError):
        NodeKey(seed)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=2048))
def test_node_key_signs_as_pynacl_does(seed: bytes, message: bytes) -> None:
    """NodeKey signs through libsodium directly; the signature is PyNaCl's, byte for byte."""
    assert NodeKey(seed).sign(message) == SigningKey(seed).sign(message).signature


def test_signature_verifies_only_for_its_key_and_message() -> None:
    key, other = NodeKey(bytes(32)), NodeKey(bytes([7]) * 32)
    sig = key.sign(b"message")
    assert len(sig) == 64
    assert verify_signature(key.public_key, b"message", sig)
    assert not verify_signature(other.public_key, b"message", sig)
    assert not verify_signature(key.public_key, b"messagE", sig)
    assert not verify_signature(key.public_key, b"message", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify_signature(key.public_key[:31], b"message", sig)
    assert not verify_signature(key.public_key, b"message", sig[:63])
    assert not verify_signature(bytes(32), b"message", sig)


@given(st.binary(max_size=100))
def test_b64url_round_trips_without_padding(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", [5, None, b"AAAA", "é"])
def test_b64url_decode_refuses_non_text(text: object) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)  # type: ignore[arg-type]  # not a str, on purpose


# -- the memo of checks known to be valid -------------------------------------------------
def _counting_verify(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from nacl.signing import VerifyKey

    calls: list[int] = []
    real = VerifyKey.verify

    def verify(self: VerifyKey, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VerifyKey, "verify", verify)
    return calls


def test_checks_of_signatures_made_elsewhere_are_always_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from chain import crypto

    other = crypto.NodeKey(bytes([7]) * 32)
    signature = other._signing.sign(b"message").signature
    calls = _counting_verify(monkeypatch)
    assert crypto.verify_signature(other.public_key, b"message", signature)
    assert crypto.verify_signature(other.public_key, b"message", signature)
    assert len(calls) == 2  # verifying remembers nothing
    assert not crypto.verify_signature(other.public_key, b"other message", signature)
    assert not crypto.verify_signature(other.public_key, b"other message", signature)
    assert len(calls) == 4


def test_a_signature_this_process_made_is_checked_like_any_other(monkeypatch: pytest.MonkeyPatch) -> None:
    from chain import crypto

    key = crypto.NodeKey(bytes([9]) * 32)
    signature = key.sign(b"a receipt")
    calls = _counting_verify(monkeypatch)
    assert crypto.verify_signature(key.public_key, b"a receipt", signature)
    assert not crypto.verify_signature(key.public_key, b"a receipt!", signature)
    assert len(calls) == 2  # no memory of what it signed: the answer depends on the arguments alone
