"""RFC 9162 consistency proofs, and proofs built from perfect-subtree hashes (as the store keeps them)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.merkle import (
    consistency_path,
    consistency_proof,
    inclusion_path,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    perfect_nodes_for_append,
    range_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 33]


def entries(n: int) -> list[bytes]:
    return [f"block-{i}".encode() for i in range(n)]


class PerfectStore:
    """Perfect-subtree hashes kept the way node/store.py keeps them: written once per append."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def append(self, entry: bytes) -> None:
        for level, index, h in perfect_nodes_for_append(self.size, leaf_hash(entry), self.perfect):
            self.nodes[(level, index)] = h
        self.size += 1

    def perfect(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def grown(n: int) -> PerfectStore:
    tree = PerfectStore()
    for e in entries(n):
        tree.append(e)
    return tree


def test_rfc_9162_worked_example_shape_for_7_leaves() -> None:
    # RFC 9162 2.1.5: the proof between the 3-leaf and 7-leaf trees is [c, d, g, l].
    d = entries(7)
    a, b, c, dd, e, f, g = (leaf_hash(x) for x in d)
    k, l_ = node_hash(e, f), node_hash(node_hash(a, b), node_hash(c, dd))
    assert consistency_proof(d, 3) == [c, dd, node_hash(a, b), node_hash(node_hash(e, f), g)]
    assert consistency_proof(d, 4) == [node_hash(k, g)]
    assert consistency_proof(d, 6) == [k, g, l_]


@pytest.mark.parametrize("new", SIZES)
def test_every_older_size_is_proven_consistent_with_every_newer_size(new: int) -> None:
    d = entries(new)
    new_root = merkle_root(d)
    for old in range(1, new + 1):
        proof = consistency_proof(d, old)
        assert verify_consistency(old, new, merkle_root(d[:old]), new_root, proof), (old, new)


@pytest.mark.parametrize("new", [2, 3, 5, 7, 9, 17])
def test_a_tampered_consistency_proof_is_rejected(new: int) -> None:
    d = entries(new)
    new_root = merkle_root(d)
    for old in range(1, new):
        old_root = merkle_root(d[:old])
        proof = consistency_proof(d, old)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not verify_consistency(old, new, old_root, new_root, bad)
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(old, new, old_root, new_root, [*proof, proof[-1]])
        assert not verify_consistency(old, new, old_root, new_root, [])


def test_a_rewritten_history_is_not_consistent() -> None:
    d = entries(9)
    forged = [*d[:3], b"rewritten", *d[4:]]
    proof = consistency_proof(forged, 5)
    assert not verify_consistency(5, 9, merkle_root(d[:5]), merkle_root(forged), proof)
    # ... and the honest log's old root cannot be proven against the forged one either way.
    assert not verify_consistency(5, 9, merkle_root(d[:5]), merkle_root(forged), consistency_proof(d, 5))


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    d = entries(5)
    root = merkle_root(d)
    assert consistency_proof(d, 5) == []
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, merkle_root(d[:4]), [])
    assert not verify_consistency(5, 5, root, root, [root])


def test_sizes_out_of_order_or_zero_have_no_proof() -> None:
    with pytest.raises(ValueError):
        consistency_proof(entries(3), 0)
    with pytest.raises(ValueError):
        consistency_proof(entries(3), 4)
    assert not verify_consistency(0, 3, b"", merkle_root(entries(3)), [])
    assert not verify_consistency(4, 3, merkle_root(entries(4)), merkle_root(entries(3)), [])


@pytest.mark.parametrize("n", SIZES)
def test_roots_and_proofs_from_perfect_subtrees_equal_those_from_all_leaves(n: int) -> None:
    tree = grown(n)
    d = entries(n)
    for size in range(1, n + 1):
        assert tree_root(tree.perfect, size) == merkle_root(d[:size])
        mth = lambda lo, hi: range_hash(tree.perfect, lo, hi)  # noqa: E731
        assert consistency_path(mth, size, n) == consistency_proof(d, size)
    for index in range(n):
        path = inclusion_path(lambda lo, hi: range_hash(tree.perfect, lo, hi), index, n)
        assert path == inclusion_proof(d, index)
        assert verify_inclusion(d[index], index, n, path, merkle_root(d))


def test_appending_a_leaf_writes_one_node_per_completed_subtree() -> None:
    tree = PerfectStore()
    written = []
    for e in entries(8):
        written.append(len(perfect_nodes_for_append(tree.size, leaf_hash(e), tree.perfect)))
        tree.append(e)
    assert written == [1, 2, 1, 3, 1, 2, 1, 4]
    assert tree_root(PerfectStore().perfect, 0) == merkle_root([])


@given(st.integers(1, 70), st.integers(1, 70))
def test_consistency_holds_for_any_pair_of_sizes(a: int, b: int) -> None:
    old, new = min(a, b), max(a, b)
    tree = grown(new)
    mth = lambda lo, hi: range_hash(tree.perfect, lo, hi)  # noqa: E731
    proof = consistency_path(mth, old, new)
    assert verify_consistency(old, new, tree_root(tree.perfect, old), tree_root(tree.perfect, new), proof)
