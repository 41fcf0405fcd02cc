"""RFC 9162 (Certificate Transparency v2) Merkle tree, with BLAKE3 in place of SHA-256.

MTH({}) = H(""), MTH({d0}) = H(0x00 || d0), MTH(D[n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
where k is the largest power of two smaller than n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chain.crypto import hash_bytes

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    return hash_bytes(LEAF_PREFIX + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return hash_bytes(NODE_PREFIX + left + right)


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def merkle_root(entries: Sequence[bytes]) -> bytes:
    """Merkle tree hash of the entries (each entry is hashed as a leaf)."""
    if not entries:
        return hash_bytes(b"")
    return _root_of_hashes([leaf_hash(e) for e in entries])


def inclusion_proof(entries: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path PATH(index, D[n]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < len(entries):
        raise IndexError(f"leaf index {index} outside a tree of {len(entries)}")
    return inclusion_path(_list_subtrees([leaf_hash(e) for e in entries]), index, len(entries))


def _list_subtrees(leaves: Sequence[bytes]) -> SubtreeHash:
    return lambda lo, hi: _root_of_hashes(leaves[lo:hi])


# -- proofs over any tree whose subtree hashes can be looked up ------------------------
#
# A store keeps only the hashes of perfect subtrees (2**level leaves starting at a
# multiple of 2**level), so a root or a proof costs O(log n) lookups, not O(n) hashing.

SubtreeHash = Callable[[int, int], bytes]
"""MTH(D[lo:hi]) for a subtree of the tree (lo aligned to a power of two >= hi - lo)."""

PerfectHash = Callable[[int, int], bytes]
"""(level, index) -> MTH of the 2**level leaves starting at index * 2**level."""


def range_hash(perfect: PerfectHash, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) from perfect-subtree hashes: split greedily into aligned perfect
    subtrees, left to right, then fold them from the right (RFC 9162's left-heavy split)."""
    if hi <= lo:
        raise ValueError(f"empty range {lo}..{hi}")
    parts: list[bytes] = []
    pos = lo
    while pos < hi:
        level = (hi - pos).bit_length() - 1
        while pos % (1 << level):
            level -= 1
        parts.append(perfect(level, pos >> level))
        pos += 1 << level
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = node_hash(part, root)
    return root


def perfect_nodes_for_append(index: int, leaf: bytes, perfect: PerfectHash) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees completed by appending leaf hash `leaf` as leaf number index:
    (level, index, hash), level 0 first. Left siblings are read through `perfect`."""
    nodes = [(0, index, leaf)]
    level, i, h = 0, index, leaf
    while i & 1:
        h = node_hash(perfect(level, i - 1), h)
        level, i = level + 1, i >> 1
        nodes.append((level, i, h))
    return nodes


def tree_root(perfect: PerfectHash, size: int) -> bytes:
    """MTH(D[size]); the hash of the empty string for an empty tree."""
    return hash_bytes(b"") if size == 0 else range_hash(perfect, 0, size)


def inclusion_path(mth: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 2.1.3.1), leaf first, from subtree hashes."""
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} outside a tree of {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk from the root down, collecting siblings, then reverse (leaf first).
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def root_from_inclusion_proof(entry: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf and its audit path (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of {size}")
    fn, sn = index, size - 1
    r = leaf_hash(entry)
    for p in proof:
        if sn == 0:
            raise ValueError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof is shorter than the tree is deep")
    return r


def verify_inclusion(entry: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    try:
        return root_from_inclusion_proof(entry, index, size, proof) == root
    except ValueError:
        return False


# -- consistency proofs (RFC 9162 section 2.1.4) ---------------------------------------


def consistency_path(mth: SubtreeHash, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 9162 2.1.4.1) from subtree hashes; empty when equal."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    proof: list[bytes] = []

    def subproof(m: int, lo: int, hi: int, whole: bool) -> None:
        if m == hi - lo:
            if not whole:
                proof.append(mth(lo, hi))
            return
        k = _split(hi - lo)
        if m <= k:
            subproof(m, lo, lo + k, whole)
            proof.append(mth(lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            proof.append(mth(lo, lo + k))

    subproof(old_size, 0, new_size, True)
    return proof


def consistency_proof(entries: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) for the tree over entries (each hashed as a leaf)."""
    return consistency_path(_list_subtrees([leaf_hash(e) for e in entries]), old_size, len(entries))


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does the tree of new_size extend the tree of old_size?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
