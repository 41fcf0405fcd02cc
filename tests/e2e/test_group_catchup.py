"""A group member too far behind etcd's tail (stopped while the others sealed more blocks than
etcd keeps) catches up over HTTP from the other members, then follows etcd again and can lead;
without --peer-key it says why it cannot, and keeps running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.group import (
    ETCD,
    LEASE_TTL,
    RunningGroup,
    etcd_block_heights,
    role_of,
    running_group,
    sequencer,
    tip_hash,
)
from tests.e2e.replication import health, wait_until
from tests.support import CLIENT_A, NodeProcess

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

TAIL = 20
SEALED_WHILE_AWAY = 3 * TAIL


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RunningGroup]:
    with running_group(tmp_path, "--etcd-tail-blocks", str(TAIL)) as g:
        yield g


@pytest.fixture
def group_one_without_peer_key(tmp_path: Path) -> Iterator[RunningGroup]:
    with running_group(tmp_path, "--etcd-tail-blocks", str(TAIL), without_peer_key=2) as g:
        yield g


def submit(node: NodeProcess, prompt: str) -> str:
    r = httpx.post(node.url + "/v1/jobs", json={"prompt": prompt}, headers={"X-Api-Key": CLIENT_A["key"]}, timeout=30)
    assert r.status_code == 201, r.text
    job_id: str = r.json()["job_id"]
    return job_id


def seal_past_the_tail(group: RunningGroup, away: NodeProcess) -> list[str]:
    """With `away` stopped, have the sequencer seal more blocks than etcd keeps (one job each);
    the job ids. etcd then holds only the last TAIL blocks, none of those `away` lacks first."""
    lead = sequencer([m for m in group.members if m is not away])
    away_height, _ = tip_hash(lead)
    jobs = [submit(lead, f"while away {i}") for i in range(SEALED_WHILE_AWAY)]
    heights = etcd_block_heights(group.etcd, group.genesis)
    assert len(heights) == TAIL and min(heights) > away_height + 1, heights  # a bounded tail, past `away`
    return jobs


def log_of(group: RunningGroup, i: int) -> str:
    return (group.base / f"member-{i}.log").read_text(encoding="utf-8", errors="replace")


def test_a_member_behind_the_tail_catches_up_over_http_then_follows_etcd_and_can_lead(group: RunningGroup) -> None:
    lead = sequencer(group.members)
    late_index = next(i for i, m in enumerate(group.members) if m is not lead)
    late = group.members[late_index]
    submit(lead, "before")
    wait_until(lambda: tip_hash(late) == tip_hash(lead), "the standby to hold the first block")
    late.stop()
    jobs = seal_past_the_tail(group, late)

    late.start()
    wait_until(lambda: tip_hash(late) == tip_hash(sequencer(group.members)), "the member to catch up", 60)
    assert "caught up over HTTP from" in log_of(group, late_index)
    with late.client(CLIENT_A["key"]) as http:
        assert all(http.get(f"/v1/jobs/{job_id}").status_code == 200 for job_id in jobs)

    # It follows etcd again: new blocks reach it, and it reports nothing wrong.
    after = [submit(sequencer(group.members), f"after {i}") for i in range(3)]
    wait_until(lambda: tip_hash(late) == tip_hash(sequencer(group.members)), "the member to apply the new blocks")
    with late.client(CLIENT_A["key"]) as http:
        assert all(http.get(f"/v1/jobs/{job_id}").status_code == 200 for job_id in after)
    state = health(late)
    assert state["status"] == "ok" and "halted" not in state["group"] and "catching_up" not in state["group"]

    # With the others stopped, it is elected and seals.
    for m in group.members:
        if m is not late:
            m.stop()
    wait_until(lambda: role_of(late) == "sequencer", "the caught-up member to be elected", 30)
    job_id = submit(late, "sealed by the member that caught up")
    with late.client(CLIENT_A["key"]) as http:
        assert http.get(f"/v1/jobs/{job_id}").status_code == 200


def test_without_a_peer_key_a_member_behind_the_tail_says_why_never_leads_and_keeps_running(
    group_one_without_peer_key: RunningGroup,
) -> None:
    group = group_one_without_peer_key
    keyless = group.members[2]
    sequencer(group.members)
    keyless.stop()
    jobs = seal_past_the_tail(group, keyless)

    keyless.start()

    def halted() -> str | None:
        reason: str | None = health(keyless)["group"].get("halted")
        return reason

    reason = wait_until(halted, "the member to report why it cannot catch up", 30)
    assert "--peer-key" in reason and "behind etcd's tail" in reason
    state = health(keyless)
    assert state["status"] == "degraded" and state["role"] == "standby"
    assert "--peer-key" in log_of(group, 2) and "Traceback" not in log_of(group, 2)
    with keyless.client(CLIENT_A["key"]) as http:  # it still serves what it holds, and forwards writes
        assert http.get("/v1/jobs", params={"limit": 1}).status_code == 200
        assert http.get(f"/v1/jobs/{jobs[0]}").status_code == 404  # a block it does not hold

    # With the others gone, the leader key expires, and it does not campaign: it cannot seal.
    for m in group.members[:2]:
        m.stop()
    wait_until(lambda: health(keyless)["group"]["sequencer"] is None, "the member to see no sequencer", 30)
    watched_until = time.monotonic() + 2 * LEASE_TTL
    while time.monotonic() < watched_until:  # several election rounds (every 50 ms)
        assert role_of(keyless) == "standby"
        assert keyless.proc is not None and keyless.proc.poll() is None
    r = httpx.post(keyless.url + "/v1/jobs", json={"prompt": "x"}, headers={"X-Api-Key": CLIENT_A["key"]}, timeout=10)
    assert r.status_code == 503 and r.json()["error_code"] == "unavailable"
