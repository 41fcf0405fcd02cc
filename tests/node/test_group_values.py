"""How a group keeps blocks in etcd (node.group.etcd_value, block_from_etcd): compressed with zlib,
read back whole, plain canonical JSON as earlier members wrote it still read, and anything else refused
with EncodingError (a standby halts on it rather than apply a block it cannot read)."""

from __future__ import annotations

import zlib

import pytest

import node.group as group_module
from chain.blocks import Block
from chain.crypto import NodeKey, hash_hex
from chain.errors import EncodingError
from chain.transactions import Transaction
from node.group import block_from_etcd, etcd_value
from node.producer import apply_and_seal
from node.store import Store


@pytest.fixture
def block(store: Store, node_key: NodeKey) -> Block:
    txs = [
        Transaction("account.create", {"name": f"a{i}", "role": "client", "key_hash": hash_hex(b"%d" % i)}, 1_000 + i)
        for i in range(10)
    ]
    _, sealed, _ = apply_and_seal(store, store.tip(), store.genesis, node_key, txs)
    assert sealed is not None
    return sealed


def test_a_block_is_kept_compressed_and_read_back_whole(block: Block) -> None:
    value = etcd_value(block)
    assert len(value) < len(block.encode()) / 2
    assert block_from_etcd(value) == block
    assert block_from_etcd(value).encode() == block.encode()


def test_a_plain_block_as_earlier_members_kept_it_is_still_read(block: Block) -> None:
    assert block_from_etcd(block.encode()) == block


@pytest.mark.parametrize("mangle", [lambda v: v[:-6], lambda v: b"\x78\x01garbage", lambda v: b""])
def test_a_value_that_is_neither_is_refused(block: Block, mangle: object) -> None:
    with pytest.raises(EncodingError):
        block_from_etcd(mangle(etcd_value(block)))  # type: ignore[operator]  # each mangle takes and gives bytes


def test_a_value_that_inflates_beyond_the_bound_is_refused_before_it_is_inflated_whole(
    block: Block, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "MAX_ETCD_BLOCK_BYTES", 1024)
    bomb = zlib.compress(b"{" + b" " * 1_000_000, 1)
    with pytest.raises(EncodingError, match="inflates beyond 1024 bytes"):
        block_from_etcd(bomb)
    assert len(block.encode()) > 1024
    with pytest.raises(EncodingError):
        block_from_etcd(etcd_value(block))
