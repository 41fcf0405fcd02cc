"""The follower's pieces in-process: data dir, opening, verification before storage, health."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import node.cli
from chain.blocks import Block
from node.config import Config
from node.datadir import DataDir, DataDirError
from node.events import BlockFeed
from node.producer import NodeUnavailable
from node.roles import FollowerRole, sequencer_of, signing_key_of
from node.runtime import Node
from node.store import Store
from node.sync import Follower, display_url, validate_upstream, validate_upstreams
from tests.chain.devchain import genesis_doc, job_chain

CHAIN = job_chain()


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "authority-genesis.json"
    path.write_text(json.dumps(genesis_doc()))
    return path


@pytest.fixture
def follower(tmp_path: Path) -> Any:
    store = Store(tmp_path / "chain", CHAIN.genesis)
    f = Follower(store, BlockFeed(), "http://127.0.0.1:9", "peer-key-0000000000000000")
    try:
        yield f
    finally:
        f._pipeline.close()
        store.close()


def test_follower_stores_valid_blocks_in_order(follower: Follower) -> None:
    stored, rejected = follower._verify_and_write(list(CHAIN.blocks[1:]))
    assert rejected is None and [b.height for b in stored] == [1, 2]
    assert follower.store.tip() == CHAIN.tip


def test_follower_skips_a_block_it_already_holds(follower: Follower) -> None:
    follower._verify_and_write([CHAIN.blocks[1]])
    stored, rejected = follower._verify_and_write([CHAIN.blocks[1], CHAIN.blocks[2]])
    assert rejected is None and [b.height for b in stored] == [2]


def test_follower_rejects_a_wrong_state_root_and_stores_nothing(follower: Follower) -> None:
    bad = Block(
        replace(CHAIN.blocks[1].header, state_root="00" * 32), CHAIN.blocks[1].signature, CHAIN.blocks[1].transactions
    )
    stored, rejected = follower._verify_and_write([bad])
    assert stored == [] and rejected is not None
    # The header changed, so its signature no longer verifies: that check comes first.
    assert rejected.check == "bad_signature" and rejected.height == 1
    assert follower.store.tip().height == 0


def test_follower_keeps_the_valid_prefix_of_a_batch_and_names_the_bad_block(follower: Follower) -> None:
    good, second = CHAIN.blocks[1], CHAIN.blocks[2]
    forged = Block(second.header, good.signature, second.transactions)
    stored, rejected = follower._verify_and_write([good, forged])
    assert [b.height for b in stored] == [1] and rejected is not None
    assert rejected.check == "bad_signature" and rejected.height == 2
    assert follower.store.tip() == good.header


def test_health_reports_degraded_with_the_reason_check_and_lag(follower: Follower) -> None:
    follower.upstream_height = 7
    follower._degrade("rejected block 1 from the upstream: bad", "bad_tx_root")
    h = follower.health()
    assert h["check"] == "bad_tx_root" and h["reason"].startswith("rejected block 1") and h["lag"] == 7
    assert h["degraded_since"].endswith("Z")
    follower._healthy("live")
    assert "reason" not in follower.health() and not follower.degraded


def test_upstream_url_is_checked_and_shown_without_credentials() -> None:
    assert validate_upstream("http://127.0.0.1:8001/") == "http://127.0.0.1:8001"
    assert display_url("https://user:secret@node.example:8443/base") == "https://node.example:8443/base"
    for bad in ("ftp://x", "127.0.0.1:8001", "http://x/?a=1"):
        with pytest.raises(ValueError):
            validate_upstream(bad)


def test_several_upstreams_are_checked_and_the_follower_moves_to_the_next_after_a_failure(tmp_path: Path) -> None:
    assert validate_upstreams("http://a:1/, http://b:2") == ["http://a:1", "http://b:2"]
    for bad in ("", " , ", "http://a:1,http://a:1/", "http://a:1,ftp://b"):
        with pytest.raises(ValueError):
            validate_upstreams(bad)
    store = Store(tmp_path / "chain", CHAIN.genesis)
    f = Follower(store, BlockFeed(), "http://127.0.0.1:9,http://u:p@127.0.0.1:10", "peer-key-0000000000000000")
    try:
        assert f.upstream == "http://127.0.0.1:9"
        f._next_upstream()
        health = f.health()
        assert health["upstream"] == "http://127.0.0.1:10" and health["upstreams"] == [
            "http://127.0.0.1:9",
            "http://127.0.0.1:10",
        ]
        f._next_upstream()
        assert f.upstream == "http://127.0.0.1:9"
    finally:
        f._pipeline.close()
        store.close()


def test_fresh_follower_data_dir_needs_an_effective_genesis(tmp_path: Path, genesis_file: Path) -> None:
    with pytest.raises(DataDirError, match="needs --genesis"):
        DataDir(tmp_path / "a").initialise(None, follower=True)
    with pytest.raises(DataDirError, match="names no authority"):
        DataDir(tmp_path / "b").initialise(node.datadir.BUNDLED_GENESIS, follower=True)
    datadir = DataDir(tmp_path / "c")
    result = datadir.initialise(genesis_file, follower=True)
    assert result.created and result.admin_key is None and result.genesis.hash == CHAIN.genesis.hash
    assert not datadir.node_key_path.exists() and not datadir.admin_key_path.exists()


def _open(tmp_path: Path, **config: Any) -> Node:
    n = Node(Config(data_dir=tmp_path / "f", **config))
    try:
        n.open()
    except BaseException:
        n.close()
        raise
    return n


def test_node_opens_as_a_follower_with_no_key_and_no_sequencer(tmp_path: Path, genesis_file: Path) -> None:
    n = _open(tmp_path, genesis=genesis_file, follow="http://127.0.0.1:9", peer_key="peer-key-0000000000000000")
    try:
        assert isinstance(n.role, FollowerRole) and n.role.name == "follower"
        with pytest.raises(NodeUnavailable):
            sequencer_of(n.role)  # a follower seals nothing and signs nothing
        with pytest.raises(NodeUnavailable):
            signing_key_of(n.role)
        assert n.health()["role"] == "follower" and n.health()["height"] == 0
    finally:
        n.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"follow": "http://127.0.0.1:9"}, "needs --peer-key"),
        ({"follow": "not a url", "peer_key": "k" * 20}, "--follow must be"),
        (
            {"follow": "http://127.0.0.1:9", "peer_key": "k" * 20, "api_keys": Path("keys.json")},
            "--api-keys is for the authority",
        ),
    ],
)
def test_follower_misconfiguration_is_one_clear_error(
    tmp_path: Path, genesis_file: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataDirError, match=message):
        _open(tmp_path, genesis=genesis_file, **config)


def test_authority_data_dir_refuses_to_start_as_a_follower_and_vice_versa(tmp_path: Path, genesis_file: Path) -> None:
    authority = Node(Config(data_dir=tmp_path / "f"))
    authority.open()
    authority.close()
    with pytest.raises(DataDirError, match="holds the authority key"):
        _open(tmp_path, follow="http://127.0.0.1:9", peer_key="k" * 20)
    follower_dir = tmp_path / "g"
    made = Node(Config(data_dir=follower_dir, genesis=genesis_file, follow="http://127.0.0.1:9", peer_key="k" * 20))
    made.open()
    made.close()
    with pytest.raises(DataDirError, match="start it with --follow"):
        Node(Config(data_dir=follower_dir)).open()


def test_start_takes_follow_and_peer_key_from_flags_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(node.cli, "run_start", lambda **kwargs: calls.append(kwargs))
    runner = CliRunner()
    assert runner.invoke(node.cli.cli, ["start", "--follow", "http://a:1", "--peer-key", "pk"]).exit_code == 0
    env = {"AITBC_FOLLOW": "http://b:2", "AITBC_PEER_KEY": "pk2"}
    assert runner.invoke(node.cli.cli, ["start"], env=env).exit_code == 0
    assert [(c["follow"], c["peer_key"]) for c in calls] == [("http://a:1", "pk"), ("http://b:2", "pk2")]
