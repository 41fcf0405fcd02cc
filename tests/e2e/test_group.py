"""An authority group on a real 3-member etcd: election, fencing, failover, idempotent retries,
and a bounded fault-injection run under a write load: kill -9 of the sequencer, SIGSTOP past its
lease, the sequencer cut off etcd through a proxy, one etcd member killed, etcd's quorum lost and
restored. AITBC_FAULT_KILLS, AITBC_FAULT_STOPS and AITBC_FAULT_CUTS change the counts."""

from __future__ import annotations

import contextlib
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

from tests.e2e.group import (
    ETCD,
    LEASE_TTL,
    Cut,
    EtcdCluster,
    EtcdProxies,
    group_genesis,
    member,
    role_of,
    sequencer,
    stop_all,
    tip_hash,
)
from tests.e2e.replication import wait_until
from tests.support import CLIENT_A, NodeProcess, run_cli

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

KILLS = int(os.environ.get("AITBC_FAULT_KILLS", "10"))
STOPS = int(os.environ.get("AITBC_FAULT_STOPS", "5"))
CUTS = int(os.environ.get("AITBC_FAULT_CUTS", "3"))


@dataclass
class Group:
    base: Path
    etcd: EtcdCluster
    members: list[NodeProcess] = field(default_factory=list)
    proxies: EtcdProxies | None = None
    """When set, each member reaches etcd through proxies the test can cut."""

    def live(self) -> list[NodeProcess]:
        return [m for m in self.members if m.proc is not None and m.proc.poll() is None]


@contextlib.contextmanager
def running_group(base: Path, proxied: bool) -> Iterator[Group]:
    etcd = EtcdCluster(base).start()
    genesis, keys = group_genesis(base)
    with contextlib.ExitStack() as stack:
        stack.callback(etcd.stop)
        proxies = stack.enter_context(EtcdProxies(etcd, 3)) if proxied else None
        urls = [proxies.urls(i) if proxies is not None else etcd.urls for i in range(3)]
        g = Group(base, etcd, [member(base, i, genesis, keys[i], urls[i]) for i in range(3)], proxies)
        try:
            for m in g.members:
                m.start()
            yield g
        finally:
            stop_all(g.members)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    with running_group(tmp_path, proxied=False) as g:
        yield g


@pytest.fixture
def proxied_group(tmp_path: Path) -> Iterator[Group]:
    """A group whose members reach etcd through proxies the test controls (Group.proxies)."""
    with running_group(tmp_path, proxied=True) as g:
        yield g


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


@dataclass(frozen=True)
class Answer:
    sent: float
    answered: float
    status: int
    replayed: bool
    """Idempotent-Replayed: the original answer of a write made durable before."""


class Load:
    """Writers submitting jobs with idempotency keys, retrying each through failures and failovers."""

    def __init__(self, group: Group, writers: int = 4) -> None:
        self.group = group
        self.acked: dict[str, str] = {}
        """prompt -> job_id of every acknowledged write."""
        self.answers: list[Answer] = []
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
                sent = time.monotonic()
                try:
                    r = submit(random.choice(live), prompt, key=key, timeout=4)
                except httpx.HTTPError:
                    continue
                with self.lock:
                    replayed = r.headers.get("idempotent-replayed") == "true"
                    self.answers.append(Answer(sent, time.monotonic(), r.status_code, replayed))
                    if r.status_code == 201:
                        self.acked[prompt] = r.json()["job_id"]
                if r.status_code == 201:
                    break
                assert r.status_code in (502, 503, 504), r.text  # never a 4xx or 500 for a good write
                if self.stop.is_set():
                    break
            n += 1

    def acks_after(self, count: int, what: str) -> None:
        """Wait until `count` more writes are acknowledged."""
        before = len(self.acked)
        wait_until(lambda: len(self.acked) >= before + count, what, 60)

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


def probe_write(group: Group, exclude: NodeProcess | None = None) -> float:
    """Seconds until a write is acknowledged again, through the members other than `exclude`.
    Each try gives up after 1 s (a write takes milliseconds), so that one held by a standby
    still forwarding to a paused sequencer adds little to the figure."""
    started = time.monotonic()
    key = str(uuid.uuid4())

    def acked() -> bool:
        for m in group.live():
            if m is exclude:
                continue
            try:
                if submit(m, "probe " + key, key=key, timeout=1).status_code == 201:
                    return True
            except httpx.HTTPError:
                pass
        return False

    wait_until(acked, "a write to be acknowledged after the failover", 60)
    return time.monotonic() - started


def assert_refused(r: httpx.Response) -> None:
    """A write refused while the group cannot commit: 503 unavailable, with Retry-After."""
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after") and set(r.json()) >= {"detail", "error_code"}, (r.headers, r.text)


