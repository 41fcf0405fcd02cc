"""account.* and miner.* transactions."""

from __future__ import annotations

from typing import Any

import pytest

from chain.accounts import account_for_key_hash, get_account
from chain.errors import Conflict, Forbidden, NotFound, ValidationError
from chain.genesis import Genesis
from chain.indexes import seen as seen_key
from chain.miners import get_miner
from chain.state import WorkingState
from tests.chain.devchain import T0, key_hash, run


def test_account_create_stores_the_account_and_its_key_index(state: WorkingState, genesis: Genesis) -> None:
    record = run(state, genesis, "account.create", T0 + 5, name="alice", role="client", key_hash=key_hash("a"))
    assert record == {
        "name": "alice",
        "role": "client",
        "key_hash": key_hash("a"),
        "revoked": False,
        "created_at": T0 + 5,
    }
    assert get_account(state, "alice") == record
    assert account_for_key_hash(state, key_hash("a")) == record
    assert account_for_key_hash(state, key_hash("unknown")) is None


@pytest.mark.parametrize(
    ("payload", "error", "code"),
    [
        ({"name": "ops", "role": "client", "key_hash": key_hash("new")}, Conflict, "account_exists"),
        ({"name": "new", "role": "client", "key_hash": key_hash("ops-key")}, Conflict, "key_exists"),
        ({"name": "new", "role": "root", "key_hash": key_hash("new")}, ValidationError, "validation_error"),
        ({"name": "new one", "role": "client", "key_hash": key_hash("new")}, ValidationError, "validation_error"),
        ({"name": "new", "role": "client", "key_hash": key_hash("new").upper()}, ValidationError, "validation_error"),
        ({"name": "new", "role": "client"}, ValidationError, "validation_error"),
    ],
)
def test_invalid_account_create_is_refused(
    state: WorkingState, genesis: Genesis, payload: dict[str, Any], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as info:
        run(state, genesis, "account.create", T0 + 5, **payload)
    assert info.value.error_code == code  # type: ignore[attr-defined]  # each error parametrized here is a LedgerError


def test_revoke_marks_the_account_once(state: WorkingState, genesis: Genesis) -> None:
    record = run(state, genesis, "account.revoke", T0 + 5, name="ops")
    assert record["revoked"] is True and record["revoked_at"] == T0 + 5
    assert get_account(state, "ops") == record
    with pytest.raises(Conflict):
        run(state, genesis, "account.revoke", T0 + 6, name="ops")
    with pytest.raises(NotFound):
        run(state, genesis, "account.revoke", T0 + 6, name="nobody")
    with pytest.raises(Conflict):  # a revoked key stays taken
        run(state, genesis, "account.create", T0 + 6, name="ops2", role="admin", key_hash=key_hash("ops-key"))


def _register(state: WorkingState, genesis: Genesis, t: int, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"miner_id": "gpu-1", "owner": "minnie", "capabilities": ["llama3.2"], **overrides}
    if get_account(state, payload["owner"]) is None:
        run(
            state,
            genesis,
            "account.create",
            t,
            name=payload["owner"],
            role="miner",
            key_hash=key_hash(payload["owner"]),
        )
    return run(state, genesis, "miner.register", t, **payload)


def test_register_then_heartbeat_moves_the_seen_index(state: WorkingState, genesis: Genesis) -> None:
    miner = _register(state, genesis, T0 + 5, gpu_info={"name": "RTX"})
    assert miner["registered_at"] == miner["last_seen"] == T0 + 5
    assert miner["receipts"] == 0 and miner["gpu_info"] == {"name": "RTX"}
    assert state.get(seen_key(T0 + 5, "gpu-1")) == b""
    beat = run(state, genesis, "miner.heartbeat", T0 + 9, miner_id="gpu-1", owner="minnie")
    assert beat["last_seen"] == T0 + 9 and beat["registered_at"] == T0 + 5
    assert state.get(seen_key(T0 + 5, "gpu-1")) is None
    assert state.get(seen_key(T0 + 9, "gpu-1")) == b""
    assert get_miner(state, "gpu-1") == beat


def test_re_registering_by_the_owner_updates_capabilities_and_keeps_history(
    state: WorkingState, genesis: Genesis
) -> None:
    _register(state, genesis, T0 + 5)
    again = _register(state, genesis, T0 + 7, capabilities=["llama3.2", "mistral-7b"])
    assert again["capabilities"] == ["llama3.2", "mistral-7b"] and again["registered_at"] == T0 + 5
    assert state.get(seen_key(T0 + 5, "gpu-1")) is None


def test_miner_id_of_another_owner_is_conflict_and_their_heartbeat_forbidden(
    state: WorkingState, genesis: Genesis
) -> None:
    _register(state, genesis, T0 + 5)
    with pytest.raises(Conflict) as info:
        _register(state, genesis, T0 + 6, owner="mallory")
    assert info.value.error_code == "miner_id_taken"
    with pytest.raises(Forbidden):
        run(state, genesis, "miner.heartbeat", T0 + 6, miner_id="gpu-1", owner="mallory")
    with pytest.raises(NotFound):
        run(state, genesis, "miner.heartbeat", T0 + 6, miner_id="gpu-404", owner="minnie")


@pytest.mark.parametrize(
    "overrides",
    [
        {"miner_id": ""},
        {"miner_id": "x" * 129},
        {"miner_id": "gpu\n1"},
        {"miner_id": 7},
        {"capabilities": []},
        {"capabilities": "llama3.2"},
        {"capabilities": ["bad model"]},
        {"capabilities": ["m"] * 65},
        {"gpu_info": "RTX"},
        {"gpu_info": {"name": 4090}},
        {"gpu_info": {f"k{i}": "v" for i in range(17)}},
        {"gpu_info": {"name": "x" * 257}},
    ],
)
def test_invalid_registration_is_refused(state: WorkingState, genesis: Genesis, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _register(state, genesis, T0 + 5, **overrides)


def test_miner_register_by_a_client_account_is_refused(state: WorkingState, genesis: Genesis) -> None:
    run(state, genesis, "account.create", T0 + 5, name="carol", role="client", key_hash=key_hash("carol"))
    with pytest.raises(ValidationError):
        run(state, genesis, "miner.register", T0 + 6, miner_id="gpu-9", owner="carol", capabilities=["llama3.2"])
    assert get_miner(state, "gpu-9") is None
