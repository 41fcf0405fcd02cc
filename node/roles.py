"""What a running node does with its chain: its role, a typed object that can change while the
process runs (a follower promoted to authority, an authority demoted to follower).

- AuthorityRole: the node seals blocks; its sequencer (node.producer.Producer) orders every
  write into a durable block and signs it, and receipts, with the node key.
- FollowerRole: the node replicates an upstream's chain (node.sync.Follower verifies every
  block); writes sent to it are forwarded to the upstream.

Inside an authority group (node.group, `--etcd`), a member holds one of two more:

- SequencerRole: the member etcd elected; its sequencer commits each block to etcd (fenced by
  its leadership) before it writes and answers it.
- StandbyRole: a hot standby; it applies every block committed to etcd and forwards writes to
  the sequencer (its relay).

Node (node.runtime) holds exactly one of them at a time and swaps them in promote/demote
(become_sequencer/become_standby inside a group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chain.crypto import NodeKey
from node.group import Group, Relay
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


@dataclass(frozen=True)
class SequencerRole:
    """This group member is the elected sequencer: it seals blocks with `key`, each committed to
    etcd before it is stored and answered."""

    key: NodeKey
    sequencer: Producer
    """Orders writes into blocks; its commit step is the group's node.group.EtcdLog."""
    group: Group
    name: Literal["sequencer"] = "sequencer"


@dataclass(frozen=True)
class StandbyRole:
    """This group member is a hot standby: it applies the blocks the sequencer commits to etcd
    and forwards writes to it."""

    key: NodeKey
    """The authority key it seals with once elected."""
    relay: Relay
    """Forwards writes to the sequencer the leader key names."""
    group: Group
    name: Literal["standby"] = "standby"


Role = AuthorityRole | FollowerRole | SequencerRole | StandbyRole
Sealing = AuthorityRole | SequencerRole
"""The roles that seal blocks and sign receipts."""


def sequencer_of(role: Role) -> Producer:
    """The role's sequencer; a follower or standby has none (its writes are forwarded before
    they get here)."""
    if isinstance(role, AuthorityRole | SequencerRole):
        return role.sequencer
    if isinstance(role, StandbyRole):
        raise NodeUnavailable("no sequencer is elected right now; retry shortly", error_code="unavailable")
    raise NodeUnavailable(
        "this node is a follower: it seals no blocks (send writes to its authority)", error_code="not_authority"
    )


def signing_key_of(role: Role) -> NodeKey:
    """The key the node signs receipts with: only an authority (or a group's sequencer) holds one."""
    if isinstance(role, AuthorityRole | SequencerRole):
        return role.key
    if isinstance(role, StandbyRole):
        raise NodeUnavailable("no sequencer is elected right now; retry shortly", error_code="unavailable")
    raise NodeUnavailable("this node is a follower: it signs no receipts", error_code="not_authority")
