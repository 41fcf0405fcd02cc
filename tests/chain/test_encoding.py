"""chain.encoding: the one way a record becomes bytes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.encoding import canonical, decode
from chain.errors import EncodingError, LedgerError

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def test_known_record_has_pinned_bytes() -> None:
    record = {"b": 1, "a": [True, None, 1.5, "é ☕"], "c": {"z": 'x\n"', "y": -2}, "": 0}
    assert canonical(record) == (b'{"":0,"a":[true,null,1.5,"\xc3\xa9 \xe2\x98\x95"],"b":1,"c":{"y":-2,"z":"x\\n\\""}}')


def test_keys_are_sorted_at_every_depth_and_separators_are_compact() -> None:
    out = canonical({"z": {"b": [1, 2], "a": {"d": 1, "c": 2}}, "a": 0})
    assert out == b'{"a":0,"z":{"a":{"c":2,"d":1},"b":[1,2]}}'
    assert b" " not in out


def test_non_ascii_text_is_kept_as_utf8_not_escaped() -> None:
    out = canonical({"name": "Zoë 日本 🚀"})
    assert out == '{"name":"Zoë 日本 🚀"}'.encode()
    assert b"\\u" not in out


def test_control_characters_are_escaped() -> None:
    assert canonical("a\x00\tb") == b'"a\\u0000\\tb"'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, math.nan], {"a": {"b": math.inf}}])
def test_nan_and_infinity_are_refused(value: Any) -> None:
    with pytest.raises(EncodingError) as info:
        canonical(value)
    assert info.value.error_code == "invalid_encoding"


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(EncodingError):
        canonical({"prompt": "\ud800"})


def test_encoding_error_belongs_to_the_ledger_hierarchy() -> None:
    assert issubclass(EncodingError, LedgerError)


@pytest.mark.parametrize(
    "data",
    [b"NaN", b"[Infinity]", b'{"a":-Infinity}', b"\xff\xfe", b"{", b"", b'{"a":1}x', b"'a'"],
)
def test_decode_refuses_bytes_that_are_not_finite_json(data: bytes) -> None:
    with pytest.raises(EncodingError):
        decode(data)


def test_decode_reads_what_canonical_wrote() -> None:
    assert decode(b'{"a":[1,2.5,"\xc3\xa9"],"b":null}') == {"a": [1, 2.5, "é"], "b": None}


@given(json_values)
def test_decode_of_canonical_round_trips(value: Any) -> None:
    assert decode(canonical(value)) == value


@given(json_values)
def test_canonical_is_a_fixed_point(value: Any) -> None:
    once = canonical(value)
    assert canonical(decode(once)) == once
    once.decode("utf-8")  # always valid UTF-8


@given(
    st.dictionaries(st.text(max_size=8), json_values, min_size=2, max_size=8).flatmap(
        lambda d: st.tuples(st.just(d), st.permutations(list(d.items())))
    )
)
def test_equal_dicts_inserted_in_different_orders_encode_identically(pair: tuple[dict[str, Any], list[Any]]) -> None:
    original, shuffled_items = pair
    shuffled = dict(shuffled_items)
    assert shuffled == original
    assert canonical(shuffled) == canonical(original)
    assert canonical({"outer": [shuffled]}) == canonical({"outer": [original]})


def test_int_float_and_bool_encode_differently() -> None:
    assert len({canonical(1), canonical(1.0), canonical(True)}) == 3


# The encoders built once (chain.encoding.sorted_compact_json) must spell every value exactly
# as json.dumps does: the canonical form and the receipt protocol's signing bytes are both
# defined by json.dumps. Wide floats, big integers, any text and any nesting are compared.
wide_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e-300, max_value=1e-300)
    | st.floats(min_value=1e15, max_value=1e17)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.text()
    | st.text(st.characters(max_codepoint=0x3F))
    | st.sampled_from(["null", ":1e5", ",0.00001", "[2e+16", "\b\f\x7f\u2028\U0001f600\ue000"])
)
wide_values = st.recursive(
    wide_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(wide_values)
def test_canonical_spells_every_value_as_json_dumps_does(value: Any) -> None:
    import json

    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        want = expected.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(EncodingError):
            canonical(value)
        return
    assert canonical(value) == want


# Any value at all, NaN and Infinity at any depth, tuples, big integers and keys of every kind
# included: canonical() either refuses it or spells it exactly as json.dumps does.
values_with_any_float = st.recursive(
    wide_scalars | st.floats() | st.integers(min_value=-(2**70), max_value=2**70),
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.booleans() | st.none(), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values_with_any_float)
def test_canonical_refuses_or_spells_any_value_as_json_dumps_does(value: Any) -> None:
    import json

    try:
        want = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (ValueError, TypeError, UnicodeEncodeError):
        with pytest.raises(EncodingError):
            canonical(value)
        return
    assert canonical(value) == want


@given(st.dictionaries(st.text(max_size=8), values_with_any_float, max_size=8))
def test_receipt_signing_bytes_are_json_dumps_ascii_for_any_receipt(receipt: dict[str, Any]) -> None:
    import json

    from chain.receipts import signing_bytes
    from tests.vectors.aitbc_protocol import remove_none

    body = remove_none({k: v for k, v in receipt.items() if k != "signature"})
    try:
        want = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    except TypeError:  # keys of several kinds cannot be sorted
        with pytest.raises(TypeError):
            signing_bytes(receipt)
        return
    assert signing_bytes(receipt) == want


@given(wide_values | st.floats())
def test_the_ascii_encoder_spells_every_value_as_json_dumps_does(value: Any) -> None:
    import json

    from chain.encoding import sorted_compact_json

    ascii_json = sorted_compact_json(ensure_ascii=True, allow_nan=True)
    assert ascii_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def test_a_value_that_contains_itself_is_refused_cleanly() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodingError):
        canonical(loop)


def test_non_string_keys_and_unencodable_values_are_refused_or_spelled_as_json_dumps_does() -> None:
    assert canonical({2: "b", 1: "a"}) == b'{"1":"a","2":"b"}'
    with pytest.raises(EncodingError):
        canonical({"x": object()})
    with pytest.raises(EncodingError):
        canonical({(1, 2): "tuple key"})


# Transactions assemble their canonical and public encodings from one encoding of each
# payload value (chain.transactions.Transaction._texts); they must equal canonical() of the
# whole dicts, for any payload, private fields or not.
@given(
    st.dictionaries(
        st.sampled_from(["prompt", "result", "job_id", "receipt", "a", "zz", "Ω", "result_"]) | st.text(max_size=6),
        wide_values,
        max_size=7,
    ),
    st.sampled_from(["job.submit", "job.complete", "account.create"]),
    st.integers(min_value=0, max_value=2**63),
)
def test_transaction_encodings_equal_canonical_of_the_dicts(
    payload: dict[str, Any], tx_type: str, timestamp: int
) -> None:
    from chain.transactions import Transaction, redact

    tx = Transaction(tx_type, payload, timestamp)
    full = {"type": tx_type, "payload": payload, "timestamp": timestamp}
    public = {"type": tx_type, "payload": redact(payload), "timestamp": timestamp}
    for attr, record in (("encoded", full), ("public_encoded", public)):
        try:
            expected = canonical(record)
        except EncodingError:
            with pytest.raises(EncodingError):
                getattr(tx, attr)
            continue
        assert getattr(tx, attr) == expected


def test_a_payload_with_non_string_keys_is_encoded_as_json_dumps_does() -> None:
    from chain.transactions import Transaction

    tx = Transaction("job.submit", {2: "y", 1: "x"}, 5)  # type: ignore[dict-item]  # keys that are not str, on purpose
    assert tx.encoded == canonical({"type": "job.submit", "payload": {2: "y", 1: "x"}, "timestamp": 5})
    assert tx.encoded == b'{"payload":{"1":"x","2":"y"},"timestamp":5,"type":"job.submit"}'
    mixed = Transaction("job.submit", {1: "x", "prompt": "p"}, 5)  # type: ignore[dict-item]  # keys that are not str, on purpose
    with pytest.raises(EncodingError):
        mixed.encoded  # noqa: B018


@given(st.text())
def test_json_string_spells_text_as_canonical_does(text: str) -> None:
    from chain.encoding import canonical_text, json_string

    assert json_string(text) == canonical_text(text)
