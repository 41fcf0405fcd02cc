"""`aitbc-node status` as text (node.status.render_status): a single node, a follower, and the
members of an authority group."""

from __future__ import annotations

from typing import Any

from node.status import render_status

KEY = "ab" * 32


def status(role: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": "0.3.0",
        "role": role,
        "chain_id": "aitbc-devnet",
        "genesis_hash": "12" * 32,
        "height": 7,
        "tip_hash": "34" * 32,
        "tip_age_s": 2.5,
        "mempool_size": 1,
        "jobs": {"pending": 2, "completed": 3, "total": 5},
        "receipts": 3,
        "active_miners": 1,
        "sync": None,
        **extra,
    }


def lines(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.splitlines())


def test_a_single_authority_shows_no_group_rows() -> None:
    text = render_status(status("authority"), "http://127.0.0.1:8001")
    rows = lines(text)
    assert rows["role"] == "authority"
    assert rows["upstream"] == "none (this node seals its own blocks)"
    assert rows["height"].startswith("7 (tip 3434343434343434…")
    assert not {"sequencer", "etcd", "halted"} & rows.keys()
    assert list(rows) == ["node", "role", "chain", "height", "mempool", "upstream", "jobs", "receipts", "miners"]


def test_a_follower_shows_its_upstream_and_no_group_rows() -> None:
    sync = {"upstream": "http://10.0.0.1:8001", "lag_blocks": 3, "lag_seconds": 0.5, "peers": []}
    rows = lines(render_status(status("follower", sync=sync, group=None), "http://127.0.0.1:8002"))
    assert rows["upstream"] == "http://10.0.0.1:8001 (behind by 3 blocks, 0.5s)"
    assert not {"sequencer", "etcd"} & rows.keys()


def test_a_sequencer_names_itself_the_term_and_etcd() -> None:
    group = {"sequencer": {"key": KEY, "url": "http://127.0.0.1:8001"}, "term": 42, "etcd": "ok"}
    rows = lines(render_status(status("sequencer", group=group), "http://127.0.0.1:8001"))
    assert rows["role"] == "sequencer"
    assert rows["sequencer"] == f"http://127.0.0.1:8001 (key {KEY[:16]}…), this node, term 42"
    assert rows["etcd"] == "ok"
    assert "upstream" not in rows and "halted" not in rows


def test_a_standby_names_the_sequencer_and_a_halted_reason() -> None:
    group = {
        "sequencer": {"key": KEY, "url": "http://127.0.0.1:8001"},
        "term": 9,
        "etcd": "unreachable",
        "halted": "behind etcd's tail: tip 3, etcd's oldest block 1200",
    }
    rows = lines(render_status(status("standby", group=group), "http://127.0.0.1:8002"))
    assert rows["role"] == "standby"
    assert rows["sequencer"] == f"http://127.0.0.1:8001 (key {KEY[:16]}…), term 9"
    assert rows["etcd"] == "unreachable"
    assert rows["halted"] == "behind etcd's tail: tip 3, etcd's oldest block 1200"


def test_a_member_with_no_sequencer_elected_says_so() -> None:
    group = {"sequencer": None, "term": None, "etcd": "ok"}
    rows = lines(render_status(status("standby", group=group), "http://127.0.0.1:8002"))
    assert rows["sequencer"] == "none elected (writes get 503 until one is)"
    assert rows["etcd"] == "ok"
