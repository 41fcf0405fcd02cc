"""HTTP load against a real node, side by side with the bare Starlette ceiling.

The server under test is pinned to CPU 0 and this load generator to CPU 1 (taskset /
sched_setaffinity). Every run is bounded in time and request count and talks only to
127.0.0.1. Prints requests/s and p50/p99 latency per endpoint, and ratios to the ceiling.

  python -m bench load                       # every workload, 5 s each, 64 connections
  python -m bench load --workload lifecycle --seconds 10 --concurrency 32
  python -m bench load --rounds 3            # three sittings in one: medians of the target ratios
  python -m bench load --workload lifecycle --profile /tmp/prof   # and where the event loop's time went
  python -m bench load --workload contended  # 8, 16, 64 miners on one model, three ways (below)
  python -m bench load --workload group --seconds 5   # a 3-member authority group against one node (below)

The contended workload runs, for N = 8, 16 and 64 workers on one node: the uncontended
lifecycle (each worker submits a job for its own model, then polls, claims and completes it),
the contract's flow with every worker's miner serving the same model (available, then claim;
a claim refused with 409 sends the worker back to available), and the same with claim-next.
It prints lifecycles/s, the 409s, and the p50/p99 of a lifecycle as the issue's table counts
it, a miner's loop (its first poll or claim-next to its completion acknowledged), and beside it
the p99 from the worker's submit to the completion (the client's wait added).

The group workload (not part of `all`: it needs the `etcd` binary, Debian's etcd-server) runs
the job lifecycle in one sitting on a single node and on an authority group: 3 etcd members and
3 nodes with --etcd (lease TTL GROUP_LEASE_TTL), started by the bench on 127.0.0.1. Once the
election is known, the sequencer is pinned to CPU 0, like the single node; the standbys and etcd
run on either CPU. The load generator (pinned to CPU 1) runs at nice --load-nice (default -20,
where the bench may set it): it stands in for clients on machines of their own, and would
otherwise queue behind etcd and the standbys and time its own queueing (the "load wait" column
shows what is left of that). The group is driven with every request sent to the sequencer, then
with worker i talking to member i mod 3 (standbys forward writes and offers to the sequencer).
Each setup runs at each of --group-workers (default 64 and 128 workers); the setups alternate
--rounds times (default 3), all of them running throughout. For each pass it prints
lifecycles/s, the p50/p99 of a lifecycle, writes per block, the mean block commit and etcd
append times, the appends sent again, the CPU used and the CPU waited for; then the medians, and
the group's lifecycles/s against the single node's of the same round and worker count.

The target (>= 0.7x: etcd costs one round trip per block, which group commit spreads over the
block's writes) is judged at the largest worker count, where both setups carry all they can.
Each worker has one request outstanding, so at a given count a setup's rate is the workers
divided by a lifecycle's latency (Little's law). The single node's core is its bound from 64
workers on (it carries the same at 64, 128 and 256); at 64 the group's rate still follows its
latency, in which each of a lifecycle's three writes waits for its block's etcd append; at 128
its blocks fill, and the append is spread over more writes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.etcd_cluster import EtcdCluster, write_group_genesis
from bench.procstat import cpu_seconds, runnable_wait_seconds, thread_cpu, thread_shares, tree_cpu_seconds
from bench.pyspy import Recording
from bench.pyspy import report as profile_report
from bench.syncs import start_sync_counter, stop_sync_counter
from chain.crypto import hash_hex

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = 0, 1
CLIENT_KEY = "bench-client-key-000000000000"
MINER_KEY = "bench-miner-key-0000000000000"
BENCH_MODELS = 64
WORKLOADS = ("ceiling", "submit", "lifecycle", "stats", "receipts", "pending", "contended")
CONTENDED_MINERS = (8, 16, 64)
HAMLET = "Summarise the plot of Hamlet in one sentence."
ANSWER = "A prince avenges his father and nearly everyone dies."


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refusals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Unexpected answers by request and status, e.g. "POST claim 504"."""
    load_cpu: float = float("nan")
    """CPU time of this load generator over the run's wall time: near 1.0, it is the bottleneck."""
    server_cpu: float = float("nan")
    """CPU seconds the server used during the run (all its threads), where /proc tells."""
    server_threads: dict[str, float] = field(default_factory=dict)
    """The share of one core each kind of server thread used during the run (thread_shares)."""

    def add(self, name: str, seconds: float, ok: bool) -> None:
        if ok:
            self.latencies[name].append(seconds)
        else:
            self.errors[name] += 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    load_cpu: float = float("nan")
    server_us: float = float("nan")
    """Server CPU per request of the whole run, in microseconds: unlike req/s, barely moved by
    other load on the machine."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def pin(cpu: int) -> list[str]:
    """A command prefix that pins a child to one CPU, when the machine has more than one."""
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], limit_s: float = 60, poll_s: float = 0.05
) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            async with session.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(poll_s)
    raise RuntimeError(f"{url} did not answer within {limit_s} s")


def start_ceiling(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*pin(SERVER_CPU), sys.executable, "-m", "bench.ceiling", "--port", str(port)], cwd=ROOT)


def bench_genesis(path: Path) -> Path:
    doc = json.loads((ROOT / "genesis.json").read_text())
    doc["params"]["prices"].update({f"bench-{i}": {"tokens": "0.000001"} for i in range(BENCH_MODELS)})
    path.write_text(json.dumps(doc))
    return path


def start_node(port: int, workdir: Path, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    keys = workdir / "keys.json"
    keys.write_text(
        json.dumps(
            [
                {"key": CLIENT_KEY, "role": "client", "name": "bench-client"},
                {"key": MINER_KEY, "role": "miner", "name": "bench-miner"},
            ]
        )
    )
    args = [
        *pin(SERVER_CPU),
        sys.executable,
        "-m",
        "node",
        "start",
        "--data-dir",
        str(workdir / "data"),
        "--port",
        str(port),
        "--api-keys",
        str(keys),
        "--genesis",
        str(bench_genesis(workdir / "genesis.json")),
        "--log-level",
        "warning",
        "--rate-limit",
        "0",
        *(extra or []),
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)


async def warm_up(concurrency: int, step: Callable[[int, Recorder], Awaitable[int]]) -> None:
    """One untimed step per worker: each opens its keep-alive connection before the clock starts,
    so that the figures are the steady state of `concurrency` open connections (64 connection
    set-ups, all in the first milliseconds, would otherwise be a third of the slowest 1%)."""
    scratch = Recorder()
    await asyncio.gather(*(step(i, scratch) for i in range(concurrency)))


async def drive(
    concurrency: int,
    seconds: float,
    max_requests: int,
    step: Callable[[int, Recorder], Awaitable[int]],
    server_pid: int | None = None,
) -> tuple[Recorder, float, int]:
    """Run `step(worker, recorder)` in `concurrency` workers until time or the request budget runs out."""
    recorder = Recorder()
    done = 0
    deadline = time.monotonic() + seconds
    server_started = cpu_seconds(server_pid) if server_pid is not None else float("nan")
    threads_started = thread_cpu(server_pid) if server_pid is not None else {}
    started, cpu_started = time.perf_counter(), time.process_time()

    async def worker(i: int) -> None:
        nonlocal done
        while time.monotonic() < deadline and done < max_requests:
            done += await step(i, recorder)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    recorder.load_cpu = (time.process_time() - cpu_started) / elapsed
    if server_pid is not None:
        recorder.server_cpu = cpu_seconds(server_pid) - server_started
        recorder.server_threads = thread_shares(server_pid, threads_started, thread_cpu(server_pid), elapsed)
    return recorder, elapsed, done


async def timed(
    session: aiohttp.ClientSession,
    rec: Recorder,
    name: str,
    method: str,
    url: str,
    expect: int,
    *,
    parse: bool = False,
    **kwargs: Any,
) -> Any:
    """One request, timed; its JSON body only with parse=True (decoding a big body costs the
    load generator, which is CPU-bound on the read workloads, more than the server's answer)."""
    t0 = time.perf_counter()
    async with session.request(method, url, **kwargs) as r:
        body = await r.read()
        rec.add(name, time.perf_counter() - t0, r.status == expect)
        if r.status != expect:
            rec.refusals[f"{name} {r.status}"] += 1
        return json.loads(body) if parse and body else None


def print_threads(label: str, rec: Recorder) -> None:
    """Where the server's one core went during a run: near 100% busy, the server is the bound."""
    shares = rec.server_threads
    if shares:
        parts = ", ".join(
            f"{kind} {100 * share:.0f}%" for kind, share in shares.items() if kind == "event loop" or share >= 0.005
        )
        print(f"{label} server core: {parts}; busy {100 * sum(shares.values()):.0f}%", flush=True)


def summarise(rec: Recorder, elapsed: float, prefix: str = "") -> list[Result]:
    names = sorted(set(rec.latencies) | set(rec.errors))
    total = sum(len(v) for k, v in rec.latencies.items() if k != "lifecycles") + sum(rec.errors.values())
    server_us = rec.server_cpu / total * 1e6 if total else float("nan")
    out = []
    for name in names:
        lat = rec.latencies.get(name, [])
        out.append(
            Result(
                prefix + name,
                len(lat) + rec.errors.get(name, 0),
                elapsed,
                percentile(lat, 50) * 1000,
                percentile(lat, 99) * 1000,
                rec.errors.get(name, 0),
                rec.load_cpu,
                server_us,
            )
        )
    return out


async def register_miners(s: aiohttp.ClientSession, base: str, n: int) -> None:
    """Miners w0..w(n-1), worker i's serving model bench-(i mod BENCH_MODELS)."""
    for i in range(n):
        reg = {"miner_id": f"w{i}", "capabilities": [f"bench-{i % BENCH_MODELS}"]}
        async with s.post(base + "/v1/miners/register", json=reg, headers={"X-Api-Key": MINER_KEY}) as r:
            assert r.status == 201, await r.text()


async def job_lifecycle(s: aiohttp.ClientSession, base_of: Callable[[int], str], i: int, rec: Recorder) -> int:
    """Worker i, at the node base_of(i): submits a job for its model, finds it as miner w{i}
    (available), claims and completes it. Each request is timed, and the whole lifecycle as
    "lifecycles". Returns the requests made."""
    base = base_of(i)
    client, miner = {"X-Api-Key": CLIENT_KEY}, {"X-Api-Key": MINER_KEY}
    started = time.perf_counter()
    job = {"prompt": HAMLET, "model": f"bench-{i % BENCH_MODELS}"}
    await timed(s, rec, "POST /v1/jobs", "POST", base + "/v1/jobs", 201, json=job, headers=client)
    found = await timed(
        s,
        rec,
        "GET /v1/jobs/available",
        "GET",
        base + "/v1/jobs/available",
        200,
        parse=True,
        params={"miner_id": f"w{i}"},
        headers=miner,
    )
    if not isinstance(found, dict) or "job_id" not in found:
        return 2
    jid = found["job_id"]
    await timed(
        s, rec, "POST claim", "POST", f"{base}/v1/jobs/{jid}/claim", 200, json={"miner_id": f"w{i}"}, headers=miner
    )
    body = {"miner_id": f"w{i}", "result": ANSWER}
    await timed(s, rec, "POST complete", "POST", f"{base}/v1/jobs/{jid}/complete", 200, json=body, headers=miner)
    rec.add("lifecycles", time.perf_counter() - started, True)
    return 4


async def run_ceiling(args: argparse.Namespace) -> list[Result]:
    port = free_port()
    proc = start_ceiling(port)
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"prompt": "Summarise the plot of Hamlet in one sentence.", "model": "llama3.2"}).encode()
    results: list[Result] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as s:
            await wait_ready(s, base + "/get", proc)
            for name, method, path, expect in (
                ("ceiling GET", "GET", "/get", 200),
                ("ceiling POST", "POST", "/echo", 201),
            ):

                async def step(
                    i: int, rec: Recorder, m: str = method, p: str = path, n: str = name, e: int = expect
                ) -> int:
                    await timed(s, rec, n, m, base + p, e, data=body if m == "POST" else None)
                    return 1

                await warm_up(args.concurrency, step)
                rec, elapsed, _ = await drive(args.concurrency, args.seconds, args.max_requests, step, proc.pid)
                results += summarise(rec, elapsed)
                print_threads(name, rec)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return results


