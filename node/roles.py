"""What a running node does with its chain: its role, a typed object that can change while the
process runs (a follower promoted to authority, an authority demoted to follower).

- AuthorityRole: the node seals blocks; its sequencer (node.producer.Producer) orders every
  write into a durable block and signs it, and receipts, with the node key.
- FollowerRole: the node replicates an upstream's chain (node.sync.Follower verifies every
  block); writes sent to it are forwarded to the upstream.

Node (node.runtime) holds exactly one of them at a time and swaps them in promote/demote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chain.crypto import NodeKey
from node.producer import NodeUnavailable, Producer
from node.sync import Follower


@dataclass(frozen=True)
class AuthorityRole:
    """This node seals blocks with `key`, which the genesis names among its authorities."""

    key: NodeKey
    sequencer: Producer
    """Orders writes into blocks; a write is answered once its block is durable."""
    name: Literal["authority"] = "authority"


@dataclass(frozen=True)
class FollowerRole:
    """This node replicates `replica.upstream`'s chain and forwards writes there."""

    replica: Follower
    """Pulls, verifies and stores the upstream's blocks; relays forwarded writes."""
    name: Literal["follower"] = "follower"


Role = AuthorityRole | FollowerRole


def sequencer_of(role: Role) -> Producer:
    """The role's sequencer; a follower has none (its writes are forwarded before they get here)."""
    if isinstance(role, AuthorityRole):
        return role.sequencer
    raise NodeUnavailable(
        "this node is a follower: it seals no blocks (send writes to its authority)", error_code="not_authority"
    )


def signing_key_of(role: Role) -> NodeKey:
    """The key the node signs receipts with: only an authority holds one."""
    if isinstance(role, AuthorityRole):
        return role.key
    raise NodeUnavailable("this node is a follower: it signs no receipts", error_code="not_authority")
