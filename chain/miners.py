"""Miners: registered by a miner-role account, seen whenever they act."""

from __future__ import annotations

import re
from typing import Any

from chain import indexes
from chain.accounts import get_account
from chain.context import ApplyContext
from chain.errors import Conflict, Forbidden, NotFound, ValidationError
from chain.genesis import HEX64_RE, MODEL_RE
from chain.state import RecordReader, WorkingState, key

MAX_ID_CHARS = 128
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")
MAX_CAPABILITIES = 64
MAX_GPU_FIELDS = 16
MAX_GPU_VALUE_CHARS = 256


_MINER = key("miner", "")


def miner_key(miner_id: str) -> bytes:
    return _MINER + miner_id.encode("utf-8")


def validate_id(field: str, value: Any, max_chars: int = MAX_ID_CHARS) -> str:
    """Ids may hold any printable text (the explorer escapes it), but no control characters."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string")
    if not 1 <= len(value) <= max_chars:
        raise ValidationError(f"{field} must be 1-{max_chars} characters")
    if _CONTROL_CHARS.search(value):
        raise ValidationError(f"{field} must not contain control characters")
    return value


def validate_miner_pubkey(miner_pubkey: Any) -> None:
    """An Ed25519 public key for co-signed completions: 64 lowercase hex characters, or absent."""
    if miner_pubkey is not None and (not isinstance(miner_pubkey, str) or not HEX64_RE.match(miner_pubkey)):
        raise ValidationError("miner_pubkey must be an Ed25519 public key as 64 lowercase hex characters")


def validate_registration(miner_id: Any, capabilities: Any, gpu_info: Any) -> None:
    validate_id("miner_id", miner_id)
    if not isinstance(capabilities, list):
        raise ValidationError("capabilities must be a list of model names")
    if not 1 <= len(capabilities) <= MAX_CAPABILITIES:
        raise ValidationError(f"capabilities must list 1-{MAX_CAPABILITIES} models")
    for i, model in enumerate(capabilities):
        if not isinstance(model, str) or not MODEL_RE.match(model):
            raise ValidationError(f"capabilities[{i}] must be a model name such as 'llama3.2'")
    if gpu_info is None:
        return
    if not isinstance(gpu_info, dict) or len(gpu_info) > MAX_GPU_FIELDS:
        raise ValidationError(f"gpu_info must be an object of at most {MAX_GPU_FIELDS} string fields")
    for name, value in gpu_info.items():
        if not isinstance(value, str) or len(value) > MAX_GPU_VALUE_CHARS or len(name) > 64:
            raise ValidationError(f"gpu_info.{name} must be a string of at most {MAX_GPU_VALUE_CHARS} characters")


def require_active(state: WorkingState, name: Any, roles: tuple[str, ...]) -> dict[str, Any]:
    """The named account, which must exist, be unrevoked and hold one of roles."""
    account = get_account(state, name) if isinstance(name, str) else None
    if account is None or account["revoked"] or account["role"] not in roles:
        raise ValidationError(f"the sender must be an active account with role {' or '.join(roles)}")
    return account


def get_miner(state: RecordReader, miner_id: str) -> dict[str, Any] | None:
    miner: dict[str, Any] | None = state.get_record(miner_key(miner_id))
    return miner


def touch(state: WorkingState, miner: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    """Record that the miner was seen at block time, keeping the seen index in step."""
    state.delete(indexes.seen(miner["last_seen"], miner["miner_id"]))
    miner = {**miner, "last_seen": ctx.time_ms}
    state.put(indexes.seen(ctx.time_ms, miner["miner_id"]), b"")
    state.put_record(miner_key(miner["miner_id"]), miner)
    return miner


def owned_miner(state: WorkingState, miner_id: Any, owner: Any) -> dict[str, Any]:
    """The miner, if it exists and the sending account registered it."""
    validate_id("miner_id", miner_id)
    miner = get_miner(state, miner_id)
    if miner is None:
        raise NotFound(f"miner '{miner_id}' is not registered", error_code="miner_not_found")
    if owner is not None and miner["owner"] != owner:
        raise Forbidden(f"miner '{miner_id}' belongs to another account", error_code="miner_not_owned")
    return miner


def register_miner(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    miner_id, owner = payload.get("miner_id"), payload.get("owner")
    capabilities, gpu_info = payload.get("capabilities"), payload.get("gpu_info")
    validate_registration(miner_id, capabilities, gpu_info)
    validate_miner_pubkey(payload.get("miner_pubkey"))
    assert isinstance(miner_id, str) and isinstance(capabilities, list)
    require_active(state, owner, ("miner", "admin"))
    existing = get_miner(state, miner_id)
    if existing is not None and existing["owner"] != owner:
        raise Conflict(f"miner_id '{miner_id}' is registered by another account", error_code="miner_id_taken")
    if existing is None:
        existing = {
            "miner_id": miner_id,
            "owner": owner,
            "registered_at": ctx.time_ms,
            "last_seen": ctx.time_ms,
            "receipts": 0,
            "units": 0,
        }
        state.put(indexes.seen(ctx.time_ms, miner_id), b"")
    record = {**existing, "capabilities": list(capabilities), "gpu_info": gpu_info}
    if payload.get("miner_pubkey") is not None:
        # Registering a key is one-way: re-registering without one keeps it, so a completion
        # can never silently go back to being unsigned.
        record["miner_pubkey"] = payload["miner_pubkey"]
    return touch(state, record, ctx)


def heartbeat(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
    miner = owned_miner(state, payload.get("miner_id"), payload.get("owner"))
    return touch(state, miner, ctx)