async def run_node(args: argparse.Namespace, workloads: list[str]) -> list[Result]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="aitbc-bench-"))
    proc = start_node(port, workdir)
    base = f"http://127.0.0.1:{port}"
    client = {"X-Api-Key": CLIENT_KEY}
    results: list[Result] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as s:
            await wait_ready(s, base + "/health", proc)
            await register_miners(s, base, args.concurrency)

            async def submit_step(i: int, rec: Recorder) -> int:
                job = {"prompt": "Summarise the plot of Hamlet in one sentence.", "model": f"bench-{i % BENCH_MODELS}"}
                await timed(s, rec, "POST /v1/jobs", "POST", base + "/v1/jobs", 201, json=job, headers=client)
                return 1

            lifecycle_step = functools.partial(job_lifecycle, s, lambda i: base)

            async def get_step(
                name: str, path: str, headers: dict[str, str]
            ) -> Callable[[int, Recorder], Awaitable[int]]:
                async def step(i: int, rec: Recorder) -> int:
                    await timed(s, rec, name, "GET", base + path, 200, headers=headers)
                    return 1

                return step

            steps: dict[str, Callable[[int, Recorder], Awaitable[int]]] = {
                "submit": submit_step,
                "lifecycle": lifecycle_step,
                "stats": await get_step("GET /explorer/stats", "/explorer/stats", {}),
                "receipts": await get_step("GET /v1/receipts?client=", "/v1/receipts?client=bench-client", client),
                "pending": await get_step("GET /v1/jobs?status=pending", "/v1/jobs?status=pending", client),
            }
            for name in workloads:
                await warm_up(args.concurrency, steps[name])
                start_height = await _height(s, base)
                recording = None
                if getattr(args, "profile", None) is not None:
                    suffix = f"-round{args.round}" if getattr(args, "rounds", 1) > 1 else ""
                    recording = Recording(
                        proc.pid, args.seconds, Path(args.profile) / f"{name}{suffix}.txt", pin(LOAD_CPU)
                    )
                rec, elapsed, _ = await drive(args.concurrency, args.seconds, args.max_requests, steps[name], proc.pid)
                results += summarise(rec, elapsed, prefix=f"[{name}] ")
                print_threads(f"[{name}]", rec)
                if recording is not None:
                    profile = recording.finish()
                    lines = (
                        [f"[{name}] profile: {recording.error}"]
                        if profile is None
                        else profile_report(f"[{name}]", profile, recording.out)
                    )
                    print("\n".join(lines), flush=True)
                writes = sum(len(v) for k, v in rec.latencies.items() if k.startswith("POST"))
                if writes:
                    blocks = await _height(s, base) - start_height
                    print(
                        f"[{name}] {writes} writes acknowledged in {blocks} blocks "
                        f"({writes / max(blocks, 1):.1f} per block, "
                        f"{blocks / elapsed:.0f} blocks/s)",
                        flush=True,
                    )
                if name == "submit":
                    # Group commit, in a separate short pass (strace slows the node): synced writes per block.
                    height_before = await _height(s, base)
                    tracer = start_sync_counter(proc.pid)
                    rec, _, _ = await drive(args.concurrency, 2.0, args.max_requests, steps[name])
                    syncs = stop_sync_counter(tracer)
                    blocks = await _height(s, base) - height_before
                    writes = len(rec.latencies.get("POST /v1/jobs", []))
                    if syncs is None:
                        synced = "synced writes: n/a (strace not installed, or not permitted to attach)"
                    else:
                        synced = (
                            f"synced appends to the write-ahead log: {syncs[0]} "
                            f"({syncs[0] / max(blocks, 1):.2f} per block); "
                            f"other fsync/fdatasync (LevelDB's flushes and compactions): {syncs[1]}"
                        )
                    print(
                        f"group commit: {writes} writes acknowledged in {blocks} blocks "
                        f"({writes / max(blocks, 1):.1f} per block); {synced}",
                        flush=True,
                    )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


