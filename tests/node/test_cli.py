from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import node.cli
from chain.accounts import get_account
from chain.crypto import NodeKey
from chain.genesis import parse_genesis
from chain.state import WorkingState
from node import __version__
from node.cli import cli
from node.config import BLOCK_FRAME_BYTES, TX_ROOM_BYTES, Config
from node.datadir import DataDir, api_key_hash
from node.store import Store
from tests.support import REPO_GENESIS, run_cli
from tests.vectors.aitbc_protocol import SAMPLE


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_clean_failure(result: Result) -> str:
    """A non-zero exit with exactly one line of explanation and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def init_dir(path: Path) -> Result:
    result = invoke("init", "--data-dir", str(path))
    assert result.exit_code == 0, result.output
    return result


def account_on_chain(data_dir: Path, name: str) -> dict[str, Any] | None:
    datadir = DataDir(data_dir)
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    try:
        return get_account(WorkingState(store), name)
    finally:
        store.close()


def tip_height(data_dir: Path) -> int:
    datadir = DataDir(data_dir)
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    try:
        return store.tip().height
    finally:
        store.close()


# -- help and version --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ((), ["start", "init", "verify", "keys"]),
        (("start",), ["--data-dir", "--port", "--host", "--api-keys", "AITBC_PORT"]),
        (("init",), ["--data-dir", "--genesis", "--node-key"]),
        (("verify",), ["--data-dir", "--quiet"]),
        (("keys",), ["create"]),
        (("keys", "create"), ["--role", "--name", "--data-dir", "--node", "--admin-key"]),
    ],
)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_at_every_level(args: tuple[str, ...], mentions: list[str], flag: str) -> None:
    result = invoke(*args, flag)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:")
    for word in mentions:
        assert word in result.output


def test_version_flag_prints_the_package_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


# -- environment variables -----------------------------------------------------------


@pytest.fixture
def captured_start(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(node.cli, "run_start", lambda **kwargs: calls.append(kwargs))
    return calls


def test_start_takes_its_settings_from_aitbc_env_vars(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text("[]")
    env: dict[str, str | None] = {
        "AITBC_DATA_DIR": str(tmp_path / "from-env"),
        "AITBC_PORT": "9123",
        "AITBC_HOST": "127.0.0.2",
        "AITBC_LOG_LEVEL": "debug",
        "AITBC_API_KEYS": str(keys_file),
    }
    result = invoke("start", env=env)

    assert result.exit_code == 0, result.output
    assert len(captured_start) == 1
    config = Config(**captured_start[0])
    assert config.data_dir == tmp_path / "from-env"
    assert config.port == 9123
    assert config.host == "127.0.0.2"
    assert config.log_level == "debug"
    assert config.api_keys == keys_file


def test_flags_override_env_vars(tmp_path: Path, captured_start: list[dict[str, Any]]) -> None:
    env: dict[str, str | None] = {"AITBC_DATA_DIR": str(tmp_path / "from-env"), "AITBC_PORT": "9123"}
    result = invoke("start", "--data-dir", str(tmp_path / "from-flag"), "--port", "9124", env=env)

    assert result.exit_code == 0, result.output
    assert captured_start[0]["data_dir"] == tmp_path / "from-flag"
    assert captured_start[0]["port"] == 9124


def test_start_defaults_with_no_arguments(captured_start: list[dict[str, Any]]) -> None:
    result = invoke("start", env={k: None for k in os.environ if k.startswith("AITBC_")})

    assert result.exit_code == 0, result.output
    config = Config(**captured_start[0])
    assert config == Config()


def test_group_settings_come_from_env_vars_and_a_too_short_tail_is_a_usage_error(
    captured_start: list[dict[str, Any]],
) -> None:
    env: dict[str, str | None] = {"AITBC_ETCD_TAIL_BLOCKS": "20", "AITBC_MAX_BLOCK_BYTES": "500000"}
    assert invoke("start", env=env).exit_code == 0
    config = Config(**captured_start[0])
    assert config.etcd_tail_blocks == 20 and config.max_block_bytes == 500_000

    result = invoke("start", "--etcd-tail-blocks", "5")
    assert result.exit_code == 2 and "--etcd-tail-blocks" in result.output and "x>=10" in result.output
    assert len(captured_start) == 1


def test_a_group_members_default_body_limit_keeps_any_write_within_a_block() -> None:
    single, member = Config(), Config(etcd="http://127.0.0.1:2379")
    assert single.body_limit == 2 * 1024 * 1024 and single.block_room_problem() is None
    assert member.body_limit == member.max_block_bytes - BLOCK_FRAME_BYTES - TX_ROOM_BYTES
    assert member.block_room_problem() is None
    assert Config(etcd="http://127.0.0.1:2379", max_block_bytes=300_000).block_room_problem() is None


def test_a_group_member_whose_body_limit_lets_a_write_outgrow_a_block_is_refused() -> None:
    problem = Config(etcd="http://127.0.0.1:2379", max_body_bytes=2 * 1024 * 1024).block_room_problem()
    assert problem is not None
    assert "--max-body-bytes 2097152" in problem and "--max-block-bytes 1400000" in problem
    assert "at most 1333440" in problem
    assert Config(max_body_bytes=2 * 1024 * 1024).block_room_problem() is None  # no etcd, no hard limit


def test_bad_port_env_var_is_a_usage_error(captured_start: list[dict[str, Any]]) -> None:
    result = invoke("start", env={"AITBC_PORT": "not-a-port"})
    assert result.exit_code == 2
    assert "AITBC_PORT" in result.output
    assert captured_start == []


def test_init_honours_aitbc_data_dir(tmp_path: Path) -> None:
    target = tmp_path / "env-dir"
    result = invoke("init", env={"AITBC_DATA_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert (target / "genesis.json").is_file()


# -- init --------------------------------------------------------------------------


def test_init_creates_private_data_dir_with_keys_and_effective_genesis(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    result = init_dir(data_dir)

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "node_key") == 0o600
    assert mode(data_dir / "admin_key") == 0o600
    key = NodeKey.from_seed_hex((data_dir / "node_key").read_text())
    admin_key = (data_dir / "admin_key").read_text().strip()
    effective = parse_genesis(json.loads((data_dir / "genesis.json").read_text()))
    assert effective.authorities == (key.public_hex,)
    assert [(a.name, a.role, a.key_hash) for a in effective.accounts] == [("admin", "admin", api_key_hash(admin_key))]
    assert effective.chain_id == parse_genesis(json.loads(REPO_GENESIS.read_text())).chain_id
    # The admin key is shown exactly once, and never stored in clear outside admin_key.
    assert result.output.count(admin_key) == 1
    assert admin_key not in (data_dir / "genesis.json").read_text()
    assert tip_height(data_dir) == 0
    assert account_on_chain(data_dir, "admin") is not None


def test_second_init_says_already_initialised_and_shows_no_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)
    genesis_before = (data_dir / "genesis.json").read_bytes()
    node_key_before = (data_dir / "node_key").read_bytes()
    admin_key = (data_dir / "admin_key").read_text().strip()

    result = invoke("init", "--data-dir", str(data_dir))

    assert result.exit_code == 0, result.output
    assert "already initialised" in result.output
    assert admin_key not in result.output
    assert "admin key" not in result.output
    assert (data_dir / "genesis.json").read_bytes() == genesis_before
    assert (data_dir / "node_key").read_bytes() == node_key_before


def _genesis_with(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(REPO_GENESIS.read_text())
    for dotted, value in changes.items():
        target = raw
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (_genesis_with(params__max_block_txs="ten"), "params.max_block_txs"),
        (_genesis_with(params__lease_seconds=0), "params.lease_seconds"),
        (_genesis_with(chain_id=_DELETE), "chain_id"),
        (_genesis_with(genesis_time="yesterday"), "genesis_time"),
        (_genesis_with(authorities=["not-hex"]), "authorities[0]"),
        (_genesis_with(accounts=[{"name": "x", "role": "king", "key_hash": "ab" * 32}]), "accounts[0].role"),
        (_genesis_with(surprise=1), "surprise"),
    ],
)
def test_malformed_genesis_gives_one_line_naming_the_field(tmp_path: Path, document: Any, field: str) -> None:
    genesis_file = tmp_path / "bad-genesis.json"
    genesis_file.write_text(json.dumps(document))
    data_dir = tmp_path / "node"

    line = assert_clean_failure(invoke("init", "--data-dir", str(data_dir), "--genesis", str(genesis_file)))

    assert f"'{field}'" in line
    assert line.startswith("aitbc-node: ")
    assert not data_dir.exists()


def test_genesis_that_is_not_json_gives_one_clear_line(tmp_path: Path) -> None:
    genesis_file = tmp_path / "bad-genesis.json"
    genesis_file.write_text('{"chain_id": "x",')
    line = assert_clean_failure(invoke("init", "--data-dir", str(tmp_path / "node"), "--genesis", str(genesis_file)))
    assert "not valid JSON" in line
    assert str(genesis_file) in line


def test_malformed_genesis_via_the_real_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    genesis_file = tmp_path / "bad-genesis.json"
    genesis_file.write_text(json.dumps(_genesis_with(params__max_block_txs=-1)))

    proc = run_cli("init", "--data-dir", str(tmp_path / "node"), "--genesis", str(genesis_file))

    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "params.max_block_txs" in proc.stderr


# -- keys create (offline) -------------------------------------------------------------


def test_keys_create_on_stopped_data_dir_prints_a_key_and_creates_the_account(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)

    result = invoke("keys", "create", "--role", "client", "--name", "bob", "--data-dir", str(data_dir))

    assert result.exit_code == 0, result.output
    printed_key = result.stdout.strip()
    assert len(printed_key.splitlines()) == 1
    assert len(printed_key) >= 16
    assert "shown once" in result.stderr
    bob = account_on_chain(data_dir, "bob")
    assert bob is not None
    assert bob["role"] == "client"
    assert bob["key_hash"] == api_key_hash(printed_key)
    assert bob["revoked"] is False
    assert tip_height(data_dir) == 1


def test_keys_create_with_duplicate_name_fails_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)
    first = invoke("keys", "create", "--role", "client", "--name", "bob", "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    bob_before = account_on_chain(data_dir, "bob")

    second = invoke("keys", "create", "--role", "miner", "--name", "bob", "--data-dir", str(data_dir))

    line = assert_clean_failure(second)
    assert "bob" in line and "already exists" in line
    assert second.stdout == ""  # no key is printed for an account that was not created
    assert account_on_chain(data_dir, "bob") == bob_before
    assert tip_height(data_dir) == 1


def test_keys_create_on_uninitialised_dir_fails_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "nothing-here"
    line = assert_clean_failure(
        invoke("keys", "create", "--role", "client", "--name", "bob", "--data-dir", str(data_dir))
    )
    assert "not an initialised data dir" in line
    assert "aitbc-node init" in line


def test_keys_create_while_store_is_open_points_at_online_mode(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)
    datadir = DataDir(data_dir)
    store = Store(datadir.chain_path, datadir.genesis())
    try:
        result = invoke("keys", "create", "--role", "client", "--name", "bob", "--data-dir", str(data_dir))
    finally:
        store.close()
    line = assert_clean_failure(result)
    assert "in use" in line and "--node" in line
    assert account_on_chain(data_dir, "bob") is None


def test_keys_create_with_bad_role_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("keys", "create", "--role", "wizard", "--name", "bob", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--role" in result.output


# -- verify --------------------------------------------------------------------------


def test_verify_on_fresh_dir_passes(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)
    result = invoke("verify", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 1 blocks")


def test_verify_on_initialised_dir_without_chain_fails_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    init_dir(data_dir)
    for path in sorted((data_dir / "chain").iterdir()):
        path.unlink()
    (data_dir / "chain").rmdir()

    line = assert_clean_failure(invoke("verify", "--data-dir", str(data_dir)))
    assert "holds no chain" in line


# -- verify-receipt --public-key: a bare AITBC receipt, any signer --------------------------------

SAMPLE_FILE = Path(__file__).parent.parent / "vectors" / "aitbc-receipt-sample.json"


def test_verify_receipt_accepts_the_published_sample_with_its_key(tmp_path: Path) -> None:
    for key in (SAMPLE["verify_key_hex"], SAMPLE["signature"]["key_id"]):
        result = invoke("verify-receipt", str(SAMPLE_FILE), "--public-key", key)
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines() == [
            "ok: receipt rcpt-20250926-000123 for job job-abc123: "
            f"Ed25519 signature by {SAMPLE['verify_key_hex']} verifies"
        ]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({**SAMPLE["payload"], "signature": SAMPLE["signature"]}))
    assert invoke("verify-receipt", str(bare), "--public-key", SAMPLE["verify_key_hex"]).exit_code == 0


@pytest.mark.parametrize("field", sorted(SAMPLE["payload"]))
def test_verify_receipt_refuses_the_sample_with_one_field_changed(tmp_path: Path, field: str) -> None:
    value = SAMPLE["payload"][field]
    changed = tmp_path / "changed.json"
    changed.write_text(
        json.dumps(
            {
                **SAMPLE,
                "payload": {**SAMPLE["payload"], field: value + 1 if isinstance(value, (int, float)) else value + "x"},
            }
        )
    )
    line = assert_clean_failure(invoke("verify-receipt", str(changed), "--public-key", SAMPLE["verify_key_hex"]))
    assert invoke("verify-receipt", str(changed), "--public-key", SAMPLE["verify_key_hex"]).exit_code == 1
    assert (
        line == "aitbc-node: verification failed: bad signature: it does not verify over the receipt's canonical bytes"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"alg": "ed448"}, "alg 'ed448' is not supported (expected 'Ed25519')"),
        ({"key_id": NodeKey(bytes(32)).key_id}, "key mismatch"),
    ],
)
def test_verify_receipt_names_a_bad_alg_or_a_key_mismatch(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({**SAMPLE, "signature": {**SAMPLE["signature"], **change}}))
    line = assert_clean_failure(invoke("verify-receipt", str(doc), "--public-key", SAMPLE["verify_key_hex"]))
    assert reason in line


def test_verify_receipt_public_key_and_genesis_are_mutually_exclusive(tmp_path: Path) -> None:
    line = assert_clean_failure(
        invoke(
            "verify-receipt", str(SAMPLE_FILE), "--public-key", SAMPLE["verify_key_hex"], "--genesis", str(REPO_GENESIS)
        )
    )
    assert "mutually exclusive" in line
    assert "--genesis" in assert_clean_failure(invoke("verify-receipt", str(SAMPLE_FILE), env={"AITBC_GENESIS": None}))


@pytest.mark.parametrize("key", ["", "abc", "00" * 31, "zz" * 32])
def test_verify_receipt_refuses_a_malformed_public_key(key: str) -> None:
    assert "--public-key" in assert_clean_failure(invoke("verify-receipt", str(SAMPLE_FILE), "--public-key", key))


def test_verify_receipt_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert "cannot read" in assert_clean_failure(
        invoke("verify-receipt", str(junk), "--public-key", SAMPLE["verify_key_hex"])
    )


def test_group_init_writes_a_group_genesis_and_private_keys_and_never_overwrites(tmp_path: Path) -> None:
    from node.datadir import api_key_hash

    out = tmp_path / "grp"
    first = CliRunner().invoke(node.cli.cli, ["group-init", str(out), "--members", "2"])
    assert first.exit_code == 0, first.output
    genesis = parse_genesis(json.loads((out / "genesis.json").read_text()))
    seeds = [NodeKey.from_seed_hex((out / f"member-{n}.key").read_text()) for n in range(2)]
    assert list(genesis.authorities) == [k.public_hex for k in seeds]
    roles = {a["role"]: a["key_hash"] for a in genesis.raw["accounts"]}
    assert roles == {
        "admin": api_key_hash((out / "admin.key").read_text().strip()),
        "peer": api_key_hash((out / "peer.key").read_text().strip()),
    }
    for name in ("member-0.key", "member-1.key", "admin.key", "peer.key"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    before = (out / "admin.key").read_text()
    again = CliRunner().invoke(node.cli.cli, ["group-init", str(out)])
    assert again.exit_code == 1 and "never overwrites" in again.output and "Traceback" not in again.output
    assert (out / "admin.key").read_text() == before
    named = CliRunner().invoke(
        node.cli.cli, ["group-init", str(tmp_path / "g2"), "--genesis", str(out / "genesis.json")]
    )
    assert named.exit_code == 1 and "already names its authorities" in named.output
