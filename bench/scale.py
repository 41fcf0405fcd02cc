"""Reads, start-up, memory and disk on chains of 1,000 and 1,000,000 transactions.

The chains are built through the producer's sealing path and the store directly (not over
HTTP): job lifecycles (submit, claim, complete with a signed receipt). Then a real node is
started on each, pinned to CPU 0, and the same reads are driven from CPU 1: on every chain in
turn, interleaved, for several rounds (the medians are printed, and the ratio of each round).

  python -m bench scale                          # 1,000 and 1,000,000 transactions
  python -m bench scale --sizes 1000 100000 --seconds 3
  python -m bench scale --keep /var/tmp/aitbc-scale   # reuse chains built earlier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.load import CLIENT_KEY, LOAD_CPU, MINER_KEY, Recorder, drive, free_port, percentile, pin, timed, wait_ready
from chain.jobs import receipt_key
from chain.receipts import receipt_body, sign_receipt
from chain.state import WorkingState
from chain.transactions import Transaction
from node.clock import now_ms
from node.datadir import DataDir, api_key_hash
from node.producer import seal_now
from node.store import Store

ROOT = Path(__file__).resolve().parent.parent
MODEL = "llama3.2"
RESULT = "A prince avenges his father and nearly everyone dies."


def build_chain(data_dir: Path, transactions: int) -> float:
    """Build a chain of about `transactions` txs; returns seconds taken."""
    started = time.perf_counter()
    datadir = DataDir(data_dir)
    init = datadir.initialise(None)
    key = datadir.node_key()
    assert key is not None
    store = Store(datadir.chain_path, init.genesis)
    per_block = init.genesis.params.max_block_txs
    try:
        t = now_ms()
        seal_now(
            store,
            key,
            [
                Transaction(
                    "account.create",
                    {"name": "bench-client", "role": "client", "key_hash": api_key_hash(CLIENT_KEY)},
                    t,
                ),
                Transaction(
                    "account.create", {"name": "bench-miner", "role": "miner", "key_hash": api_key_hash(MINER_KEY)}, t
                ),
            ],
        )
        seal_now(
            store,
            key,
            [
                Transaction(
                    "miner.register",
                    {"miner_id": "m1", "owner": "bench-miner", "capabilities": [MODEL], "gpu_info": None},
                    t,
                )
            ],
        )
        made = 3
        while made < transactions:
            # One block of submissions, one of claims, one of completions: a third of the block size each.
            n = max(1, min(per_block, transactions - made) // 3)
            ids = [f"job_{secrets.token_hex(8)}" for _ in range(n)]
            t = now_ms()
            seal_now(
                store,
                key,
                [
                    Transaction(
                        "job.submit",
                        {"job_id": j, "client": "bench-client", "prompt": f"prompt {j}", "model": MODEL, "params": {}},
                        t,
                    )
                    for j in ids
                ],
            )
            seal_now(
                store,
                key,
                [
                    Transaction("job.claim", {"job_id": j, "miner_id": "m1", "owner": "bench-miner"}, now_ms())
                    for j in ids
                ],
            )
            view = WorkingState(store)
            completes = []
            done_at = now_ms()
            price = init.genesis.params.price_per_unit(MODEL)
            for j in ids:
                job = view.get_record(key_for_job(j))
                body = receipt_body(
                    receipt_id=f"rcpt_{j[4:]}",
                    job=job,
                    provider="m1",
                    result=RESULT,
                    completed_at_ms=done_at,
                    price_per_unit=price,
                    coordinator_id=store.genesis.chain_id,
                )
                payload = {
                    "job_id": j,
                    "miner_id": "m1",
                    "owner": "bench-miner",
                    "result": RESULT,
                    "completed_at": done_at,
                    "receipt": sign_receipt(body, key),
                }
                completes.append(Transaction("job.complete", payload, done_at))
            seal_now(store, key, completes)
            made += 3 * n
        # Leave some pending jobs for the pending listing.
        seal_now(
            store,
            key,
            [
                Transaction(
                    "job.submit",
                    {"job_id": f"job_p{i}", "client": "bench-client", "prompt": "p", "model": MODEL, "params": {}},
                    now_ms(),
                )
                for i in range(50)
            ],
        )
        assert store.get(receipt_key(f"rcpt_{ids[0][4:]}")) is not None
    finally:
        store.close()
    return time.perf_counter() - started


def key_for_job(job_id: str) -> bytes:
    from chain.jobs import job_key

    return job_key(job_id)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory from /proc: VmRSS (all), RssAnon (the heap) or RssFile (mapped files)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


READS = {
    "GET /explorer/stats": ("/explorer/stats", False),
    "GET /v1/receipts?client=": ("/v1/receipts?client=bench-client", True),
    "GET /v1/jobs?status=pending": ("/v1/jobs?status=pending", True),
    "GET /explorer/blocks": ("/explorer/blocks", False),
}
"""The reads measured on every chain: (path, whether it takes the client's API key)."""

ReadFigures = tuple[float, float, float, int]
"""(requests/s, p50 ms, p99 ms, errors) of one read."""


@dataclass
class ChainResult:
    """What was measured on one chain's node."""

    startup_s: float
    maintenance_s: float
    reads: dict[str, ReadFigures] = field(default_factory=dict)
    """Each read's medians over the rounds (errors: summed)."""
    rounds: dict[str, list[float]] = field(default_factory=dict)
    """Each read's requests/s in each round."""
    rss_mb: float = float("nan")
    rss_anon_mb: float = float("nan")
    rss_file_mb: float = float("nan")
    bytes_per_tx: float = float("nan")

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"startup_s": self.startup_s, "maintenance_s": self.maintenance_s}
        for name, figures in self.reads.items():
            out[name] = figures
            out[name + " rounds"] = self.rounds[name]
        out |= {"rss_mb": self.rss_mb, "rss_anon_mb": self.rss_anon_mb, "rss_file_mb": self.rss_file_mb}
        out["bytes_per_tx"] = self.bytes_per_tx
        return out