@dataclass
class Contended:
    flow: str
    miners: int
    lifecycles: int
    seconds: float
    refused: int
    claims: int
    p50_ms: float
    p99_ms: float
    submitted_p99_ms: float
    """p99 from the worker's submit to the completion acknowledged."""

    @property
    def rate(self) -> float:
        return self.lifecycles / self.seconds if self.seconds else 0.0


@dataclass
class Flow:
    """One way of running N workers, each a client submitting a job and a miner taking one."""

    name: str
    models: Callable[[int], str]
    """The model of worker i's jobs and miner."""
    claim_next: bool
    refused: int = 0
    claims: int = 0

    @property
    def tag(self) -> str:
        return self.name.split()[0]


CONTENDED_FLOWS: tuple[tuple[str, Callable[[int], str], bool], ...] = (
    ("uncontended", lambda i: f"bench-{2 + i % (BENCH_MODELS - 2)}", False),
    ("available + claim", lambda i: "bench-0", False),
    ("claim-next", lambda i: "bench-1", True),
)


async def contended_lifecycle(s: aiohttp.ClientSession, base: str, flow: Flow, i: int, rec: Recorder) -> int:
    """Worker i submits a job, takes one as its miner (claim-next, or available and claim, back
    to available on a 409) and completes it. Records the miner's loop ("lifecycle": first poll to
    completion acknowledged) and the whole ("submitted": from the submit). Returns requests."""
    client, miner = {"X-Api-Key": CLIENT_KEY}, {"X-Api-Key": MINER_KEY}
    miner_id, submitted, requests = f"{flow.tag}-{i}", time.perf_counter(), 2
    job = {"prompt": HAMLET, "model": flow.models(i)}
    await timed(s, rec, "submit", "POST", base + "/v1/jobs", 201, json=job, headers=client)
    started = time.perf_counter()
    job_id = None
    while job_id is None:
        requests += 1
        if flow.claim_next:
            body = {"miner_id": miner_id, "wait": 1}
            async with s.post(base + "/v1/jobs/claim-next", json=body, headers=miner) as r:
                if r.status == 204:
                    continue
                assert r.status == 200, await r.text()
                job_id = (await r.json())["job_id"]
            flow.claims += 1
            continue
        async with s.get(base + "/v1/jobs/available", params={"miner_id": miner_id}, headers=miner) as r:
            found = await r.json()
        if found is None:
            continue
        requests += 1
        flow.claims += 1
        async with s.post(f"{base}/v1/jobs/{found['job_id']}/claim", json={"miner_id": miner_id}, headers=miner) as r:
            if r.status == 409:
                flow.refused += 1
                continue
            assert r.status == 200, await r.text()
        job_id = found["job_id"]
    body = {"miner_id": miner_id, "result": ANSWER}
    await timed(s, rec, "complete", "POST", f"{base}/v1/jobs/{job_id}/complete", 200, json=body, headers=miner)
    done = time.perf_counter()
    rec.add("lifecycle", done - started, True)
    rec.add("submitted", done - submitted, True)
    return requests


