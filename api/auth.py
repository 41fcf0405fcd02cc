"""API keys: X-Api-Key is hashed and looked up (node.ledger.accounts); the principal is an account
name and role."""

from __future__ import annotations

import hmac
from typing import NoReturn

from starlette.requests import Request

from api.errors import ApiError
from api.middleware import header_value
from node.datadir import api_key_hash
from node.ledger.accounts import AccountCache, Principal

HEADER = "x-api-key"
RAW_HEADER = HEADER.encode("latin-1")
MAX_KEY_CHARS = 512
PRINCIPAL = "aitbc.principal"
"""The request scope's entry holding its authenticated principal."""


def refuse(request: Request, detail: str) -> NoReturn:
    """401 for a request without a valid key, counted against its client address: past the
    address's budget (--unauth-rate-limit) the answer is 429, so guessing keys or flooding
    without one is slowed per address while clients with valid keys are not."""
    client = request.scope.get("client")
    request.scope["app"].state.unauth_limiter.take(client[0] if client else "")
    raise ApiError(401, detail, "unauthorized")


def authenticate(request: Request, *roles: str) -> Principal:
    """The caller's account; 401 without a valid key, 403 when its role is not in roles.

    admin may do everything, so it passes every role check. A request is looked up and charged
    to its key's rate once, however many times it is authenticated (the Idempotency-Key wrapper,
    then the handler it wraps).
    """
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is None:
        principal = request.scope[PRINCIPAL] = _identify(request)
    if roles and principal.role not in roles and not principal.is_admin:
        raise ApiError(
            403, f"this endpoint needs the role {' or '.join(roles)}; your key has role {principal.role}", "forbidden"
        )
    return principal


def _identify(request: Request) -> Principal:
    """The account of the request's X-Api-Key, its rate charged one request (401/429 if not)."""
    raw = header_value(request.scope["headers"], RAW_HEADER)
    supplied = None if raw is None else raw.decode("latin-1")
    if not supplied:
        refuse(request, "missing X-Api-Key header")
    if len(supplied) > MAX_KEY_CHARS:
        refuse(request, "invalid API key")
    key_hash = api_key_hash(supplied)
    state = request.scope["app"].state
    accounts: AccountCache = state.accounts
    found = accounts.entry(state.node.store, key_hash)
    if found is None or not hmac.compare_digest(found[0]["key_hash"], key_hash):
        refuse(request, "invalid API key")
    account, principal = found
    if account["revoked"]:
        refuse(request, "this API key has been revoked")
    state.rate_limiter.take(principal.name)
    return principal
