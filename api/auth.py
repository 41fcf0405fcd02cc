"""API keys: X-Api-Key is hashed and looked up; the principal is an account name and role."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from api.errors import ApiError
from api.middleware import header_value
from chain.accounts import account_for_key_hash
from chain.blocks import Block
from node.datadir import api_key_hash

HEADER = "x-api-key"
RAW_HEADER = HEADER.encode("latin-1")
MAX_KEY_CHARS = 512


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AccountCache:
    """Accounts by key hash, as the store has them, each with its Principal. Any block touching
    accounts empties it, so a revoked key is refused from the block that revoked it on."""

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._by_hash: dict[str, tuple[dict[str, Any], Principal]] = {}

    def entry(self, store: Any, key_hash: str) -> tuple[dict[str, Any], Principal] | None:
        found = self._by_hash.get(key_hash)
        if found is None:
            account = account_for_key_hash(store, key_hash)
            if account is None:  # unknown keys are not remembered: guessing must not grow memory
                return None
            if len(self._by_hash) >= self.MAX_ENTRIES:
                self._by_hash.clear()
            found = self._by_hash[key_hash] = account, Principal(account["name"], account["role"])
        return found

    def on_block(self, block: Block) -> None:
        if any(tx.type.startswith("account.") for tx in block.transactions):
            self._by_hash.clear()


def authenticate(request: Request, *roles: str) -> Principal:
    """The caller's account; 401 without a valid key, 403 when its role is not in roles.

    admin may do everything, so it passes every role check.
    """
    raw = header_value(request.scope["headers"], RAW_HEADER)
    supplied = None if raw is None else raw.decode("latin-1")
    if not supplied:
        raise ApiError(401, "missing X-Api-Key header", "unauthorized")
    if len(supplied) > MAX_KEY_CHARS:
        raise ApiError(401, "invalid API key", "unauthorized")
    key_hash = api_key_hash(supplied)
    state = request.scope["app"].state
    found = state.accounts.entry(state.node.store, key_hash)
    if found is None or not hmac.compare_digest(found[0]["key_hash"], key_hash):
        raise ApiError(401, "invalid API key", "unauthorized")
    account, principal = found
    if account["revoked"]:
        raise ApiError(401, "this API key has been revoked", "unauthorized")
    state.rate_limiter.take(principal.name)
    if roles and principal.role not in roles and not principal.is_admin:
        raise ApiError(
            403, f"this endpoint needs the role {' or '.join(roles)}; your key has role {principal.role}", "forbidden"
        )
    return principal
