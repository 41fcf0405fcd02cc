"""Accounts: API identities, known by name, holding only a hash of their key."""

from __future__ import annotations

from typing import Any

from chain.context import ApplyContext
from chain.errors import Conflict, NotFound, ValidationError
from chain.genesis import HEX64_RE, NAME_RE, ROLES
from chain.state import RecordReader, WorkingState, key


def account_key(name: str) -> bytes:
    return key("acct", name)


def key_hash_key(key_hash: str) -> bytes:
    return key("akey", key_hash)


def get_account(state: RecordReader, name: str) -> dict[str, Any] | None:
    account: dict[str, Any] | None = state.get_record(account_key(name))
    return account


def account_for_key_hash(state: RecordReader, key_hash: str) -> dict[str, Any] | None:
    raw = state.get(key_hash_key(key_hash))
    return None if raw is None else get_account(state, raw.decode("utf-8"))


def validate_account_fields(name: Any, role: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError("name must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit")
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")


def create_account(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    name, role, key_hash = payload.get("name"), payload.get("role"), payload.get("key_hash")
    validate_account_fields(name, role)
    if not isinstance(key_hash, str) or not HEX64_RE.match(key_hash):
        raise ValidationError("key_hash must be 64 lowercase hex characters")
    assert isinstance(name, str)
    if get_account(state, name) is not None:
        raise Conflict(f"account '{name}' already exists", error_code="account_exists")
    if state.get(key_hash_key(key_hash)) is not None:
        raise Conflict("that key is already registered to an account", error_code="key_exists")
    record = {"name": name, "role": role, "key_hash": key_hash, "revoked": False, "created_at": ctx.time_ms}
    state.put_record(account_key(name), record)
    state.put(key_hash_key(key_hash), name.encode("utf-8"))
    return record


def revoke_account(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    name = payload.get("name")
    if not isinstance(name, str):
        raise ValidationError("name must be a string")
    record = get_account(state, name)
    if record is None:
        raise NotFound(f"account '{name}' does not exist", error_code="account_not_found")
    if record["revoked"]:
        raise Conflict(f"account '{name}' is already revoked", error_code="account_revoked")
    record = {**record, "revoked": True, "revoked_at": ctx.time_ms}
    state.put_record(account_key(name), record)
    return record