async def start_node(s: aiohttp.ClientSession, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, ChainResult]:
    """A node on data_dir, pinned to CPU 0, once it serves and its start-up maintenance is done."""
    port = free_port()
    args = [
        *pin(0),
        sys.executable,
        "-m",
        "node",
        "start",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--rate-limit",
        "0",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(s, base + "/health", proc, poll_s=0.01)
        startup_s = time.perf_counter() - started
        # Measure the steady state: wait (bounded) for the start-up maintenance to finish.
        settle_started = time.perf_counter()
        while time.perf_counter() - settle_started < 300:
            async with s.get(base + "/status") as r:
                if not (await r.json()).get("maintenance"):
                    break
            await asyncio.sleep(0.2)
        maintenance_s = time.perf_counter() - settle_started
    except BaseException:
        stop_node(proc)
        raise
    return proc, base, ChainResult(startup_s, maintenance_s)


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


async def read_rate(s: aiohttp.ClientSession, base: str, name: str, seconds: float, concurrency: int) -> ReadFigures:
    """(requests/s, p50 ms, p99 ms, errors) of one read driven for `seconds`."""
    path, keyed = READS[name]
    headers = {"X-Api-Key": CLIENT_KEY} if keyed else {}

    async def step(i: int, rec: Recorder) -> int:
        await timed(s, rec, name, "GET", base + path, 200, headers=headers)
        return 1

    rec, elapsed, _ = await drive(concurrency, seconds, 10**7, step)
    lat = rec.latencies[name]
    return len(lat) / elapsed, percentile(lat, 50) * 1000, percentile(lat, 99) * 1000, rec.errors.get(name, 0)


async def measure(chains: dict[int, Path], seconds: float, concurrency: int, rounds: int) -> dict[int, ChainResult]:
    """Start-up of each chain's node in turn (the others idle); then each read on every chain,
    interleaved, `rounds` times (this machine's speed drifts by minutes, so the chains are
    measured side by side, not one after the other); each figure is the median of its rounds."""
    results: dict[int, ChainResult] = {}
    nodes: dict[int, tuple[subprocess.Popen[bytes], str, aiohttp.ClientSession]] = {}
    try:
        for size, data_dir in chains.items():
            # a session (and keep-alive pool) per node, so that switching chains opens no connections
            s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
            try:
                proc, base, results[size] = await start_node(s, data_dir)
            except BaseException:
                await s.close()
                raise
            nodes[size] = proc, base, s
        samples: dict[tuple[int, str], list[ReadFigures]] = {}
        for _ in range(rounds):
            for name in READS:
                for size, (_proc, base, s) in nodes.items():
                    samples.setdefault((size, name), []).append(await read_rate(s, base, name, seconds, concurrency))
        for (size, name), got in samples.items():
            rates = [g[0] for g in got]
            results[size].reads[name] = (
                statistics.median(rates),
                statistics.median(g[1] for g in got),
                statistics.median(g[2] for g in got),
                sum(g[3] for g in got),
            )
            results[size].rounds[name] = rates
        for size, (proc, _base, _s) in nodes.items():
            results[size].rss_mb = rss_mb(proc.pid)
            results[size].rss_anon_mb = rss_mb(proc.pid, "RssAnon")
            results[size].rss_file_mb = rss_mb(proc.pid, "RssFile")
    finally:
        for proc, _base, s in nodes.values():
            await s.close()
            stop_node(proc)
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each read, each round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="the reads on all chains, interleaved, this many times (medians)"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--keep", type=Path, default=None, help="build chains under this folder and keep them for later runs"
    )
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CPU})
    root = args.keep or Path(tempfile.mkdtemp(prefix="aitbc-scale-"))
    try:
        chains: dict[int, Path] = {}
        store_bytes: dict[int, int] = {}
        for size in sorted(set(args.sizes)):
            data = chains[size] = root / f"chain-{size}"
            if not (data / "genesis.json").exists():
                took = build_chain(data, size)
                print(f"built a chain of {size:,} transactions in {took:.1f} s", flush=True)
            store_bytes[size] = dir_bytes(data / "chain")
        results = asyncio.run(measure(chains, args.seconds, args.concurrency, max(1, args.rounds)))
        for size in chains:
            results[size].bytes_per_tx = store_bytes[size] / size
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    small, large = min(results), max(results)
    print(
        f"\nmachine: {os.cpu_count()} CPUs; nodes on CPU 0, load on CPU {LOAD_CPU}; {args.concurrency} connections; "
        f"each read {args.seconds:g} s per chain per round, {max(1, args.rounds)} rounds interleaved; medians\n"
    )
    print(
        f"{'read':32} "
        + " ".join(f"{f'{s:,} tx req/s':>16} {'p99 ms':>8}" for s in sorted(results))
        + f" {'ratio':>7}  ratio by round"
    )
    for name in READS:
        cells = []
        for s in sorted(results):
            rate, _p50, p99, _err = results[s].reads[name]
            cells.append(f"{rate:16.0f} {p99:8.2f}")
        ratio = results[small].reads[name][0] / results[large].reads[name][0]
        by_round = [a / b for a, b in zip(results[small].rounds[name], results[large].rounds[name], strict=True)]
        print(f"{name:32} " + " ".join(cells) + f" {ratio:6.2f}x  " + " ".join(f"{r:.2f}" for r in by_round))
    print("\n(ratio = req/s at the small chain / req/s at the large one; target: within 1.2x)")
    for s in sorted(results):
        r = results[s]
        print(
            f"{s:>12,} tx: start-up {r.startup_s:.2f} s (then {r.maintenance_s:.1f} s of background maintenance), "
            f"resident memory {r.rss_mb:.0f} MB ({r.rss_anon_mb:.0f} MB heap, {r.rss_file_mb:.0f} MB mapped files), "
            f"{r.bytes_per_tx:.0f} bytes on disk per tx"
        )
    print(json.dumps({str(k): v.as_json() for k, v in results.items()}, default=str))
    return 0
