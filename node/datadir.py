"""The data dir: the store, the node key, the admin key and the effective genesis.

<data-dir>/genesis.json   effective genesis (authorities filled in); its presence marks an initialised dir
<data-dir>/node_key       the node's Ed25519 seed, hex, mode 0600
<data-dir>/admin_key      the admin API key created at initialisation, mode 0600
<data-dir>/chain/         LevelDB
"""

from __future__ import annotations

import json
import math
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.crypto import NodeKey, hash_hex
from chain.errors import InvalidGenesis
from chain.genesis import Genesis, parse_genesis

BUNDLED_GENESIS = Path(__file__).resolve().parent.parent / "genesis.json"
ADMIN_NAME = "admin"
MIN_KEY_CHARS = 16
MIN_KEY_BITS = 128
"""A provisioned key's least strength: key hashes are public (genesis, chain state) and cheap to
compute, so only a key this hard to guess keeps its hash from being searched."""
_CHARACTER_CLASSES = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
)
_OTHERS = 33  # the other printable ASCII characters
MIN_DISTINCT_SHARE = 0.25
"""A key whose distinct characters are fewer than this share of its length counts as repetitive."""


def key_strength_bits(key: str) -> float:
    """An upper estimate of a key's entropy: its length times log2 of the alphabets its characters
    come from (lowercase, uppercase, digits, others); a repetitive key (few distinct characters)
    counts only its distinct ones. Random keys reach their real strength; guessable ones fall short."""
    used = set(key)
    pool = sum(size for chars, size in _CHARACTER_CLASSES if used & chars)
    pool += _OTHERS if used - set().union(*(chars for chars, _ in _CHARACTER_CLASSES)) else 0
    length = len(key) if len(used) >= MIN_DISTINCT_SHARE * len(key) else len(used)
    return length * math.log2(pool) if pool > 1 else 0.0


class DataDirError(Exception):
    """A problem with the data dir or its files, worded for an operator."""


def new_api_key() -> str:
    return "aitbc_" + secrets.token_urlsafe(32)


def api_key_hash(api_key: str) -> str:
    """Only this hash of an API key is ever stored."""
    return hash_hex(api_key.encode("utf-8"))


