"""genesis.json, parsed and validated once into a frozen Genesis."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from chain.crypto import hash_hex
from chain.encoding import canonical
from chain.errors import InvalidGenesis


@functools.lru_cache(maxsize=1024)
def _decimal(text: str) -> Decimal:
    """A price from genesis as a Decimal, made once per distinct price."""
    return Decimal(text)


ROLES = ("client", "miner", "admin", "peer")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Params:
    """Network parameters; every replica applies blocks with the same values."""

    max_block_txs: int = 500
    """Most transactions one block may hold."""
    block_max_wait_ms: int = 5
    """How long the producer waits for more transactions before sealing a block."""
    lease_seconds: int = 300
    """How long a miner may hold a claimed job before it goes back to pending."""
    max_attempts: int = 3
    """Claims (leases) a job may use before it is marked failed."""
    active_miner_window_s: int = 300
    """A miner seen within this many seconds counts as active."""
    max_prompt_bytes: int = 65536
    """Largest prompt, in UTF-8 bytes."""
    max_result_bytes: int = 1_048_576
    """Largest result, in UTF-8 bytes."""
    prices: dict[str, dict[str, str]] = field(default_factory=dict)
    """Price per unit, as a decimal string, by model then unit type."""

    def price_per_unit(self, model: str, unit_type: str = "tokens") -> Decimal:
        return _decimal(self.prices[model][unit_type])


@dataclass(frozen=True)
class GenesisAccount:
    """An account that exists from the first block, known by the hash of its key."""

    name: str
    role: str
    key_hash: str


@dataclass(frozen=True)
class Genesis:
    """The parsed genesis.json."""

    chain_id: str
    """Names the network; a data dir of another chain is refused."""
    genesis_time_ms: int
    """Timestamp of block 0, Unix milliseconds."""
    authorities: tuple[str, ...]
    """Hex Ed25519 public keys allowed to seal blocks."""
    params: Params
    accounts: tuple[GenesisAccount, ...]
    raw: dict[str, Any]
    """The document as given, for re-serialising and hashing."""

    @property
    def hash(self) -> str:
        return hash_hex(canonical(self.raw))

    def authority_label(self, key: str) -> str | None:
        """Where key stands in the genesis list, for people: "authority 2 of 3" (None: not an authority)."""
        if key not in self.authorities:
            return None
        return f"authority {self.authorities.index(key) + 1} of {len(self.authorities)}"

    def with_authorities(self, authorities: list[str], accounts: list[dict[str, str]]) -> Genesis:
        """A copy with authorities and extra accounts filled in (devnet initialisation)."""
        raw = dict(self.raw)
        raw["authorities"] = list(authorities)
        raw["accounts"] = list(self.raw.get("accounts", [])) + list(accounts)
        return parse_genesis(raw)


_INT_PARAMS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "max_block_txs": (1, 100_000),
        "block_max_wait_ms": (0, 10_000),
        "lease_seconds": (1, 7 * 86400),
        "max_attempts": (1, 1000),
        "active_miner_window_s": (1, 86400 * 365),
        "max_prompt_bytes": (1, 16 * 1024 * 1024),
        "max_result_bytes": (1, 64 * 1024 * 1024),
    }
)


def _fail(path: str, message: str) -> InvalidGenesis:
    return InvalidGenesis(f"genesis field '{path}': {message}")


def parse_time_ms(path: str, value: Any) -> int:
    if not isinstance(value, str):
        raise _fail(path, f"must be an ISO 8601 UTC time string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(path, f"'{value}' is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _fail(path, "must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
    ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if ms < 0:
        raise _fail(path, "must not be before 1970-01-01T00:00:00Z")
    return ms


def _parse_params(raw: Any) -> Params:
    if not isinstance(raw, dict):
        raise _fail("params", "must be an object")
    known = set(_INT_PARAMS) | {"prices"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(f"params.{unknown[0]}", f"unknown parameter (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, (low, high) in _INT_PARAMS.items():
        if name not in raw:
            continue
        value = raw[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(f"params.{name}", f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise _fail(f"params.{name}", f"must be between {low} and {high}, got {value}")
        values[name] = value
    prices = raw.get("prices", {})
    if not isinstance(prices, dict) or not prices:
        raise _fail("params.prices", "must be a non-empty object of model -> {unit: price}")
    for model, units in prices.items():
        if not MODEL_RE.match(model):
            raise _fail(f"params.prices.{model}", "is not a valid model name")
        if not isinstance(units, dict) or "tokens" not in units:
            raise _fail(f"params.prices.{model}", "must be an object with a 'tokens' price")
        for unit, price in units.items():
            where = f"params.prices.{model}.{unit}"
            if not isinstance(price, str):
                raise _fail(where, 'must be a decimal string such as "0.000002"')
            try:
                amount = Decimal(price)
            except InvalidOperation:
                raise _fail(where, f"'{price}' is not a decimal number") from None
            if not amount.is_finite() or amount < 0:
                raise _fail(where, "must be a finite, non-negative decimal")
    values["prices"] = {m: dict(u) for m, u in prices.items()}
    return Params(**values)


def _parse_accounts(raw: Any) -> tuple[GenesisAccount, ...]:
    if not isinstance(raw, list):
        raise _fail("accounts", "must be a list")
    seen_names: set[str] = set()
    seen_hashes: set[str] = set()
    accounts = []
    for i, item in enumerate(raw):
        where = f"accounts[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "role", "key_hash"}:
            raise _fail(where, "must be an object with exactly name, role and key_hash")
        name, role, key_hash = item["name"], item["role"], item["key_hash"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _fail(f"{where}.name", "must be 1-64 characters of A-Z a-z 0-9 . _ -")
        if role not in ROLES:
            raise _fail(f"{where}.role", f"must be one of {', '.join(ROLES)}")
        if not isinstance(key_hash, str) or not HEX64_RE.match(key_hash):
            raise _fail(f"{where}.key_hash", "must be 64 lowercase hex characters")
        if name in seen_names:
            raise _fail(f"{where}.name", f"'{name}' appears twice")
        if key_hash in seen_hashes:
            raise _fail(f"{where}.key_hash", "appears twice")
        seen_names.add(name)
        seen_hashes.add(key_hash)
        accounts.append(GenesisAccount(name, role, key_hash))
    return tuple(accounts)


def parse_genesis(raw: Any) -> Genesis:
    """Validate a genesis document; errors name the offending field."""
    if not isinstance(raw, dict):
        raise InvalidGenesis("genesis must be a JSON object")
    known = {"chain_id", "genesis_time", "authorities", "params", "accounts"}
    for name in ("chain_id", "genesis_time", "authorities", "params"):
        if name not in raw:
            raise _fail(name, "is missing")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    chain_id = raw["chain_id"]
    if not isinstance(chain_id, str) or not NAME_RE.match(chain_id):
        raise _fail("chain_id", "must be 1-64 characters of A-Z a-z 0-9 . _ -")
    genesis_time_ms = parse_time_ms("genesis_time", raw["genesis_time"])
    authorities = raw["authorities"]
    if not isinstance(authorities, list):
        raise _fail("authorities", "must be a list of hex Ed25519 public keys")
    for i, key in enumerate(authorities):
        if not isinstance(key, str) or not HEX64_RE.match(key):
            raise _fail(f"authorities[{i}]", "must be a 64-character lowercase hex public key")
    if len(set(authorities)) != len(authorities):
        raise _fail("authorities", "lists a key twice")
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        authorities=tuple(authorities),
        params=_parse_params(raw["params"]),
        accounts=_parse_accounts(raw.get("accounts", [])),
        raw=raw,
    )
