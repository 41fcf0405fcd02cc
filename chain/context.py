"""What a transaction is applied with besides state: block time and the network's rules."""

from __future__ import annotations

from dataclasses import dataclass

from chain.genesis import Genesis


@dataclass(frozen=True)
class ApplyContext:
    """Inputs to the transition that come from the block, never from a clock."""

    time_ms: int
    """The block's timestamp, Unix milliseconds."""
    genesis: Genesis
    tx_hash: str = ""
    """Hex hash of the transaction being applied."""
