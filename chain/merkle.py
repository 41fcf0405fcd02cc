"""RFC 9162 (Certificate Transparency v2) Merkle tree, with BLAKE3 in place of SHA-256.

MTH({}) = H(""), MTH({d0}) = H(0x00 || d0), MTH(D[n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
where k is the largest power of two smaller than n.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    leaves = [leaf_hash(e) for e in entries]
    path: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    # Walk from the root down, collecting siblings, then reverse (leaf first).
    while hi - lo > 1:
        k = _split(hi - lo)
        if m - lo < k:
            path.append(_root_of_hashes(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(_root_of_hashes(leaves[lo : lo + k]))
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
