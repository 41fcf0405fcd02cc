"""Receipts follow the AITBC receipt protocol and verify with plain PyNaCl."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.exceptions import BadSignatureError

from chain.receipts import (
    SignatureRefused,
    check_bare_receipt,
    count_units,
    miner_signature_block,
    miner_signer,
    parse_public_key,
    price_for,
    receipt_body,
    receipt_refusal,
    receipt_signer,
    result_hash,
    sign_completion,
    sign_receipt,
    signing_bytes,
    unwrap_receipt,
)
from tests.chain.devchain import AUTHORITY, OUTSIDER
from tests.vectors.aitbc_protocol import SAMPLE, reference_verify

JOB = {"job_id": "job-1", "client": "alice", "model": "llama3.2", "started_at": 1_767_225_603_000}


def _body(result: str = "one two three") -> dict[str, Any]:
    return receipt_body(
        receipt_id="rcpt-1",
        job=JOB,
        provider="gpu-1",
        result=result,
        completed_at_ms=1_767_225_604_999,
        price_per_unit=Decimal("0.000002"),
        coordinator_id="aitbc-test",
    )


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_receipt_body_carries_the_protocol_fields() -> None:
    assert _body() == {
        "receipt_id": "rcpt-1",
        "job_id": "job-1",
        "provider": "gpu-1",
        "client": "alice",
        "units": 3,
        "unit_type": "tokens",
        "price": 6e-06,
        "model": "llama3.2",
        "started_at": 1_767_225_603,
        "completed_at": 1_767_225_604,
        "version": "1.0",
        "duration_ms": 1_999,
        "coordinator_id": "aitbc-test",
    }


def test_signing_bytes_drop_signature_and_nulls_at_every_depth_sort_keys_and_escape_non_ascii() -> None:
    receipt = {
        "z": "café",
        "a": 1,
        "none": None,
        "price": 1e-05,
        "signature": {"sig": "x"},
        "m": [1, None, {"x": None, "y": [None]}],
    }
    assert signing_bytes(receipt) == b'{"a":1,"m":[1,{"y":[]}],"price":1e-05,"z":"caf\\u00e9"}'


def test_signing_bytes_equal_the_protocol_procedure_for_a_real_receipt() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    procedure = json.dumps(
        {k: v for k, v in receipt.items() if k != "signature" and v is not None},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    assert signing_bytes(receipt) == procedure
    assert signing_bytes(receipt) == signing_bytes(_body())


def test_receipt_signature_verifies_with_raw_pynacl_using_the_key_id() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    signature = receipt["signature"]
    assert signature["alg"] == "Ed25519"
    for field in ("key_id", "sig"):
        assert "=" not in signature[field]
        assert set(signature[field]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw_key = _b64url_decode(signature["key_id"])
    assert raw_key == AUTHORITY.public_key and len(raw_key) == 32
    raw_sig = _b64url_decode(signature["sig"])
    assert len(raw_sig) == 64
    message = json.dumps(
        {k: v for k, v in receipt.items() if k != "signature"}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()
    assert nacl.signing.VerifyKey(raw_key).verify(message, raw_sig) == message


def test_pynacl_refuses_a_receipt_changed_after_signing() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    key = nacl.signing.VerifyKey(_b64url_decode(receipt["signature"]["key_id"]))
    changed = signing_bytes({**receipt, "units": 4})
    with pytest.raises(BadSignatureError):
        key.verify(changed, _b64url_decode(receipt["signature"]["sig"]))


def test_receipt_signer_names_the_signing_key() -> None:
    assert receipt_signer(sign_receipt(_body(), AUTHORITY)) == AUTHORITY.public_key
    assert receipt_signer(sign_receipt(_body(), OUTSIDER)) == OUTSIDER.public_key


def test_receipt_signer_ignores_null_fields_as_the_protocol_does() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    assert receipt_signer({**receipt, "note": None}) == AUTHORITY.public_key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: {**r, "units": 4},
        lambda r: {**r, "extra": "x"},
        lambda r: {k: v for k, v in r.items() if k != "price"},
        lambda r: {k: v for k, v in r.items() if k != "signature"},
        lambda r: {**r, "signature": {**r["signature"], "alg": "rsa"}},
        lambda r: {**r, "signature": {**r["signature"], "key_id": OUTSIDER_KEY_ID}},
        lambda r: {**r, "signature": {**r["signature"], "key_id": 5}},
        lambda r: {**r, "signature": {**r["signature"], "sig": "!!!"}},
        lambda r: {**r, "signature": {**r["signature"], "sig": r["signature"]["sig"][:-4]}},
        lambda r: {**r, "signature": None},
        lambda r: {**r, "signature": "sig"},
        lambda r: [r],
        lambda r: None,
    ],
)
def test_receipt_signer_refuses_a_changed_or_malformed_receipt(mangle: Any) -> None:
    assert receipt_signer(mangle(sign_receipt(_body(), AUTHORITY))) is None


OUTSIDER_KEY_ID: str = base64.urlsafe_b64encode(OUTSIDER.public_key).rstrip(b"=").decode()


@pytest.mark.parametrize(("result", "units"), [("", 0), ("   ", 0), ("one", 1), ("a  b\tc\nd", 4), ("日本 語", 2)])
def test_units_are_whitespace_separated_words(result: str, units: int) -> None:
    assert count_units(result) == units


def test_price_rounds_half_even_to_eight_places() -> None:
    assert price_for(5, Decimal("0.000000015")) == 0.00000008  # 7.5e-8 -> 8e-8
    assert price_for(1, Decimal("0.000000025")) == 0.00000002  # 2.5e-8 -> 2e-8
    assert price_for(3, Decimal("0.000002")) == 0.000006
    assert price_for(0, Decimal("0.5")) == 0.0


@given(st.integers(0, 10**6), st.decimals(min_value=0, max_value=1, places=9, allow_nan=False))
def test_price_is_within_half_a_unit_of_the_eighth_place(units: int, per_unit: Decimal) -> None:
    price = price_for(units, per_unit)
    assert abs(Decimal(repr(price)) - units * per_unit) <= Decimal("0.000000005")


@given(st.text(max_size=200))
def test_any_result_yields_a_receipt_that_verifies(result: str) -> None:
    receipt = sign_receipt(_body(result), AUTHORITY)
    assert receipt_signer(receipt) == AUTHORITY.public_key
    assert signing_bytes(receipt).isascii()


# -- the AITBC receipt protocol: its reference procedure, its published sample ------------------


def test_the_reference_procedure_accepts_the_published_sample() -> None:
    assert reference_verify({**SAMPLE["payload"], "signature": SAMPLE["signature"]})


def test_new_receipts_pass_the_reference_procedure_and_legacy_ones_did_not() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    assert reference_verify(receipt)
    legacy = {**receipt, "signature": {**receipt["signature"], "alg": "ed25519"}}
    assert not reference_verify(legacy)
    assert receipt_signer(legacy) == AUTHORITY.public_key  # receipts sealed by 0.1.x still verify here


def test_cosigned_receipts_pass_the_reference_procedure() -> None:
    digest = result_hash("one two three")
    sig = sign_completion(OUTSIDER, "job-1", "one two three")
    receipt = sign_receipt(
        {**_body(), "result_hash": digest, "miner_signature": miner_signature_block(OUTSIDER.public_key, sig)},
        AUTHORITY,
    )
    assert receipt["miner_signature"]["alg"] == "Ed25519"
    assert reference_verify(receipt)
    assert miner_signer(receipt) == OUTSIDER.public_key
    legacy = {**receipt, "miner_signature": {**receipt["miner_signature"], "alg": "ed25519"}}
    assert miner_signer(legacy) == OUTSIDER.public_key


@given(st.text(max_size=64), st.booleans())
def test_receipts_never_carry_nulls_at_any_depth(result: str, cosigned: bool) -> None:
    body = _body(result)
    if cosigned:
        body.update(
            result_hash=result_hash(result),
            miner_signature=miner_signature_block(OUTSIDER.public_key, sign_completion(OUTSIDER, "job-1", result)),
        )
    receipt = sign_receipt(body, AUTHORITY)

    def nulls(value: Any) -> int:
        if isinstance(value, dict):
            return sum(nulls(v) for v in value.values())
        if isinstance(value, list):
            return sum(nulls(v) for v in value)
        return int(value is None)

    assert nulls(receipt) == 0


@pytest.mark.parametrize("alg", ["ED25519", "EdDSA", "", None, 5])
def test_any_other_alg_is_refused_with_a_reason_naming_it(alg: Any) -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    receipt["signature"]["alg"] = alg
    assert receipt_signer(receipt) is None
    assert receipt_refusal(receipt) == f"signature alg {alg!r} is not supported (expected 'Ed25519')"


def test_receipt_refusal_is_none_for_a_valid_receipt_and_names_a_bad_signature() -> None:
    receipt = sign_receipt(_body(), AUTHORITY)
    assert receipt_refusal(receipt) is None
    assert "does not verify" in str(receipt_refusal({**receipt, "units": 4}))


def test_sample_signing_bytes_are_its_published_canonical_form() -> None:
    assert signing_bytes(SAMPLE["payload"]) == SAMPLE["canonical"].encode("ascii")


def test_bare_check_accepts_the_published_sample_in_both_shapes() -> None:
    key = parse_public_key(SAMPLE["verify_key_hex"])
    check_bare_receipt(unwrap_receipt(SAMPLE), key)
    check_bare_receipt(unwrap_receipt({**SAMPLE["payload"], "signature": SAMPLE["signature"]}), key)
    assert parse_public_key(SAMPLE["signature"]["key_id"]) == key


@pytest.mark.parametrize("field", sorted(SAMPLE["payload"]))
def test_bare_check_refuses_the_sample_with_any_one_field_changed(field: str) -> None:
    value = SAMPLE["payload"][field]
    changed = value + 1 if isinstance(value, (int, float)) else value + "x"
    tampered = {**SAMPLE, "payload": {**SAMPLE["payload"], field: changed}}
    with pytest.raises(SignatureRefused, match="bad signature"):
        check_bare_receipt(unwrap_receipt(tampered), parse_public_key(SAMPLE["verify_key_hex"]))


def test_bare_check_names_a_key_mismatch_and_a_bad_alg() -> None:
    with pytest.raises(SignatureRefused, match="key mismatch"):
        check_bare_receipt(unwrap_receipt(SAMPLE), AUTHORITY.public_key)
    wrong_alg = {**SAMPLE, "signature": {**SAMPLE["signature"], "alg": "ed448"}}
    with pytest.raises(SignatureRefused, match="alg 'ed448' is not supported"):
        check_bare_receipt(unwrap_receipt(wrong_alg), parse_public_key(SAMPLE["verify_key_hex"]))


@pytest.mark.parametrize("text", ["", "00" * 31, "zz" * 32, "not-a-key", "A" * 44])
def test_parse_public_key_refuses_anything_but_32_bytes_in_hex_or_base64url(text: str) -> None:
    with pytest.raises(ValueError):
        parse_public_key(text)