async def run_contended(args: argparse.Namespace) -> list[Contended]:
    """Each N of CONTENDED_MINERS on a fresh node: uncontended, available + claim, claim-next."""
    out: list[Contended] = []
    for n in args.miners:
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="aitbc-bench-contended-"))
        proc = start_node(port, workdir)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n + 8)) as s:
                await wait_ready(s, base + "/health", proc)
                for name, models, claim_next in CONTENDED_FLOWS:
                    flow = Flow(name, models, claim_next)
                    for i in range(n):
                        reg = {"miner_id": f"{flow.tag}-{i}", "capabilities": [models(i)]}
                        async with s.post(
                            base + "/v1/miners/register", json=reg, headers={"X-Api-Key": MINER_KEY}
                        ) as r:
                            assert r.status == 201, await r.text()
                    step = functools.partial(contended_lifecycle, s, base, flow)
                    await warm_up(n, step)
                    flow.refused = flow.claims = 0
                    rec, elapsed, _ = await drive(n, args.seconds, args.max_requests, step, proc.pid)
                    lat = rec.latencies.get("lifecycle", [])
                    p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
                    whole = percentile(rec.latencies.get("submitted", []), 99) * 1000
                    result = Contended(name, n, len(lat), elapsed, flow.refused, flow.claims, p50, p99, whole)
                    out.append(result)
                    print(
                        f"[contended] {n:3d} miners, {name:18} {result.rate:8.1f} lifecycles/s, "
                        f"409s {result.refused:6d} of {result.claims:7d} claims, p50 {p50:7.1f} ms, p99 {p99:7.1f} ms "
                        f"(from the submit: p99 {whole:7.1f} ms)",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def report_contended(results: list[Contended]) -> None:
    """The contended targets: lifecycles/s against the uncontended run of the same N, the 409
    share of the contract's flow, and the p99 at 64 miners."""
    by = {(r.flow, r.miners): r for r in results}
    print(
        f"\n{'miners':>6} {'flow':18} {'lifecycles/s':>13} {'x uncontended':>14} {'409s':>7} {'% claims':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'p99 from submit':>16}"
    )
    for r in results:
        base = by.get(("uncontended", r.miners))
        ratio = r.rate / base.rate if base and base.rate else float("nan")
        share = 100 * r.refused / r.claims if r.claims else 0.0
        print(
            f"{r.miners:6d} {r.flow:18} {r.rate:13.1f} {ratio:14.2f} {r.refused:7d} {share:8.2f}% "
            f"{r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.submitted_p99_ms:16.1f}"
        )
    top = max(r.miners for r in results)
    for flow in ("available + claim", "claim-next"):
        found, base = by.get((flow, top)), by.get(("uncontended", top))
        if found is not None and base is not None and base.rate:
            r = found
            print(
                f"{flow} at {top} miners: {r.rate / base.rate:.2f} x the uncontended lifecycle (target >= 0.8); "
                f"miner's lifecycle p99 {r.p99_ms:.0f} ms (target <= 100 ms; "
                f"{r.submitted_p99_ms:.0f} ms from the submit)"
            )
    seed = [r for r in results if r.flow == "available + claim"]
    refused, claims = sum(r.refused for r in seed), sum(r.claims for r in seed)
    if claims:
        print(f"available + claim: {100 * refused / claims:.2f}% of claims refused with 409 (target < 1%)")


def report_contended_medians(rounds: list[list[Contended]]) -> None:
    """Over several rounds: per flow and N, the median of each round's ratio to its own
    uncontended run and of its p99s; then the targets, judged on those medians."""
    print(f"\ncontended, medians over {len(rounds)} rounds (each ratio against the uncontended run of its own round):")
    print(
        f"{'miners':>6} {'flow':18} {'x uncontended':>14} {'p99 ms':>8} {'p99 from submit':>16}  rounds: x uncontended"
    )
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    for r in rounds[0]:
        ratios, p99s, submitted = [], [], []
        for results in rounds:
            by = {(x.flow, x.miners): x for x in results}
            found, base = by.get((r.flow, r.miners)), by.get(("uncontended", r.miners))
            if found is None or base is None or not base.rate:
                continue
            ratios.append(found.rate / base.rate)
            p99s.append(found.p99_ms)
            submitted.append(found.submitted_p99_ms)
        if not ratios:
            continue
        medians[(r.flow, r.miners)] = (statistics.median(ratios), statistics.median(p99s))
        print(
            f"{r.miners:6d} {r.flow:18} {statistics.median(ratios):14.2f} {statistics.median(p99s):8.1f} "
            f"{statistics.median(submitted):16.1f}   {', '.join(f'{v:.2f}' for v in ratios)}"
        )
    top = max(r.miners for r in rounds[0])
    for flow in ("available + claim", "claim-next"):
        if (flow, top) in medians:
            ratio, p99 = medians[(flow, top)]
            print(
                f"{flow} at {top} miners, medians: {ratio:.2f} x the uncontended lifecycle (target >= 0.8: "
                f"{'met' if ratio >= 0.8 else 'not met'}); miner's lifecycle p99 {p99:.0f} ms (target <= 100 ms: "
                f"{'met' if p99 <= 100 else 'not met'})"
            )
    seed = [r for results in rounds for r in results if r.flow == "available + claim"]
    refused, claims = sum(r.refused for r in seed), sum(r.claims for r in seed)
    if claims:
        share = 100 * refused / claims
        print(
            f"available + claim, all rounds: {share:.2f}% of claims refused with 409 "
            f"(target < 1%: {'met' if share < 1 else 'not met'})"
        )


LOAD_NICE = -20
"""The group workload's load generator asks for the highest CPU priority: it stands in for clients
on machines of their own, and on a machine of few CPUs it would otherwise queue behind etcd and
the standbys, and time its own queueing."""


def raise_priority(nice: int) -> int:
    """Give this process (its main thread: the event loop) the nice value `nice` where it may
    (lowering it needs root or CAP_SYS_NICE); the nice value it runs at."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        print(f"[group] the load generator stays at nice {os.getpriority(os.PRIO_PROCESS, 0)}: {exc}", flush=True)
    return os.getpriority(os.PRIO_PROCESS, 0)


GROUP_SIZE = 3
GROUP_LEASE_TTL = 3
"""Seconds of the sequencer's etcd lease in the group workload (the node's default)."""
GROUP_WORKERS = (64, 128)
"""The group workload's worker counts: 64, as in the other workloads, where the single node's core
is already its bound, and twice that, where the group's blocks fill; the target is judged at the
largest."""
SINGLE, TO_SEQUENCER, SPREAD = "single node", "group, to the sequencer", "group, spread over members"


def counts(text: str) -> tuple[int, ...]:
    """A command line's "N[,N…]"."""
    return tuple(int(n) for n in text.split(","))


