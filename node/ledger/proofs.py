"""Receipt proof bundles, signed checkpoints and consistency proofs (the data; chain/proofs.py
holds how they are built and checked)."""

from __future__ import annotations

from typing import Any

from chain.errors import NotFound, ValidationError
from chain.jobs import receipt_tx_key
from chain.proofs import build_bundle, sign_checkpoint
from node.producer import NodeUnavailable
from node.roles import AuthorityRole, Role, SequencerRole, StandbyRole
from node.store import Store


def receipt_bundle(store: Store, receipt_id: str) -> dict[str, Any]:
    """The proof bundle of a receipt on chain. Reads one block (indexed by tx hash). It holds no
    prompt and no result (the transaction is in its public form), so it is as public as the
    receipt itself."""
    tx_hash = store.get(receipt_tx_key(receipt_id))
    location = None if tx_hash is None else store.tx_location(tx_hash.decode("ascii"))
    block = None if location is None else store.block(location[0])
    if block is None or location is None:
        raise NotFound(f"receipt '{receipt_id}' does not exist", error_code="receipt_not_found")
    return build_bundle(store.genesis.chain_id, block, location[1])


def checkpoint(store: Store, role: Role) -> dict[str, Any]:
    """The latest checkpoint: chain_id, size (blocks), root, and the note signed by this node,
    which must hold an authority key of the chain."""
    # Any member of an authority group holds an authority key and may sign what its chain holds.
    if (
        not isinstance(role, AuthorityRole | SequencerRole | StandbyRole)
        or role.key.public_hex not in store.genesis.authorities
    ):
        raise NodeUnavailable("this node holds no authority key to sign checkpoints; ask the authority")
    size = store.tip().height + 1
    root = store.block_tree_root(size)
    return {
        "chain_id": store.genesis.chain_id,
        "size": size,
        "root_hash": root.hex(),
        "signer": role.key.public_hex,
        "note": sign_checkpoint(store.genesis.chain_id, size, root, role.key),
    }


def consistency(store: Store, old: int, new: int) -> dict[str, Any]:
    """The proof that the block tree of `old` blocks is a prefix of that of `new` blocks."""
    size = store.tip().height + 1
    if new > size:
        raise ValidationError(f"to must be at most the chain's size, {size} blocks")
    if old > new:
        raise ValidationError("from must be at most to")
    return {
        "chain_id": store.genesis.chain_id,
        "from": old,
        "to": new,
        "from_root": store.block_tree_root(old).hex(),
        "to_root": store.block_tree_root(new).hex(),
        "proof": [h.hex() for h in store.block_tree_consistency(old, new)],
    }
