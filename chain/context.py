"""What a transaction is applied with besides state: block time and the network's rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from chain.genesis import Genesis

Signers = tuple[bytes | None, bytes | None]
"""What chain.receipts.completion_signers finds in a receipt: (authority signer, miner signer)."""

NOTHING_CHECKED: Mapping[str, Signers] = MappingProxyType({})


@dataclass(frozen=True)
class ApplyContext:
    """Inputs to the transition that come from the block, never from a clock."""

    time_ms: int
    """The block's timestamp, Unix milliseconds."""
    genesis: Genesis
    tx_hash: str = ""
    """Hex hash of the transaction being applied."""
    checked: Mapping[str, Signers] = field(default_factory=lambda: NOTHING_CHECKED)
    """Receipt signatures already checked, by the hex hash of their job.complete transaction:
    the authority checks them as it signs, a follower on another core ahead of the block. The
    hash commits to the whole receipt, so a completion found here is not checked again."""
