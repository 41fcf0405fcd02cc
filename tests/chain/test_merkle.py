"""chain.merkle against a reference written straight from RFC 9162 section 2.1 (BLAKE3)."""

from __future__ import annotations

from typing import Literal

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.merkle import inclusion_proof, merkle_root, root_from_inclusion_proof, verify_inclusion

SIZES = [0, 1, 2, 3, 5, 6, 7, 9]
Side = Literal["left", "right"]


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_root(d: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 2.1.1."""
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = _k(n)
    return _h(b"\x01" + reference_root(d[:k]) + reference_root(d[k:]))


def reference_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, leaf side first."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return reference_path(m, d[:k]) + [reference_root(d[k:])]
    return reference_path(m - k, d[k:]) + [reference_root(d[:k])]


def path_sides(m: int, n: int) -> list[Side]:
    """On which side of the running hash each proof element sits, leaf first."""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path_sides(m, k) + ["right"]
    return path_sides(m - k, n - k) + ["left"]


def leaves(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(n)]


def test_empty_tree_root_is_blake3_of_empty_string() -> None:
    assert merkle_root([]).hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_single_leaf_root_is_prefixed_leaf_hash() -> None:
    assert merkle_root([b"abc"]) == _h(b"\x00abc")


@pytest.mark.parametrize("n", SIZES)
def test_root_matches_rfc9162_reference(n: int) -> None:
    assert merkle_root(leaves(n)) == reference_root(leaves(n))


def test_roots_of_different_sizes_all_differ() -> None:
    roots = {merkle_root(leaves(n)) for n in SIZES}
    assert len(roots) == len(SIZES)


def test_leaf_and_node_prefixes_separate_a_leaf_from_a_subtree() -> None:
    # A leaf whose content is two child hashes must not collide with the parent node.
    a, b = leaves(2)
    two = merkle_root([a, b])
    forged = merkle_root([_h(b"\x00" + a) + _h(b"\x00" + b)])
    assert forged != two


def test_proof_for_an_empty_tree_or_out_of_range_index_is_refused() -> None:
    with pytest.raises(IndexError):
        inclusion_proof([], 0)
    with pytest.raises(IndexError):
        inclusion_proof(leaves(3), 3)
    with pytest.raises(IndexError):
        inclusion_proof(leaves(3), -1)
    assert not verify_inclusion(b"x", 0, 0, [], merkle_root([]))


CASES = [(n, m) for n in SIZES if n for m in range(n)]


@pytest.mark.parametrize(("n", "m"), CASES)
def test_inclusion_proof_is_the_rfc9162_audit_path_and_verifies(n: int, m: int) -> None:
    d = leaves(n)
    proof = inclusion_proof(d, m)
    assert proof == reference_path(m, d)
    assert root_from_inclusion_proof(d[m], m, n, proof) == reference_root(d)
    assert verify_inclusion(d[m], m, n, proof, merkle_root(d))


@pytest.mark.parametrize(("n", "m"), CASES)
def test_inclusion_proof_fails_with_any_other_index(n: int, m: int) -> None:
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    for other in [-1, *range(n), n, n + 1]:
        if other != m:
            assert not verify_inclusion(d[m], other, n, proof, root), other


@pytest.mark.parametrize(("n", "m"), CASES)
def test_inclusion_proof_fails_with_a_wrong_leaf(n: int, m: int) -> None:
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    wrong = [d[i] for i in range(n) if i != m] + [d[m] + b"!", d[m][:-1], b""]
    for entry in wrong:
        assert not verify_inclusion(entry, m, n, proof, root), entry


@pytest.mark.parametrize(("n", "m"), CASES)
def test_inclusion_proof_fails_with_a_wrong_size_unless_the_path_shape_is_identical(n: int, m: int) -> None:
    # RFC 9162 verification takes the size from a signed tree head; the path alone only
    # fixes the shape. A size giving the same left/right sequence recomputes the same
    # root (e.g. leaf 0 of 5 vs 6); every other size must fail.
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    refused = 0
    for size in range(0, 20):
        if size == n:
            continue
        same_shape = m < size and path_sides(m, size) == path_sides(m, n)
        assert verify_inclusion(d[m], m, size, proof, root) is same_shape, size
        refused += not same_shape
    assert refused > 0


@pytest.mark.parametrize(("n", "m"), [(n, m) for n, m in CASES if n > 1])
def test_truncated_proof_fails(n: int, m: int) -> None:
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    assert not verify_inclusion(d[m], m, n, proof[:-1], root)
    assert not verify_inclusion(d[m], m, n, proof[1:], root)
    assert not verify_inclusion(d[m], m, n, [], root)


@pytest.mark.parametrize(("n", "m"), CASES)
def test_extended_proof_fails(n: int, m: int) -> None:
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    extra = _h(b"extra")
    assert not verify_inclusion(d[m], m, n, [*proof, extra], root)
    assert not verify_inclusion(d[m], m, n, [extra, *proof], root)
    assert not verify_inclusion(d[m], m, n, [*proof, root], root)


@pytest.mark.parametrize(("n", "m"), [(n, m) for n, m in CASES if n > 1])
def test_any_flipped_byte_in_any_proof_element_fails(n: int, m: int) -> None:
    d = leaves(n)
    proof, root = inclusion_proof(d, m), merkle_root(d)
    for i, element in enumerate(proof):
        for pos in range(len(element)):
            for mask in (0x01, 0x80, 0xFF):
                bad = bytearray(element)
                bad[pos] ^= mask
                tampered = [*proof[:i], bytes(bad), *proof[i + 1 :]]
                assert not verify_inclusion(d[m], m, n, tampered, root), (i, pos, mask)


@pytest.mark.parametrize("n", [n for n in SIZES if n])
def test_proof_fails_against_another_trees_root(n: int) -> None:
    d = leaves(n)
    other = merkle_root([*d[:-1], b"changed"])
    for m in range(n - 1):
        assert not verify_inclusion(d[m], m, n, inclusion_proof(d, m), other)


@given(st.data(), st.lists(st.binary(max_size=40), min_size=1, max_size=64))
def test_random_trees_match_the_reference_and_every_proof_verifies_only_untampered(
    data: st.DataObject, entries: list[bytes]
) -> None:
    n = len(entries)
    root = merkle_root(entries)
    assert root == reference_root(entries)
    m = data.draw(st.integers(0, n - 1), label="index")
    proof = inclusion_proof(entries, m)
    assert proof == reference_path(m, entries)
    assert verify_inclusion(entries[m], m, n, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        pos = data.draw(st.integers(0, 31), label="byte")
        mask = data.draw(st.integers(1, 255), label="mask")
        bad = bytearray(proof[i])
        bad[pos] ^= mask
        assert not verify_inclusion(entries[m], m, n, [*proof[:i], bytes(bad), *proof[i + 1 :]], root)
        assert not verify_inclusion(entries[m], m, n, proof[:-1], root)
    assert not verify_inclusion(entries[m], m, n, [*proof, root], root)
    if entries.count(entries[m]) == 1:
        others = [i for i in range(n) if i != m]
        if others:
            assert not verify_inclusion(entries[m], data.draw(st.sampled_from(others)), n, proof, root)