def pin_process(pid: int, cpu: int) -> None:
    """Move every thread of a running process to one CPU (threads it starts later inherit it)."""
    if (os.cpu_count() or 1) < 2:
        return
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass  # the thread ended meanwhile


COMMIT_HISTOGRAM = "aitbc_group_commit_duration_seconds"
ETCD_HISTOGRAM = "aitbc_etcd_commit_duration_seconds"
RESENT_COUNTER = "aitbc_etcd_appends_resent"


@dataclass(frozen=True)
class SealerTotals:
    """What the sealing node's /metrics says of its block commits so far, read in one request."""

    commit: tuple[float, float]
    """_sum and _count of COMMIT_HISTOGRAM (seal to durable, a block)."""
    etcd: tuple[float, float]
    """_sum and _count of ETCD_HISTOGRAM (0, 0 on a single node)."""
    resent: float
    """RESENT_COUNTER's total (0 on a single node)."""


async def sealer_totals(s: aiohttp.ClientSession, base: str) -> SealerTotals:
    async with s.get(base + "/metrics") as r:
        text = await r.text()
    values = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))

    def value(name: str) -> float:
        return float(values.get(name, 0))

    return SealerTotals(
        (value(COMMIT_HISTOGRAM + "_sum"), value(COMMIT_HISTOGRAM + "_count")),
        (value(ETCD_HISTOGRAM + "_sum"), value(ETCD_HISTOGRAM + "_count")),
        value(RESENT_COUNTER + "_total"),
    )


@dataclass
class GroupPass:
    """One timed run of the job lifecycle against a single node or the group."""

    setup: str
    workers: int
    lifecycles: list[float]
    seconds: float
    requests: int
    errors: int
    writes: int
    blocks: int
    commit_ms: float
    """Mean time to seal and durably commit a block (COMMIT_HISTOGRAM)."""
    etcd_ms: float
    """Mean time of the sequencer's fenced etcd append per block (nan on a single node)."""
    resent: float
    """Appends sent to etcd again because they overtook the block below (0 on a single node)."""
    server_cpu: float
    """Share of a core the single node, or the sequencer, used."""
    standbys_cpu: float
    """Share of a core the standbys used together (nan on a single node)."""
    etcd_cpu: float
    """Share of a core the etcd members used together (nan on a single node)."""
    load_cpu: float
    sealer_wait: float
    """Share of the run the single node's or the sequencer's threads spent runnable but waiting
    for a CPU (summed over its threads)."""
    load_wait: float
    """The same for this load generator: above a few percent, its figures include its own queueing."""

    @property
    def rate(self) -> float:
        return len(self.lifecycles) / self.seconds if self.seconds else 0.0


