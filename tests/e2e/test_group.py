"""An authority group on a real 3-member etcd: election, fencing, failover, idempotent retries,
and a bounded fault-injection run (kill -9 and SIGSTOP of the sequencer under a write load)."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.group import ETCD, LEASE_TTL, EtcdCluster, group_genesis, member, role_of, sequencer, tip_hash
from tests.e2e.replication import wait_until
from tests.support import CLIENT_A, NodeProcess, run_cli

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

KILLS = int(os.environ.get("AITBC_FAULT_KILLS", "3"))
STOPS = int(os.environ.get("AITBC_FAULT_STOPS", "2"))


@dataclass
class Group:
    base: Path
    etcd: EtcdCluster
    members: list[NodeProcess] = field(default_factory=list)

    def live(self) -> list[NodeProcess]:
        return [m for m in self.members if m.proc is not None and m.proc.poll() is None]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    etcd = EtcdCluster(tmp_path).start()
    genesis, keys = group_genesis(tmp_path)
    g = Group(tmp_path, etcd, [member(tmp_path, i, genesis, keys[i], etcd) for i in range(3)])
    try:
        for m in g.members:
            m.start()
        yield g
    finally:
        for m in g.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGCONT)
                m.stop()
            else:
                m.kill9()
        etcd.stop()


def submit(node: NodeProcess, prompt: str, key: str | None = None, timeout: float = 10) -> httpx.Response:
    headers = {"X-Api-Key": CLIENT_A["key"], **({"Idempotency-Key": key} if key else {})}
    return httpx.post(node.url + "/v1/jobs", json={"prompt": prompt}, headers=headers, timeout=timeout)


def test_one_sequencer_is_elected_and_every_member_takes_writes_and_serves_reads(group: Group) -> None:
    lead = sequencer(group.members)
    roles = sorted(role_of(m) or "" for m in group.members)
    assert roles == ["sequencer", "standby", "standby"]
    job_ids = []
    for m in group.members:
        r = submit(m, f"via {m.port}")
        assert r.status_code == 201, r.text
        job_ids.append(r.json()["job_id"])
    for m in group.members:  # a standby answers a forwarded write once it holds its block
        with m.client(CLIENT_A["key"]) as http:
            for job_id in job_ids:
                assert http.get(f"/v1/jobs/{job_id}").status_code == 200
    health = httpx.get(lead.url + "/health").json()
    assert health["group"]["sequencer"]["url"] == lead.url and health["group"]["etcd"] == "ok"
    status = run_cli("status", "--node", lead.url, "--json")
    assert status.returncode == 0 and '"sequencer"' in status.stdout


def test_status_names_the_role_the_sequencer_and_etcd_on_every_member(group: Group) -> None:
    lead = sequencer(group.members)

    def status_rows(m: NodeProcess) -> dict[str, str] | None:
        """The member's `aitbc-node status` rows, once it has seen the sequencer's leader key."""
        text = run_cli("status", "--node", m.url)
        assert text.returncode == 0, text.stderr
        rows = dict(line.split(None, 1) for line in text.stdout.splitlines())
        return rows if rows["sequencer"].startswith(lead.url) else None

    for m in group.members:
        rows = wait_until(functools.partial(status_rows, m), "the member to see the sequencer")
        assert rows["role"] == ("sequencer" if m is lead else "standby")
        assert rows["sequencer"].startswith(f"{lead.url} (key ")
        assert ", term " in rows["sequencer"]
        assert rows["etcd"] == "ok"
        assert "halted" not in rows and "upstream" not in rows
        as_json = json.loads(run_cli("status", "--node", m.url, "--json").stdout)
        assert as_json["group"]["sequencer"]["url"] == lead.url and as_json["group"]["etcd"] == "ok"


def test_idempotent_retries_replay_from_any_member_and_a_reused_key_is_refused(group: Group) -> None:
    sequencer(group.members)
    first = submit(group.members[0], "once", key="k-1")
    assert first.status_code == 201, first.text
    for m in group.members:
        again = submit(m, "once", key="k-1")
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
    other = submit(group.members[1], "another body", key="k-1")
    assert other.status_code == 422 and other.json()["error_code"] == "idempotency_key_reused"
    with group.members[2].client(CLIENT_A["key"]) as http:
        jobs = http.get("/v1/jobs", params={"limit": 100}).json()
    assert sum(j["prompt"] == "once" for j in jobs) == 1


def test_concurrent_duplicates_get_one_effect(group: Group) -> None:
    lead = sequencer(group.members)
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(submit(lead, "dup", key="same"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["job_id"] for a in answers}) == 1


def test_several_authorities_without_etcd_are_refused(tmp_path: Path) -> None:
    genesis, keys = group_genesis(tmp_path)
    node = NodeProcess(tmp_path / "solo", extra_args=("--genesis", str(genesis), "--node-key", str(keys[0])))
    result = run_cli(*node.args()[3:], timeout=60)
    assert result.returncode != 0 and "--etcd" in result.stderr and "Traceback" not in result.stderr


class Load:
    """Writers submitting jobs with idempotency keys, retrying each through failures and failovers."""

    def __init__(self, group: Group, writers: int = 4) -> None:
        self.group = group
        self.acked: dict[str, str] = {}
        """prompt -> job_id of every acknowledged write."""
        self.attempts = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._write, args=(i,), daemon=True) for i in range(writers)]

    def _write(self, writer: int) -> None:
        n = 0
        while not self.stop.is_set():
            prompt, key = f"w{writer}-{n}", str(uuid.uuid4())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                live = self.group.live()
                if not live:
                    continue
                self.attempts += 1
                try:
                    r = submit(random.choice(live), prompt, key=key, timeout=4)
                except httpx.HTTPError:
                    continue
                if r.status_code == 201:
                    with self.lock:
                        self.acked[prompt] = r.json()["job_id"]
                    break
                assert r.status_code in (502, 503, 504), r.text  # never a 4xx or 500 for a good write
                if self.stop.is_set():
                    break
            n += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)


def is_standby(node: NodeProcess) -> bool:
    return role_of(node) == "standby"


def probe_write(group: Group, exclude: NodeProcess) -> float:
    """Seconds until a write is acknowledged again, through the members other than `exclude`."""
    started = time.monotonic()
    key = str(uuid.uuid4())

    def acked() -> bool:
        for m in group.live():
            if m is exclude:
                continue
            try:
                if submit(m, "probe " + key, key=key, timeout=2).status_code == 201:
                    return True
            except httpx.HTTPError:
                pass
        return False

    wait_until(acked, "a write to be acknowledged after the failover", 60)
    return time.monotonic() - started


def test_faults_lose_no_acknowledged_write_duplicate_none_and_never_fork(group: Group) -> None:
    sequencer(group.members)
    outages: list[float] = []
    with Load(group) as load:
        wait_until(lambda: len(load.acked) >= 20, "the load to get going")
        for _ in range(KILLS):
            lead = sequencer(group.live())
            lead.kill9()
            outages.append(probe_write(group, lead))
            lead.start()  # it comes back as a standby and catches up from etcd
        for _ in range(STOPS):
            lead = sequencer(group.live())
            assert lead.proc is not None
            lead.proc.send_signal(signal.SIGSTOP)
            outages.append(probe_write(group, lead))  # another member is elected and serving
            lead.proc.send_signal(signal.SIGCONT)  # the paused one wakes up deposed
            wait_until(functools.partial(is_standby, lead), "the paused sequencer to step down", 30)
        before = len(load.acked)
        wait_until(lambda: len(load.acked) >= before + 10, "writes after the faults")
    assert len(group.live()) == 3
    wait_until(lambda: len({tip_hash(m) for m in group.members}) == 1, "every member to hold the same tip", 60)
    tips = {tip_hash(m) for m in group.members}
    seen: dict[str, list[str]] = {}
    for m in group.members:
        with m.client(CLIENT_A["key"]) as http:
            offset, jobs = 0, []
            while page := http.get("/v1/jobs", params={"limit": 100, "offset": offset}).json():
                jobs += page
                offset += len(page)
        seen[m.url] = [j["prompt"] for j in jobs]
    prompts = seen[group.members[0].url]
    lost = [p for p, _ in load.acked.items() if p not in prompts]
    duplicates = len(prompts) - len(set(prompts))
    forks = len(tips) - 1
    for m in group.members:
        m.stop()
    verified = [run_cli("verify", "--data-dir", str(m.data_dir), "--quiet", timeout=120) for m in group.members]
    print(
        f"\nfaults: {KILLS} kill -9, {STOPS} SIGSTOP/SIGCONT; {len(load.acked)} writes acknowledged "
        f"({load.attempts} attempts); acknowledged writes lost {len(lost)}, duplicate effects {duplicates}, "
        f"forks {forks}; failover unavailability median {statistics.median(outages):.2f} s, "
        f"max {max(outages):.2f} s (lease TTL {LEASE_TTL} s, target {2 * LEASE_TTL + 1} s)"
    )
    assert lost == [] and duplicates == 0 and forks == 0
    assert all(v.returncode == 0 for v in verified), [v.stderr for v in verified]
    assert all(seen[m.url] == prompts for m in group.members)


def test_the_python_client_retries_a_write_through_a_failover(group: Group) -> None:
    import asyncio

    from node.client import Client

    lead = sequencer(group.members)
    urls = ",".join([lead.url, *(m.url for m in group.members if m is not lead)])
    lead.kill9()  # the client's first node is gone and no sequencer is elected yet

    async def go() -> dict[str, object]:
        async with Client(urls, CLIENT_A["key"], timeout=5, write_retry_s=60) as client:
            return await client.submit("through the failover")

    job = asyncio.run(go())
    others = [m for m in group.members if m is not lead]

    def submitted() -> list[str]:
        """The ids of the jobs with this prompt that every live member serves (a standby applies
        the sequencer's blocks moments after they are acknowledged)."""
        seen = []
        for other in others:
            with other.client(CLIENT_A["key"]) as http:
                jobs = http.get("/v1/jobs", params={"limit": 100}).json()
            seen.append([j["job_id"] for j in jobs if j["prompt"] == "through the failover"])
        return seen[0] if all(s == seen[0] and s for s in seen) else []

    assert wait_until(submitted, "both live members to serve the job", 30) == [job["job_id"]]
