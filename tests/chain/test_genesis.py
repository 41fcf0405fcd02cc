"""chain.genesis: genesis.json is parsed once; a malformed one names its bad field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chain.errors import InvalidGenesis
from chain.genesis import Genesis, Params, parse_genesis
from tests.chain.devchain import AUTHORITY, T0, genesis_doc, key_hash

REPO_GENESIS = Path(__file__).resolve().parents[2] / "genesis.json"


def test_repo_genesis_json_parses() -> None:
    genesis = parse_genesis(json.loads(REPO_GENESIS.read_text(encoding="utf-8")))
    assert genesis.chain_id == "aitbc-devnet"
    assert genesis.genesis_time_ms == T0
    assert genesis.authorities == ()
    assert genesis.accounts == ()
    assert genesis.params.max_attempts == 3
    assert genesis.params.lease_seconds == 300
    assert genesis.params.price_per_unit("llama3.2") == Decimal("0.000002")
    assert "mistral-7b" in genesis.params.prices


def test_valid_document_parses_into_frozen_genesis() -> None:
    genesis = parse_genesis(genesis_doc())
    assert genesis.authorities == (AUTHORITY.public_hex,)
    assert genesis.params.max_block_txs == 500
    assert genesis.params.block_max_wait_ms == Params().block_max_wait_ms  # default kept
    assert genesis.accounts[0].name == "ops" and genesis.accounts[0].role == "admin"
    assert genesis.accounts[0].key_hash == key_hash("ops-key")
    with pytest.raises(AttributeError):
        genesis.chain_id = "other"  # type: ignore[misc]  # the frozen dataclass refuses it, as tested


def test_accounts_field_is_optional() -> None:
    doc = genesis_doc()
    del doc["accounts"]
    assert parse_genesis(doc).accounts == ()


def test_genesis_time_with_offset_is_converted_to_utc_milliseconds() -> None:
    assert parse_genesis(genesis_doc(genesis_time="2026-01-01T01:00:00+01:00")).genesis_time_ms == T0
    assert parse_genesis(genesis_doc(genesis_time="2026-01-01T00:00:00.123Z")).genesis_time_ms == T0 + 123


def test_genesis_hash_ignores_key_order_but_not_content() -> None:
    doc = genesis_doc()
    reordered = dict(reversed(list(doc.items())))
    assert parse_genesis(reordered).hash == parse_genesis(doc).hash
    assert parse_genesis(genesis_doc(chain_id="aitbc-other")).hash != parse_genesis(doc).hash


def test_with_authorities_adds_keys_and_accounts() -> None:
    base = parse_genesis(json.loads(REPO_GENESIS.read_text(encoding="utf-8")))
    filled = base.with_authorities(
        [AUTHORITY.public_hex], [{"name": "ops", "role": "admin", "key_hash": key_hash("k")}]
    )
    assert isinstance(filled, Genesis)
    assert filled.authorities == (AUTHORITY.public_hex,)
    assert [a.name for a in filled.accounts] == ["ops"]
    assert base.authorities == () and base.raw["authorities"] == []
    assert filled.hash != base.hash


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


def _append_account(account: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["accounts"].append(account)


GOOD_HASH = key_hash("another-key")

MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing chain_id", _delete(["chain_id"]), "'chain_id'"),
    ("missing genesis_time", _delete(["genesis_time"]), "'genesis_time'"),
    ("missing authorities", _delete(["authorities"]), "'authorities'"),
    ("missing params", _delete(["params"]), "'params'"),
    ("unknown top-level field", _set(["difficulty"], 1), "'difficulty'"),
    ("chain_id with a space", _set(["chain_id"], "aitbc dev"), "'chain_id'"),
    ("chain_id not a string", _set(["chain_id"], 7), "'chain_id'"),
    ("genesis_time not a string", _set(["genesis_time"], 1767225600), "'genesis_time'"),
    ("genesis_time not ISO 8601", _set(["genesis_time"], "yesterday"), "'genesis_time'"),
    ("genesis_time without offset", _set(["genesis_time"], "2026-01-01T00:00:00"), "'genesis_time'"),
    ("authorities not a list", _set(["authorities"], AUTHORITY.public_hex), "'authorities'"),
    ("authorities[0] not hex", _set(["authorities", 0], "zz" * 32), "'authorities[0]'"),
    ("authorities[0] upper-case hex", _set(["authorities", 0], AUTHORITY.public_hex.upper()), "'authorities[0]'"),
    ("authorities[0] too short", _set(["authorities", 0], "ab" * 31), "'authorities[0]'"),
    ("authorities listed twice", _set(["authorities"], [AUTHORITY.public_hex] * 2), "'authorities'"),
    ("params not an object", _set(["params"], []), "'params'"),
    ("params.max_block_txs = -1", _set(["params", "max_block_txs"], -1), "'params.max_block_txs'"),
    ("params.max_block_txs = 0", _set(["params", "max_block_txs"], 0), "'params.max_block_txs'"),
    ("params.max_block_txs a string", _set(["params", "max_block_txs"], "5"), "'params.max_block_txs'"),
    ("params.max_attempts a bool", _set(["params", "max_attempts"], True), "'params.max_attempts'"),
    ("params.lease_seconds a float", _set(["params", "lease_seconds"], 1.5), "'params.lease_seconds'"),
    ("params.block_max_wait_ms too large", _set(["params", "block_max_wait_ms"], 10_001), "'params.block_max_wait_ms'"),
    ("unknown param", _set(["params", "gas_limit"], 1), "'params.gas_limit'"),
    ("params.prices empty", _set(["params", "prices"], {}), "'params.prices'"),
    ("params.prices missing", _delete(["params", "prices"]), "'params.prices'"),
    ("model without tokens price", _set(["params", "prices", "llama3.2"], {"images": "1"}), "'params.prices.llama3.2'"),
    ("bad model name", _set(["params", "prices", "bad model"], {"tokens": "1"}), "'params.prices.bad model'"),
    (
        "tokens not decimal",
        _set(["params", "prices", "llama3.2", "tokens"], "cheap"),
        "'params.prices.llama3.2.tokens'",
    ),
    ("tokens a number", _set(["params", "prices", "llama3.2", "tokens"], 0.5), "'params.prices.llama3.2.tokens'"),
    ("tokens negative", _set(["params", "prices", "llama3.2", "tokens"], "-1"), "'params.prices.llama3.2.tokens'"),
    ("tokens NaN", _set(["params", "prices", "llama3.2", "tokens"], "NaN"), "'params.prices.llama3.2.tokens'"),
    (
        "tokens Infinity",
        _set(["params", "prices", "llama3.2", "tokens"], "Infinity"),
        "'params.prices.llama3.2.tokens'",
    ),
    ("accounts not a list", _set(["accounts"], {}), "'accounts'"),
    ("accounts[1] not an object", _append_account("ops"), "'accounts[1]'"),
    (
        "accounts[1] extra field",
        _append_account({"name": "a", "role": "client", "key_hash": GOOD_HASH, "x": 1}),
        "'accounts[1]'",
    ),
    (
        "accounts[1].role invalid",
        _append_account({"name": "a", "role": "root", "key_hash": GOOD_HASH}),
        "'accounts[1].role'",
    ),
    (
        "accounts[1].name invalid",
        _append_account({"name": "-a", "role": "client", "key_hash": GOOD_HASH}),
        "'accounts[1].name'",
    ),
    (
        "accounts[1].key_hash invalid",
        _append_account({"name": "a", "role": "client", "key_hash": "XYZ"}),
        "'accounts[1].key_hash'",
    ),
    (
        "accounts[1].name repeated",
        _append_account({"name": "ops", "role": "client", "key_hash": GOOD_HASH}),
        "'accounts[1].name'",
    ),
    (
        "accounts[1].key_hash repeated",
        _append_account({"name": "a", "role": "client", "key_hash": key_hash("ops-key")}),
        "'accounts[1].key_hash'",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [(m, f) for _, m, f in MALFORMED], ids=[i for i, _, _ in MALFORMED])
def test_malformed_genesis_is_refused_naming_the_field(mutate: Callable[[dict[str, Any]], None], field: str) -> None:
    doc = copy.deepcopy(genesis_doc())
    mutate(doc)
    with pytest.raises(InvalidGenesis) as info:
        parse_genesis(doc)
    assert f"genesis field {field}" in info.value.detail
    assert info.value.error_code == "invalid_genesis"


@pytest.mark.parametrize("raw", [[], "genesis", None, 1])
def test_genesis_that_is_not_an_object_is_refused(raw: Any) -> None:
    with pytest.raises(InvalidGenesis, match="JSON object"):
        parse_genesis(raw)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("max_block_txs", 1, 100_000), ("max_attempts", 1, 1000), ("block_max_wait_ms", 0, 10_000)],
)
def test_integer_params_accept_their_bounds(name: str, low: int, high: int) -> None:
    for value in (low, high):
        doc = genesis_doc()
        doc["params"][name] = value
        assert getattr(parse_genesis(doc).params, name) == value