async def lifecycle_pass(
    args: argparse.Namespace,
    s: aiohttp.ClientSession,
    setup: str,
    workers: int,
    base_of: Callable[[int], str],
    sealer: str,
    sealer_pid: int,
    standbys: list[int],
    etcd_pids: list[int],
) -> GroupPass:
    """Warm up, then drive the job lifecycle with `workers` workers for args.seconds; the block
    figures come from the node that seals (`sealer`), the CPU figures from /proc."""
    step = functools.partial(job_lifecycle, s, base_of)
    await warm_up(workers, step)
    height = await _height(s, sealer)
    totals = await sealer_totals(s, sealer)
    before = [sum(tree_cpu_seconds(p) for p in pids) for pids in (standbys, etcd_pids)]
    waits = runnable_wait_seconds(sealer_pid), runnable_wait_seconds(os.getpid())
    rec, elapsed, requests = await drive(workers, args.seconds, args.max_requests, step, sealer_pid)
    sealer_wait, load_wait = (
        (runnable_wait_seconds(pid) - waited) / elapsed
        for pid, waited in zip((sealer_pid, os.getpid()), waits, strict=True)
    )
    standbys_cpu, etcd_cpu = (
        (sum(tree_cpu_seconds(p) for p in pids) - used) / elapsed if pids else float("nan")
        for pids, used in zip((standbys, etcd_pids), before, strict=True)
    )
    blocks = await _height(s, sealer) - height
    after = await sealer_totals(s, sealer)

    def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float:
        count = after[1] - before[1]
        return 1000 * (after[0] - before[0]) / count if count else float("nan")

    result = GroupPass(
        setup,
        workers,
        rec.latencies.get("lifecycles", []),
        elapsed,
        requests,
        sum(rec.errors.values()),
        sum(len(v) for k, v in rec.latencies.items() if k.startswith("POST")),
        blocks,
        mean_ms(totals.commit, after.commit),
        mean_ms(totals.etcd, after.etcd),
        after.resent - totals.resent,
        rec.server_cpu / elapsed,
        standbys_cpu,
        etcd_cpu,
        rec.load_cpu,
        sealer_wait,
        load_wait,
    )
    print(
        f"[group] {setup:26} {workers:4d} workers {result.rate:8.1f} lifecycles/s, "
        f"p50 {percentile(result.lifecycles, 50) * 1000:6.1f} ms, "
        f"p99 {percentile(result.lifecycles, 99) * 1000:6.1f} ms, errors {result.errors}"
        + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(rec.refusals.items()))})" if rec.refusals else ""),
        flush=True,
    )
    return result


def group_member(port: int, workdir: Path, i: int, genesis: Path, key_file: Path, etcd: EtcdCluster) -> list[str]:
    """The command line of group member i (unpinned: it is placed once the election is known)."""
    return [
        sys.executable, "-m", "node", "start",
        "--data-dir", str(workdir / f"member-{i}"),
        "--port", str(port),
        "--genesis", str(genesis),
        "--node-key", str(key_file),
        "--etcd", ",".join(etcd.urls),
        "--lease-ttl", str(GROUP_LEASE_TTL),
        "--log-level", "warning",
        "--rate-limit", "0",
    ]  # fmt: skip


@dataclass
class RunningGroup:
    """A running authority group for the bench: its etcd cluster and member processes."""

    etcd: EtcdCluster
    members: list[subprocess.Popen[bytes]]
    urls: list[str]

    def stop(self) -> None:
        for proc in self.members:
            proc.terminate()
        for proc in self.members:
            proc.wait(timeout=60)
        self.etcd.stop()


def start_group(workdir: Path) -> RunningGroup:
    """GROUP_SIZE etcd members, then GROUP_SIZE nodes with --etcd on a genesis naming their keys
    and the bench's client and miner accounts (a group provisions no --api-keys)."""
    etcd = EtcdCluster(workdir, GROUP_SIZE).start()
    members: list[subprocess.Popen[bytes]] = []
    try:
        doc = json.loads(bench_genesis(workdir / "genesis.json").read_text())
        doc["accounts"] = [
            {"name": "bench-client", "role": "client", "key_hash": hash_hex(CLIENT_KEY.encode())},
            {"name": "bench-miner", "role": "miner", "key_hash": hash_hex(MINER_KEY.encode())},
        ]
        genesis, key_files = write_group_genesis(workdir, doc, GROUP_SIZE)
        ports = [free_port() for _ in range(GROUP_SIZE)]
        for i, port in enumerate(ports):
            cmd = group_member(port, workdir, i, genesis, key_files[i], etcd)
            members.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))
    except BaseException:
        RunningGroup(etcd, members, []).stop()
        raise
    return RunningGroup(etcd, members, [f"http://127.0.0.1:{p}" for p in ports])


