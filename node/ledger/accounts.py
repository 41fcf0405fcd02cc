"""Who is asking: the account an API key belongs to, as the principal that commands act for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.accounts import account_for_key_hash
from chain.blocks import Block
from chain.state import RecordReader


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an account name and its role (client, miner, admin, peer)."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        """admin may do everything, so it passes every role check."""
        return self.role == "admin"


class AccountCache:
    """Accounts by key hash, as the store has them, each with its Principal. Any block touching
    accounts empties it, so a revoked key is refused from the block that revoked it on."""

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._by_hash: dict[str, tuple[dict[str, Any], Principal]] = {}

    def entry(self, state: RecordReader, key_hash: str) -> tuple[dict[str, Any], Principal] | None:
        found = self._by_hash.get(key_hash)
        if found is None:
            account = account_for_key_hash(state, key_hash)
            if account is None:  # unknown keys are not remembered: guessing must not grow memory
                return None
            if len(self._by_hash) >= self.MAX_ENTRIES:
                self._by_hash.clear()
            found = self._by_hash[key_hash] = account, Principal(account["name"], account["role"])
        return found

    def on_block(self, block: Block) -> None:
        if any(tx.type.startswith("account.") for tx in block.transactions):
            self._by_hash.clear()