def rejoined(node: NodeProcess, lead: NodeProcess, height: int) -> bool:
    """node is a standby that sees etcd and the sequencer `lead` again, and has applied the
    blocks up to `height`."""
    try:
        health = httpx.get(node.url + "/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    seen = health.get("group") or {}
    return (
        health.get("role") == "standby"
        and seen.get("etcd") == "ok"
        and (seen.get("sequencer") or {}).get("url") == lead.url
        and tip_hash(node)[0] >= height
    )


def kill_sequencer(group: Group) -> float:
    lead = sequencer(group.live())
    lead.kill9()
    outage = probe_write(group, lead)
    lead.start()  # it comes back as a standby and catches up from etcd
    return outage


def pause_sequencer(group: Group) -> float:
    lead = sequencer(group.live())
    assert lead.proc is not None
    lead.proc.send_signal(signal.SIGSTOP)
    outage = probe_write(group, lead)  # its lease ran out: another member is elected and serving
    lead.proc.send_signal(signal.SIGCONT)  # the paused one wakes up deposed
    wait_until(functools.partial(is_standby, lead), "the paused sequencer to step down", 30)
    return outage


def cut_sequencer(group: Group, how: Cut) -> float:
    """Cut the sequencer off etcd: another member takes over, the cut one refuses writes (503),
    steps down, and rejoins as a standby once restored."""
    assert group.proxies is not None
    lead = sequencer(group.live())
    group.proxies.cut(group.members.index(lead), how)
    outage = probe_write(group, lead)
    assert_refused(submit(lead, "to the cut-off member", key=str(uuid.uuid4()), timeout=30))
    wait_until(functools.partial(is_standby, lead), "the cut-off sequencer to step down", 30)
    group.proxies.restore(group.members.index(lead))
    now = sequencer([m for m in group.live() if m is not lead])
    rejoin = functools.partial(rejoined, lead, now, tip_hash(now)[0])
    wait_until(rejoin, "the cut-off member to rejoin as a standby", 30)
    return outage


def lose_one_etcd_member(group: Group, load: Load) -> None:
    """Kill etcd's leader: the other two elect another, and writes keep being acknowledged."""
    down = group.etcd.leader()
    group.etcd.kill(down)
    load.acks_after(10, "writes with one etcd member down")
    group.etcd.start(down)
    wait_until(functools.partial(group.etcd.member_healthy, down), "the etcd member to rejoin", 30)


def lose_etcd_quorum(group: Group, load: Load) -> float:
    """Kill two of the three etcd members: no write is acknowledged until they are back, reads
    keep working; then restore them. Seconds from the restore to the next acknowledged write."""
    down = [group.etcd.leader()]
    down.append(next(i for i in range(len(group.etcd.names)) if i not in down))
    for i in down:
        group.etcd.kill(i)
    wait_until(
        lambda: all(role_of(m) == "standby" for m in group.live()), "the sequencer to step down without a quorum", 30
    )
    refusing = time.monotonic()  # from here on, no write may be acknowledged until etcd is back
    acked = list(load.acked.items())[:5]
    for m in group.live():
        assert_refused(submit(m, "without a quorum", key=str(uuid.uuid4()), timeout=30))
        with m.client(CLIENT_A["key"]) as http:
            assert http.get("/v1/chain/head").status_code == 200
            assert all(http.get(f"/v1/jobs/{job_id}").status_code == 200 for _, job_id in acked)
    restoring = time.monotonic()
    for i in down:
        group.etcd.start(i)
    outage = probe_write(group)
    with load.lock:
        # A replayed answer is the original answer of a write made durable before the quorum went.
        acked_meanwhile = [
            a
            for a in load.answers
            if a.sent > refusing and a.answered < restoring and 200 <= a.status < 300 and not a.replayed
        ]
        refused = sum(a.sent > refusing and a.answered < restoring for a in load.answers)
    assert acked_meanwhile == [] and refused > 0, (acked_meanwhile, refused)
    for i in down:
        wait_until(functools.partial(group.etcd.member_healthy, i), "the etcd members to rejoin", 30)
    return outage


def median_max(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s" if seconds else "none"


def test_faults_lose_no_acknowledged_write_duplicate_none_and_never_fork(proxied_group: Group) -> None:
    group = proxied_group
    sequencer(group.members)
    outages: dict[str, list[float]] = {}
    with Load(group) as load:
        wait_until(lambda: len(load.acked) >= 20, "the load to get going")
        phases, mark = [], time.monotonic()

        def phase(name: str) -> None:
            nonlocal mark
            phases.append(f"{name} {time.monotonic() - mark:.0f} s")
            mark = time.monotonic()

        outages["kill -9"] = [kill_sequencer(group) for _ in range(KILLS)]
        phase("kills")
        outages["SIGSTOP"] = [pause_sequencer(group) for _ in range(STOPS)]
        phase("stops")
        outages["cut off etcd"] = [cut_sequencer(group, "refuse" if n % 2 else "blackhole") for n in range(CUTS)]
        phase("cuts")
        lose_one_etcd_member(group, load)
        phase("one etcd member down")
        quorum_back = lose_etcd_quorum(group, load)
        phase("etcd quorum lost and restored")
        load.acks_after(10, "writes after the faults")
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
    every = [s for kind in outages.values() for s in kind]
    by_kind = "; ".join(f"{kind} {median_max(s)}" for kind, s in outages.items() if s)
    print(
        f"\nfaults ({', '.join(phases)}): {KILLS} kill -9, {STOPS} SIGSTOP/SIGCONT, {CUTS} cut off etcd "
        f"of the sequencer, 1 etcd member killed, 2 etcd members killed and restored; "
        f"{len(load.acked)} writes acknowledged ({len(load.answers)} answers); "
        f"acknowledged writes lost {len(lost)}, duplicate effects {duplicates}, forks {forks}; "
        f"failover unavailability {median_max(every)} ({by_kind}; lease TTL {LEASE_TTL} s, "
        f"target {2 * LEASE_TTL + 1} s); "
        f"writes acknowledged {quorum_back:.2f} s after etcd's quorum was restored"
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
