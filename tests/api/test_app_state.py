"""api.routes.AppState: the app's shared objects read as plain attributes, and as State's items."""

from __future__ import annotations

import pytest
from starlette.datastructures import State

from api.routes import AppState, NodeApp


def test_attributes_and_items_agree_through_sets_and_deletes() -> None:
    state = AppState()
    state.node = "n1"
    assert state.node == "n1" and state["node"] == "n1"
    state.node = "n2"
    assert state.node == "n2" and state["node"] == "n2"
    del state.node
    with pytest.raises(AttributeError):
        _ = state.node
    with pytest.raises(KeyError):
        _ = state["node"]
    assert getattr(state, "stats_cache", None) is None  # as the explorer asks for optional entries


def test_a_set_attribute_is_read_without_states_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    state = AppState()
    state.accounts = "cache"

    def refuse(self: State, key: str) -> None:
        raise AssertionError(f"State.__getattr__ was asked for {key!r}")

    monkeypatch.setattr(State, "__getattr__", refuse)
    assert state.accounts == "cache"


def test_the_node_app_uses_it() -> None:
    assert isinstance(NodeApp(routes=[]).state, AppState)