def load_genesis_file(path: Path) -> Genesis:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataDirError(f"cannot read genesis file {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise DataDirError(f"genesis file {path} is not valid JSON: {exc}") from None
    try:
        return parse_genesis(raw)
    except InvalidGenesis as exc:
        raise DataDirError(f"{path}: {exc.detail}") from None


def fsync_dir(path: Path) -> None:
    """Make the latest changes to a directory's entries durable (a file renamed into it, a
    directory created in it). fsync of a file covers its contents, not the entry naming it:
    until its directory is synced, a power cut may undo a rename or a mkdir."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path, mode: int = 0o700) -> bool:
    """mkdir -p path, each directory it creates made durable in its parent (fsync_dir).
    Returns whether path was created."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    for created in reversed(missing):
        fsync_dir(created.parent)
    return bool(missing)


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file atomically and durably with the given mode, never readable by others in
    between: the contents are fsynced before the rename, the directory after it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class GroupFiles:
    """What `aitbc-node group-init` wrote: the group's genesis and each member's key file."""

    genesis: Path
    member_keys: list[Path]
    admin_key: Path
    peer_key: Path


GROUP_ADMIN_NAME = "group-admin"
GROUP_PEER_NAME = "group-peer"


def create_group_files(out: Path, members: int, source: Path | None = None) -> GroupFiles:
    """A new authority group's files in out: genesis.json naming `members` new authority keys and
    two accounts, an admin (to create further keys through any member) and a peer (--peer-key,
    for a member catching up over HTTP); member-N.key with member N's seed; admin.key and
    peer.key with the API keys. Secrets are written 0600; out must not hold any of these files."""
    if not 1 <= members <= 64:
        raise DataDirError(f"a group has 1 to 64 members, not {members}")
    base = load_genesis_file(source or BUNDLED_GENESIS)
    if base.authorities:
        raise DataDirError(f"{source} already names its authorities; start from a genesis that names none")
    files = GroupFiles(
        out / "genesis.json",
        [out / f"member-{n}.key" for n in range(members)],
        out / "admin.key",
        out / "peer.key",
    )
    existing = [p for p in (files.genesis, *files.member_keys, files.admin_key, files.peer_key) if p.exists()]
    if existing:
        raise DataDirError(f"{existing[0]} exists; group-init never overwrites a group's files (choose a new DIR)")
    keys = [NodeKey(secrets.token_bytes(32)) for _ in range(members)]
    admin_key, peer_key = new_api_key(), new_api_key()
    accounts = [
        {"name": GROUP_ADMIN_NAME, "role": "admin", "key_hash": api_key_hash(admin_key)},
        {"name": GROUP_PEER_NAME, "role": "peer", "key_hash": api_key_hash(peer_key)},
    ]
    try:
        genesis = base.with_authorities([k.public_hex for k in keys], accounts)
    except InvalidGenesis as exc:
        raise DataDirError(f"cannot make the group's genesis: {exc.detail}") from None
    make_dir(out)
    for key, path in zip(keys, files.member_keys, strict=True):
        write_private(path, key.seed.hex() + "\n")
    write_private(files.admin_key, admin_key + "\n")
    write_private(files.peer_key, peer_key + "\n")
    write_private(files.genesis, json.dumps(genesis.raw, indent=2, sort_keys=True) + "\n", 0o644)
    return files


@dataclass(frozen=True)
class InitResult:
    genesis: Genesis
    created: bool
    admin_key: str | None
    """The admin key, only when this call created the data dir."""


class DataDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser().resolve()

    @property
    def genesis_path(self) -> Path:
        return self.path / "genesis.json"

    @property
    def node_key_path(self) -> Path:
        return self.path / "node_key"

    @property
    def admin_key_path(self) -> Path:
        return self.path / "admin_key"

    @property
    def unannounced_path(self) -> Path:
        return self.path / "admin_key.unannounced"

    def unannounced_admin_key(self) -> str | None:
        """The admin key, while no start has shown it yet (then `announced()` is called)."""
        if not self.unannounced_path.exists():
            return None
        try:
            return self.admin_key_path.read_text(encoding="ascii").strip() or None
        except OSError:
            return None

    def announced(self) -> None:
        """A start has shown the admin key: later starts do not."""
        self.unannounced_path.unlink(missing_ok=True)

    @property
    def chain_path(self) -> Path:
        return self.path / "chain"

    @property
    def initialised(self) -> bool:
        return self.genesis_path.exists()

    def genesis(self) -> Genesis:
        if not self.initialised:
            raise DataDirError(
                f"{self.path} is not an initialised data dir (run 'aitbc-node init --data-dir {self.path}')"
            )
        return load_genesis_file(self.genesis_path)

    def node_key(self) -> NodeKey | None:
        if not self.node_key_path.exists():
            return None
        try:
            return NodeKey.from_seed_hex(self.node_key_path.read_text(encoding="ascii"))
        except (ValueError, OSError) as exc:
            raise DataDirError(f"{self.node_key_path} is not a valid node key: {exc}") from None

    def initialise(
        self, source: Path | None, node_key_file: Path | None = None, *, follower: bool = False
    ) -> InitResult:
        """Create the data dir if it is fresh; otherwise check it matches `source`.

        A follower's data dir holds only the effective genesis it was given (which names the
        authority) and its chain: no node key, no admin key.
        """
        if self.initialised:
            effective = self.genesis()
            if source is not None:
                self._check_same_chain(load_genesis_file(source), effective)
            return InitResult(effective, created=False, admin_key=self.unannounced_admin_key())

        if follower and source is None:
            raise DataDirError(
                "a fresh follower needs --genesis FILE: the effective genesis of the chain it follows "
                "(the authority's data dir has it, and nodes serve it at GET /v1/chain/genesis)"
            )
        base = load_genesis_file(source or BUNDLED_GENESIS)
        if follower and not base.authorities:
            raise DataDirError(
                f"{source} names no authority; a follower needs the authority's effective genesis "
                "(GET /v1/chain/genesis on the authority, or genesis.json in its data dir)"
            )
        make_dir(self.path)
        os.chmod(self.path, 0o700)
        if follower:
            write_private(self.genesis_path, json.dumps(base.raw, indent=2, sort_keys=True) + "\n", 0o644)
            return InitResult(base, created=True, admin_key=None)
        key = self._install_node_key(node_key_file)
        admin_key: str | None = None
        if base.authorities:
            if key is None or key.public_hex not in base.authorities:
                raise DataDirError(
                    "the genesis names its authorities and this node holds none of their keys; "
                    "pass --node-key FILE with an authority's seed"
                )
            effective = base
        else:
            # Devnet: this node becomes the authority, and an admin account is created.
            key = key or NodeKey(secrets.token_bytes(32))
            write_private(self.node_key_path, key.seed.hex() + "\n")
            admin_key = new_api_key()
            write_private(self.admin_key_path, admin_key + "\n")
            # Until a start announces it, the key is shown again: a first start that fails after
            # this point (a port in use, say) must not leave an admin key no one has seen.
            write_private(self.unannounced_path, "")
            admin = {"name": ADMIN_NAME, "role": "admin", "key_hash": api_key_hash(admin_key)}
            try:
                effective = base.with_authorities([key.public_hex], [admin])
            except InvalidGenesis as exc:
                raise DataDirError(f"cannot add the admin account to the genesis: {exc.detail}") from None
        write_private(self.genesis_path, json.dumps(effective.raw, indent=2, sort_keys=True) + "\n", 0o644)
        return InitResult(effective, created=True, admin_key=admin_key)

    def _install_node_key(self, node_key_file: Path | None) -> NodeKey | None:
        if node_key_file is None:
            return self.node_key()
        try:
            key = NodeKey.from_seed_hex(node_key_file.read_text(encoding="ascii"))
        except (ValueError, OSError) as exc:
            raise DataDirError(f"{node_key_file} is not a valid node key (64 hex characters): {exc}") from None
        write_private(self.node_key_path, key.seed.hex() + "\n")
        return key

    def _check_same_chain(self, source: Genesis, effective: Genesis) -> None:
        def core(g: Genesis) -> dict[str, Any]:
            return {k: v for k, v in g.raw.items() if k not in ("authorities", "accounts")}

        if source.hash == effective.hash:
            return
        if source.authorities or core(source) != core(effective):
            raise DataDirError(
                f"the data dir {self.path} belongs to chain '{effective.chain_id}' (genesis hash {effective.hash}), "
                f"not to the given genesis '{source.chain_id}' (genesis hash {source.hash}); start it without "
                f"--genesis (it keeps its own {self.genesis_path}), or give this genesis another --data-dir"
            )


@dataclass(frozen=True)
class ProvisionedKey:
    name: str
    role: str
    key_hash: str


def load_api_keys(path: Path) -> list[ProvisionedKey]:
    """Parse an --api-keys file: a JSON list of {"key", "role", "name"}."""
    from chain.accounts import validate_account_fields
    from chain.errors import LedgerError

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataDirError(f"cannot read API keys file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DataDirError(f"API keys file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise DataDirError(f"API keys file {path} must hold a JSON list")
    keys: list[ProvisionedKey] = []
    names: set[str] = set()
    hashes: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{path} entry {i}"
        if not isinstance(item, dict) or set(item) != {"key", "role", "name"}:
            raise DataDirError(f"{where}: must be an object with exactly key, role and name")
        try:
            validate_account_fields(item["name"], item["role"])
        except LedgerError as exc:
            raise DataDirError(f"{where}: {exc.detail}") from None
        if not isinstance(item["key"], str) or len(item["key"]) < MIN_KEY_CHARS:
            raise DataDirError(f"{where}: key must be a string of at least {MIN_KEY_CHARS} characters")
        if key_strength_bits(item["key"]) < MIN_KEY_BITS:
            raise DataDirError(
                f"{where}: key is too easy to guess (about {key_strength_bits(item['key']):.0f} bits; at least "
                f"{MIN_KEY_BITS} needed, e.g. 32 random hex characters or 22 random base64url ones): its hash is "
                "public in genesis and on chain"
            )
        key_hash = api_key_hash(item["key"])
        if item["name"] in names or key_hash in hashes:
            raise DataDirError(f"{where}: name or key repeats an earlier entry")
        names.add(item["name"])
        hashes.add(key_hash)
        keys.append(ProvisionedKey(item["name"], item["role"], key_hash))
    return keys
