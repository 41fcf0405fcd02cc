"""Blocks: a sealed chain verifies on a follower, and any tampering is refused."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.blocks import HEADER_FIELDS, Block, BlockHeader, seal_header, tx_root
from chain.crypto import NodeKey
from chain.encoding import canonical
from chain.errors import EncodingError, InvalidBlock, LedgerError
from chain.state import EmptyState, WorkingState
from chain.transactions import TX_TYPES, Transaction
from chain.transition import GENESIS_STATE_ROOT, apply_block, genesis_block
from tests.chain.devchain import AUTHORITY, OUTSIDER, T0, Chain, job_chain, key_hash, make_genesis, tx

CHAIN = job_chain()
"""Block 1: accounts, a miner and a job (non-ASCII prompt, floats); block 2: claim and completion."""


def follow(block: Block, height: int | None = None) -> WorkingState:
    """Apply `block` the way a follower holding blocks 0..height-1 would."""
    h = block.height if height is None else height
    return apply_block(CHAIN.base_before(h), CHAIN.blocks[h - 1].header, block, CHAIN.genesis)


def resealed(block: Block, key: NodeKey = AUTHORITY, **header_changes: Any) -> Block:
    """The block with its header changed and signed again, as a misbehaving authority would."""
    header = replace(block.header, **header_changes)
    return replace(block, header=header, signature=seal_header(header, key))


def with_transactions(block: Block, transactions: list[Transaction]) -> Block:
    """New transactions under a header re-rooted and re-signed by the authority."""
    header = replace(block.header, tx_root=tx_root(transactions), tx_count=len(transactions))
    return Block(header, seal_header(header, AUTHORITY), tuple(transactions))


def refused(block: Block, height: int | None = None) -> InvalidBlock:
    with pytest.raises(InvalidBlock) as info:
        follow(block, height)
    return info.value


# -- the valid chain ----------------------------------------------------------------


def test_sealed_blocks_verify_on_a_follower_and_derive_the_authoritys_state() -> None:
    for h in (1, 2):
        derived = follow(CHAIN.blocks[h])
        state = CHAIN.base_before(h)
        state.apply(derived.changes())
        assert state.data == CHAIN.states[h]


def test_block_round_trips_through_its_encoding() -> None:
    for block in CHAIN.blocks:
        again = Block.decode(block.encode())
        assert again == block
        assert again.hash == block.hash
        assert again.encode() == block.encode()


def test_blocks_link_by_hash_and_height() -> None:
    for prev, block in itertools.pairwise(CHAIN.blocks):
        assert block.header.prev_hash == prev.hash
        assert block.height == prev.height + 1
        assert block.header.proposer == AUTHORITY.public_hex
    assert CHAIN.blocks[0].header.prev_hash == CHAIN.genesis.hash


def test_genesis_block_is_derived_from_genesis_alone() -> None:
    genesis = make_genesis()
    first, state_a = genesis_block(genesis, EmptyState())
    second, state_b = genesis_block(genesis, EmptyState())
    assert first == second and first.encode() == second.encode()
    assert state_a.changes() == state_b.changes()
    assert first.header.height == 0 and first.signature == "" and first.header.proposer == ""
    assert first.header.tx_count == len(genesis.accounts) == 1
    assert first.header.state_root != GENESIS_STATE_ROOT
    other, _ = genesis_block(make_genesis(chain_id="aitbc-other"), EmptyState())
    assert other.hash != first.hash


def test_header_hash_is_blake3_of_the_canonical_header() -> None:
    from chain.crypto import hash_bytes

    header = CHAIN.blocks[1].header
    assert header.hash == hash_bytes(canonical(header.to_dict())).hex()
    assert list(json.loads(canonical(header.to_dict()))) == sorted(HEADER_FIELDS)


# -- tampering with the header ------------------------------------------------------


def _altered(name: str, value: Any) -> Any:
    if isinstance(value, int):
        return value + 1
    if value == "":
        return "00" * 32
    return ("0" if value[0] != "0" else "1") + value[1:]


@pytest.mark.parametrize("height", [1, 2])
@pytest.mark.parametrize("name", HEADER_FIELDS)
def test_tampering_with_any_header_field_is_refused(name: str, height: int) -> None:
    block = CHAIN.blocks[height]
    header = replace(block.header, **{name: _altered(name, getattr(block.header, name))})
    refused(replace(block, header=header), height)


@pytest.mark.parametrize("name", HEADER_FIELDS)
def test_tampered_header_field_decodes_but_is_refused(name: str) -> None:
    block = CHAIN.blocks[2]
    raw = block.to_dict()
    raw["header"][name] = _altered(name, raw["header"][name])
    decoded = Block.decode(canonical(raw))
    assert decoded.hash != block.hash
    refused(decoded, 2)


def test_height_gap_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[1]
    assert refused(resealed(block, height=2), 1).error_code == "bad_height"
    assert refused(resealed(block, height=0), 1).error_code == "bad_height"


def test_replaying_an_old_block_is_refused() -> None:
    # Block 1 offered again on top of block 2.
    with pytest.raises(InvalidBlock) as info:
        apply_block(CHAIN.base_before(3), CHAIN.blocks[2].header, CHAIN.blocks[1], CHAIN.genesis)
    assert info.value.error_code == "bad_height"


def test_wrong_prev_hash_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[2]
    assert refused(resealed(block, prev_hash=CHAIN.blocks[0].hash), 2).error_code == "bad_link"
    assert refused(resealed(block, prev_hash=block.header.prev_hash.upper()), 2).error_code == "bad_link"


def test_timestamp_going_backwards_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[2]
    prev_time = CHAIN.blocks[1].header.timestamp
    assert refused(resealed(block, timestamp=prev_time - 1), 2).error_code == "bad_timestamp"


def test_timestamp_before_its_transactions_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[2]
    latest_tx = max(t.timestamp for t in block.transactions)
    err = refused(resealed(block, timestamp=latest_tx - 1), 2)
    assert err.error_code == "bad_transaction"


def test_wrong_state_root_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[2]
    assert refused(resealed(block, state_root=CHAIN.blocks[1].header.state_root), 2).error_code == "bad_state_root"
    assert refused(resealed(block, state_root="00" * 32), 2).error_code == "bad_state_root"


def test_wrong_tx_root_or_count_is_refused_even_when_signed() -> None:
    block = CHAIN.blocks[2]
    assert refused(resealed(block, tx_root=CHAIN.blocks[1].header.tx_root), 2).error_code == "bad_tx_root"
    assert refused(resealed(block, tx_count=3), 2).error_code == "bad_tx_count"


def test_empty_block_is_refused() -> None:
    block = CHAIN.blocks[2]
    empty = resealed(replace(block, transactions=()), tx_root=tx_root([]), tx_count=0)
    assert refused(empty, 2).error_code == "bad_tx_count"


def test_block_applied_to_the_wrong_state_is_refused() -> None:
    # Block 2 (claim, complete) on top of block 1's header but genesis state: the job is missing.
    with pytest.raises(InvalidBlock) as info:
        apply_block(CHAIN.base_before(1), CHAIN.blocks[1].header, CHAIN.blocks[2], CHAIN.genesis)
    assert info.value.error_code == "bad_transaction"


# -- the seal ------------------------------------------------------------------------


def test_block_sealed_by_a_non_authority_is_refused() -> None:
    block = CHAIN.blocks[1]
    forged = resealed(block, OUTSIDER, proposer=OUTSIDER.public_hex)
    assert "not an authority" in refused(forged, 1).detail


def test_chain_sealed_by_a_non_authority_is_refused_from_its_first_block() -> None:
    rogue = Chain(make_genesis(), OUTSIDER)
    block = rogue.seal([tx("account.create", T0 + 5, name="eve", role="admin", key_hash=key_hash("eve"))], T0 + 5)
    with pytest.raises(InvalidBlock, match="not an authority"):
        apply_block(rogue.base_before(1), rogue.blocks[0].header, block, rogue.genesis)


def test_block_naming_the_authority_but_signed_by_another_key_is_refused() -> None:
    block = CHAIN.blocks[1]
    forged = replace(block, signature=seal_header(block.header, OUTSIDER))
    assert "does not verify" in refused(forged, 1).detail


def test_signature_of_another_block_is_refused() -> None:
    assert "does not verify" in refused(replace(CHAIN.blocks[2], signature=CHAIN.blocks[1].signature), 2).detail


@pytest.mark.parametrize("position", range(128))
def test_changing_any_hex_digit_of_the_signature_is_refused(position: int) -> None:
    block = CHAIN.blocks[2]
    sig = block.signature
    digit = "0123456789abcdef"[(int(sig[position], 16) + 1) % 16]
    refused(replace(block, signature=sig[:position] + digit + sig[position + 1 :]), 2)


def _upper_first_letter(hex_text: str) -> str:
    i = next(i for i, c in enumerate(hex_text) if c in "abcdef")
    return hex_text[:i] + hex_text[i].upper() + hex_text[i + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "",
        lambda s: s[:-2],
        lambda s: s + "00",
        lambda s: s.upper(),
        lambda s: _upper_first_letter(s),
        lambda s: s[:2] + " " + s[2:],
        lambda s: "zz" + s[2:],
    ],
    ids=["empty", "truncated", "extended", "upper-case", "one-upper-case-byte", "space", "not-hex"],
)
def test_malformed_or_respelled_signature_is_refused(mangle: Any) -> None:
    block = CHAIN.blocks[2]
    changed = replace(block, signature=mangle(block.signature))
    assert changed.encode() != block.encode()
    refused(changed, 2)


# -- tampering with transactions -------------------------------------------------------


def _tx_variants(t: Transaction) -> list[Transaction]:
    other_type = next(x for x in TX_TYPES if x != t.type)
    first_key = sorted(t.payload)[0]
    return [
        replace(t, type=other_type),
        replace(t, timestamp=t.timestamp + 1),
        replace(t, timestamp=t.timestamp - 1),
        replace(t, payload={**t.payload, "extra": True}),
        replace(t, payload={k: v for k, v in t.payload.items() if k != first_key}),
        replace(t, payload={**t.payload, first_key: "x"}),
    ]


TX_CASES = [(h, i, j) for h in (1, 2) for i in range(len(CHAIN.blocks[h].transactions)) for j in range(6)]


@pytest.mark.parametrize(("height", "index", "variant"), TX_CASES)
def test_tampering_with_any_transaction_field_is_refused(height: int, index: int, variant: int) -> None:
    block = CHAIN.blocks[height]
    txs = list(block.transactions)
    txs[index] = _tx_variants(txs[index])[variant]
    tampered = replace(block, transactions=tuple(txs))
    assert refused(tampered, height).error_code == "bad_tx_root"


def test_tampered_receipt_inside_a_transaction_is_refused() -> None:
    block = CHAIN.blocks[2]
    claim, complete = block.transactions
    receipt = {**complete.payload["receipt"], "units": 999}
    bad = replace(complete, payload={**complete.payload, "receipt": receipt})
    assert refused(replace(block, transactions=(claim, bad)), 2).error_code == "bad_tx_root"
    # Even re-rooted and re-signed by the authority, the transition refuses the receipt.
    signed = with_transactions(block, [claim, bad])
    err = refused(signed, 2)
    assert err.error_code == "bad_transaction" and "receipt" in err.detail


@pytest.mark.parametrize("height", [1, 2])
def test_reordering_transactions_is_refused(height: int) -> None:
    block = CHAIN.blocks[height]
    reordered = tuple(reversed(block.transactions))
    assert refused(replace(block, transactions=reordered), height).error_code == "bad_tx_root"


@pytest.mark.parametrize("height", [1, 2])
def test_dropping_a_transaction_is_refused(height: int) -> None:
    block = CHAIN.blocks[height]
    for i in range(len(block.transactions)):
        txs = block.transactions[:i] + block.transactions[i + 1 :]
        assert refused(replace(block, transactions=txs), height).error_code == "bad_tx_count"


@pytest.mark.parametrize("height", [1, 2])
def test_adding_a_transaction_is_refused(height: int) -> None:
    block = CHAIN.blocks[height]
    extra = tx("account.create", block.header.timestamp, name="mallory", role="admin", key_hash=key_hash("m"))
    for txs in (block.transactions + (extra,), (extra,) + block.transactions, block.transactions * 2):
        assert refused(replace(block, transactions=txs), height).error_code == "bad_tx_count"


def test_adding_a_transaction_with_a_fixed_count_is_refused() -> None:
    block = CHAIN.blocks[1]
    extra = tx("account.create", block.header.timestamp, name="mallory", role="admin", key_hash=key_hash("m"))
    txs = block.transactions + (extra,)
    tampered = replace(block, header=replace(block.header, tx_count=len(txs)), transactions=txs)
    assert refused(tampered, 1).error_code == "bad_tx_root"


def test_dropping_a_transaction_even_when_signed_is_refused_by_the_state_root() -> None:
    block = CHAIN.blocks[1]
    signed = with_transactions(block, list(block.transactions[:-1]))
    assert refused(signed, 1).error_code == "bad_state_root"


def test_reordering_into_an_invalid_order_even_when_signed_is_refused() -> None:
    block = CHAIN.blocks[1]
    signed = with_transactions(block, list(reversed(block.transactions)))
    assert refused(signed, 1).error_code == "bad_transaction"


def test_duplicated_transaction_even_when_signed_is_refused() -> None:
    block = CHAIN.blocks[1]
    signed = with_transactions(block, [*block.transactions, block.transactions[0]])
    assert refused(signed, 1).error_code == "bad_transaction"


# -- decoding ------------------------------------------------------------------------


def _raw_block() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(CHAIN.blocks[2].encode())
    return raw


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["transactions"][0].update(type="job.steal"),
        lambda r: r["transactions"][0].update(timestamp=-1),
        lambda r: r["transactions"][0].update(timestamp="1"),
        lambda r: r["transactions"][0].update(timestamp=True),
        lambda r: r["transactions"][0].update(payload=[]),
        lambda r: r["transactions"][0].update(extra=1),
        lambda r: r["transactions"][0].pop("payload"),
        lambda r: r["header"].update(height=-1),
        lambda r: r["header"].update(height=1.0),
        lambda r: r["header"].update(tx_count=False),
        lambda r: r["header"].update(state_root=None),
        lambda r: r["header"].pop("proposer"),
        lambda r: r["header"].update(nonce=0),
        lambda r: r.update(signature=None),
        lambda r: r.update(transactions={}),
        lambda r: r.update(extra=1),
        lambda r: r.pop("signature"),
    ],
)
def test_structurally_wrong_block_fails_to_decode(mutate: Any) -> None:
    raw = _raw_block()
    mutate(raw)
    with pytest.raises(EncodingError):
        Block.decode(json.dumps(raw).encode())


@pytest.mark.parametrize("data", [b"", b"[]", b"null", b"{}", b"\xff", b'{"header":NaN}'])
def test_non_block_bytes_fail_to_decode(data: bytes) -> None:
    with pytest.raises(EncodingError):
        Block.decode(data)


def test_header_from_dict_rejects_missing_fields() -> None:
    raw = CHAIN.blocks[1].header.to_dict()
    del raw["tx_root"]
    with pytest.raises(EncodingError):
        BlockHeader.from_dict(raw)


# -- any single changed byte ------------------------------------------------------------


def _verdict(height: int, altered: bytes) -> str:
    """'undecodable', 'refused', or 'same' (bytes spelled differently, same block).

    Fails the test when a changed block verifies as a different block."""
    original = CHAIN.blocks[height]
    try:
        decoded = Block.decode(altered)
    except LedgerError:
        return "undecodable"
    try:
        follow(decoded, height)
    except LedgerError:
        return "refused"
    # It verified: it must be the very same block, only not canonically spelled
    # (node/verify refuses stored bytes that are not canonical).
    assert decoded == original, altered
    assert decoded.encode() == original.encode() != altered
    return "same"


@given(st.data())
def test_any_single_changed_byte_never_verifies_as_another_block(data: st.DataObject) -> None:
    height = data.draw(st.sampled_from([1, 2]), label="height")
    raw = CHAIN.blocks[height].encode()
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[pos]), label="value")
    _verdict(height, raw[:pos] + bytes([value]) + raw[pos + 1 :])


LOOKALIKES = b'0123456789abcdefABCDEFeE+-. \t"\\/:,{}[]nul'


@pytest.mark.parametrize("height", [1, 2])
def test_every_lookalike_byte_change_is_refused_or_spells_the_same_block(height: int) -> None:
    # Exhaustive over positions, with the replacements most likely to keep the JSON
    # valid: hex digits in both cases, number syntax, JSON punctuation.
    raw = CHAIN.blocks[height].encode()
    verdicts: dict[str, int] = {}
    for pos in range(len(raw)):
        swapcase = bytes([raw[pos]]).swapcase()
        for value in set(LOOKALIKES + swapcase) - {raw[pos]}:
            v = _verdict(height, raw[:pos] + bytes([value]) + raw[pos + 1 :])
            verdicts[v] = verdicts.get(v, 0) + 1
    assert verdicts["refused"] > 0 and verdicts["undecodable"] > 0


def test_block_encoding_built_from_cached_transactions_equals_canonical_encoding() -> None:
    from chain.crypto import NodeKey
    from chain.encoding import canonical
    from chain.state import EmptyState, WorkingState
    from chain.transactions import Transaction
    from chain.transition import genesis_block, seal_block
    from tests.support import make_genesis

    key = NodeKey(bytes(range(32)))
    genesis = make_genesis(key.public_hex)
    block0, state0 = genesis_block(genesis, EmptyState())
    txs = [
        Transaction(
            "account.create", {"name": f"n{i}", "role": "client", "key_hash": f"{i:064x}"}, genesis.genesis_time_ms + i
        )
        for i in range(3)
    ]
    state = WorkingState(state0)
    from chain.context import ApplyContext
    from chain.transition import apply_tx

    for transaction in txs:
        apply_tx(state, transaction, ApplyContext(time_ms=genesis.genesis_time_ms + 10, genesis=genesis))
    block = seal_block(block0.header, txs, state, genesis.genesis_time_ms + 10, key)
    assert block.encode() == canonical(block.to_dict())
    assert block0.encode() == canonical(block0.to_dict())