async def run_group(args: argparse.Namespace) -> list[GroupPass]:
    """A single node and a 3-member group, both started once, then `rounds` alternations of:
    the job lifecycle on the single node, on the group with every request sent to the
    sequencer, and on the group with the workers spread over the members."""
    passes: list[GroupPass] = []
    workdir = Path(tempfile.mkdtemp(prefix="aitbc-bench-group-"))
    (workdir / "single").mkdir()
    port = free_port()
    single, base = start_node(port, workdir / "single"), f"http://127.0.0.1:{port}"
    group: RunningGroup | None = None
    try:
        group = start_group(workdir)
        urls, pids = group.urls, [p.pid for p in group.members]
        most = max(args.group_workers)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=most)) as s:
            await wait_ready(s, base + "/health", single)
            for url, proc in zip(urls, group.members, strict=True):
                await wait_ready(s, url + "/health", proc)
            lead = await wait_for_sequencer(s, urls)
            sequencer = urls[lead]
            pin_process(pids[lead], SERVER_CPU)
            standbys, etcd = [p for i, p in enumerate(pids) if i != lead], group.etcd.pids()
            await register_miners(s, base, most)
            await register_miners(s, sequencer, most)
            for number in range(1, args.rounds + 1):
                print(f"[group] round {number} of {args.rounds}", flush=True)
                for n in args.group_workers:
                    passes.append(await lifecycle_pass(args, s, SINGLE, n, lambda i: base, base, single.pid, [], []))
                    passes.append(
                        await lifecycle_pass(
                            args, s, TO_SEQUENCER, n, lambda i: sequencer, sequencer, pids[lead], standbys, etcd
                        )
                    )
                    passes.append(
                        await lifecycle_pass(
                            args, s, SPREAD, n, lambda i: urls[i % GROUP_SIZE], sequencer, pids[lead], standbys, etcd
                        )
                    )
            if await wait_for_sequencer(s, urls) != lead:
                print("[group] the sequencer changed during the run: its figures mix two sequencers", flush=True)
    finally:
        single.terminate()
        single.wait(timeout=60)
        if group is not None:
            group.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return passes


async def wait_for_sequencer(s: aiohttp.ClientSession, urls: list[str], limit_s: float = 60) -> int:
    """The index of the member that reports role sequencer, once one does."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for i, url in enumerate(urls):
            try:
                async with s.get(url + "/health") as r:
                    if (await r.json()).get("role") == "sequencer":
                        return i
            except (aiohttp.ClientError, ValueError):
                pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no group member became sequencer within {limit_s} s")


def report_group(passes: list[GroupPass], workers: Sequence[int]) -> None:
    """Each pass; then, for each worker count, the medians of each setup over the rounds and of
    the group's ratio to the single node's pass of the same round and count. The target is
    judged at the largest count (see the module's docstring)."""
    print(
        f"job lifecycle (submit, available, claim, complete: 4 requests), {', '.join(map(str, workers))} workers, "
        f"p50/p99 of a whole lifecycle. single node: one node on CPU {SERVER_CPU}. group: {GROUP_SIZE} etcd members "
        f"and {GROUP_SIZE} nodes (lease TTL {GROUP_LEASE_TTL} s); the sequencer is pinned to CPU {SERVER_CPU} like "
        "the single node, the standbys and etcd run on either CPU, the load generator at the highest priority the "
        "bench may give it. 'to the sequencer': every request goes to the "
        f"sequencer; 'spread': worker i talks to member i mod {GROUP_SIZE} (a standby forwards writes and offers "
        "to the sequencer, and answers a write once it holds its block). The setups alternate, all running "
        "throughout (the idle group's standbys poll etcd meanwhile). resent: the share of blocks whose etcd append "
        "was sent again (it overtook the block below). CPU: the share of a core used (a member's "
        "helper processes included); wait: the share of the run the sealer's or the load generator's threads "
        "spent runnable but waiting for a CPU."
    )
    print(
        f"{'setup':28} {'workers':>7} {'lifecycles/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'writes/block':>12} {'blocks/s':>8} {'commit ms':>9} {'etcd ms':>8} {'resent':>6} {'sealer cpu':>10} "
        f"{'standbys cpu':>13} {'etcd cpu':>9} {'load cpu':>8} {'sealer wait':>11} {'load wait':>9}"
    )
    for p in passes:
        print(
            f"{p.setup:28} {p.workers:7d} {p.rate:12.1f} {percentile(p.lifecycles, 50) * 1000:7.1f} "
            f"{percentile(p.lifecycles, 99) * 1000:7.1f} {p.errors:6d} {p.writes / max(p.blocks, 1):12.1f} "
            f"{p.blocks / p.seconds:8.0f} {p.commit_ms:9.2f} {p.etcd_ms:8.2f} "
            f"{100 * p.resent / max(p.blocks, 1):5.1f}% {100 * p.server_cpu:9.0f}% "
            f"{100 * p.standbys_cpu:12.0f}% {100 * p.etcd_cpu:8.0f}% {100 * p.load_cpu:7.0f}% "
            f"{100 * p.sealer_wait:10.0f}% {100 * p.load_wait:8.0f}%"
        )
    rates: dict[tuple[str, int], list[float]] = defaultdict(list)
    """Lifecycles/s of each setup at each worker count, round by round."""
    for p in passes:
        rates[p.setup, p.workers].append(p.rate)
    print()
    for n in workers:
        for setup in (SINGLE, TO_SEQUENCER, SPREAD):
            judged = setup == TO_SEQUENCER and n == max(workers)
            singles = None if setup == SINGLE else rates[SINGLE, n]
            print(group_median_line(f"{setup}, {n} workers", rates[setup, n], singles, 0.7 if judged else None))


def group_median_line(label: str, rates: list[float], singles: list[float] | None, target: float | None = None) -> str:
    """The median of `rates` over the rounds, and given the single node's rates of the same
    rounds, the median of the ratios to them (against `target`)."""
    line = f"{label:40} median {statistics.median(rates):8.1f} lifecycles/s"
    if singles is None:
        return line
    ratios = [r / b for r, b in zip(rates, singles, strict=True) if b]
    if ratios:
        ratio = statistics.median(ratios)
        line += f", {ratio:.2f} x the single node (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        if target is not None:
            line += f"; target >= {target}: {'met' if ratio >= target else 'not met'}"
    return line


async def _height(s: aiohttp.ClientSession, base: str) -> int:
    async with s.get(base + "/health") as r:
        return int((await r.json())["height"])


def verdicts(results: list[Result], block_max_wait_ms: int) -> dict[str, tuple[float, str]]:
    """The figures the targets are about, each with the line that states it against its target."""
    by = {r.name: r for r in results}
    get_ceiling, post_ceiling = by.get("ceiling GET"), by.get("ceiling POST")
    out: dict[str, tuple[float, str]] = {}
    lifecycle = [r for r in results if r.name.startswith("[lifecycle]") and not r.name.endswith("lifecycles")]
    if lifecycle and post_ceiling:
        total = sum(r.rate for r in lifecycle)
        share = 100 * total / post_ceiling.rate
        out["lifecycle"] = (
            share,
            f"job lifecycle requests/s {total:.0f} = {share:.0f}% of the bare POST ceiling (target >= 50%)",
        )
    stats = by.get("[stats] GET /explorer/stats")
    if stats and get_ceiling:
        share = 100 * stats.rate / get_ceiling.rate
        out["stats"] = (
            share,
            f"GET /explorer/stats {stats.rate:.0f}/s = {share:.0f}% of the bare GET ceiling (target >= 80%)",
        )
    submit = by.get("[submit] POST /v1/jobs")
    if submit:
        out["p99"] = (
            submit.p99_ms,
            f"p99 POST /v1/jobs {submit.p99_ms:.1f} ms (target <= {4 * block_max_wait_ms + 10} ms)",
        )
    return out


def report(results: list[Result], block_max_wait_ms: int) -> None:
    print(
        f"{'endpoint':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'load cpu':>9} {'server us/req':>14}"
    )
    for r in results:
        if r.name.endswith("lifecycles"):
            print(f"{r.name:44} {r.rate:9.1f} {'':>8} {'':>8} {'':>7}")
            continue
        print(
            f"{r.name:44} {r.rate:9.1f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
            f"{100 * r.load_cpu:8.0f}% {r.server_us:14.1f}"
        )
    print()
    for _, line in verdicts(results, block_max_wait_ms).values():
        print(line)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload",
        choices=[*WORKLOADS, "group", "all"],
        default="all",
        help="all: every workload but group (which needs the etcd binary)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each workload")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget of each workload")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="connections of the ceiling and node workloads (contended: --miners; group: --group-workers)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="repeat everything (ceiling included) this many times and print the median of each target's figure "
        "(default 1; for the group workload, the number of alternations of single node and group, default 3)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample the node with py-spy during each workload: stacks in DIR, a summary by layer printed "
        "(py-spy stops the server for each sample: a profiled run's figures are not the bench's)",
    )
    parser.add_argument(
        "--miners",
        type=counts,
        default=CONTENDED_MINERS,
        metavar="N[,N…]",
        help="the contended workload's numbers of miners (default 8,16,64)",
    )
    parser.add_argument(
        "--group-workers",
        type=counts,
        default=GROUP_WORKERS,
        metavar="N[,N…]",
        help="the group workload's numbers of workers (default 64,128); the target is judged at the largest",
    )
    parser.add_argument(
        "--load-nice",
        type=int,
        default=LOAD_NICE,
        metavar="N",
        help=f"the group workload's nice value for the load generator (default {LOAD_NICE}, the highest "
        "priority, where the bench may set it; 0: the default priority)",
    )
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CPU})
    if args.workload == "group":
        args.rounds = args.rounds or 3
        load_nice = raise_priority(args.load_nice)
        passes = asyncio.run(run_group(args))
        print(
            f"\nmachine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}; load on CPU {LOAD_CPU} at nice "
            f"{load_nice}; "
            f"{', '.join(map(str, args.group_workers))} workers, {args.seconds:g} s per pass, {args.rounds} rounds\n"
        )
        report_group(passes, args.group_workers)
        return 0
    args.rounds = args.rounds or 1
    chosen = list(WORKLOADS) if args.workload == "all" else [args.workload]
    wait = json.loads((ROOT / "genesis.json").read_text())["params"]["block_max_wait_ms"]
    rounds: list[dict[str, tuple[float, str]]] = []
    contended_rounds: list[list[Contended]] = []
    for number in range(1, args.rounds + 1):
        args.round = number
        results: list[Result] = []
        if "ceiling" in chosen:
            results += asyncio.run(run_ceiling(args))
        node_workloads = [w for w in chosen if w not in ("ceiling", "contended")]
        if node_workloads:
            results += asyncio.run(run_node(args, node_workloads))
        contended = asyncio.run(run_contended(args)) if "contended" in chosen else []
        which = f"round {number} of {args.rounds}; " if args.rounds > 1 else ""
        print(
            f"\n{which}machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}; server on CPU {SERVER_CPU}, "
            f"load on CPU {LOAD_CPU}; {args.concurrency} connections, {args.seconds:g} s per workload\n"
        )
        if results:
            report(results, wait)
        if contended:
            report_contended(contended)
            contended_rounds.append(contended)
        rounds.append(verdicts(results, wait))
    if args.rounds > 1:
        print(f"\nmedians over {args.rounds} rounds (each ratio against the ceiling of its own round):")
        for name, unit in (
            ("lifecycle", "% of the bare POST ceiling (target >= 50%)"),
            ("stats", "% of the bare GET ceiling (target >= 80%)"),
            ("p99", f" ms p99 of POST /v1/jobs (target <= {4 * wait + 10} ms)"),
        ):
            values = sorted(r[name][0] for r in rounds if name in r)
            if values:
                print(
                    f"  {name:10} {statistics.median(values):.1f}{unit}; "
                    f"rounds: {', '.join(f'{v:.1f}' for v in values)}"
                )
        if contended_rounds:
            report_contended_medians(contended_rounds)
    return 0
