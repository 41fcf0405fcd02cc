"""Follower catch-up: how fast a follower verifies and stores a long chain with receipts.

Builds a chain straight through chain/ and node.store (no HTTP): blocks of job submissions,
then blocks of claims, then blocks of completions (each carrying a signed receipt), so the
last third is a chain of receipt transactions. Then measures, in the same run:

  raw       PyNaCl's Ed25519 verify rate (the baseline), right before each timed run
  verify    the follower's verification path in-process (node.catchup.BlockPipeline, exactly
            what node/sync.py runs, helper process and writer thread included), over the whole
            chain once and over the receipt-only blocks --repeats times (the median ratio counts)
  http      a real follower process catching up from a real authority process on 127.0.0.1

  python -m bench sync                       # 34,000 jobs: 102,000 transactions, 34,000 receipts
  python -m bench sync --jobs 5000 --no-http
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from chain.blocks import Block
from chain.jobs import get_job
from chain.receipts import receipt_body, sign_receipt
from chain.transactions import Transaction
from node.catchup import BlockPipeline
from node.datadir import DataDir, api_key_hash
from node.producer import seal_now
from node.store import Store
from node.sync import BATCH_BLOCKS

CLIENT, MINER, MINER_ID = "bench-client", "bench-miner", "bench-gpu"
PEER_KEY = "bench-peer-key-000000000000000"
RESULT = "the quick brown fox jumps over the lazy dog"


def raw_verify_rate(seconds: float = 2.0) -> float:
    key = SigningKey.generate()
    verify = key.verify_key
    signed = [key.sign(secrets.token_bytes(200)) for _ in range(1000)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for s in signed:
            verify.verify(s)
        done += len(signed)
    return done / (time.perf_counter() - started)


def build_chain(data_dir: Path, jobs: int, block_txs: int) -> dict[str, Any]:
    """An authority data dir whose chain holds 3 x jobs transactions (a third of them receipts)."""
    datadir = DataDir(data_dir)
    genesis_src = data_dir.parent / "source-genesis.json"
    raw = json.loads((Path(__file__).resolve().parent.parent / "genesis.json").read_text())
    raw["params"] = {**raw["params"], "max_block_txs": block_txs, "lease_seconds": 604800}
    genesis_src.write_text(json.dumps(raw))
    datadir.initialise(genesis_src)
    key = datadir.node_key()
    assert key is not None
    store = Store(datadir.chain_path, datadir.genesis())
    try:
        clock = [store.tip().timestamp]

        def seal(txs: list[Transaction]) -> None:
            clock[0] += 1000
            outcomes, block = seal_now(store, key, txs, clock=lambda: clock[0])
            bad = [o for o in outcomes if not isinstance(o, dict)]
            assert block is not None and not bad, bad[:1]

        def tx(tx_type: str, **payload: Any) -> Transaction:
            return Transaction(tx_type, payload, clock[0])

        seal(
            [
                tx("account.create", name=CLIENT, role="client", key_hash=api_key_hash("bench-client-key-0000000000")),
                tx("account.create", name=MINER, role="miner", key_hash=api_key_hash("bench-miner-key-00000000000")),
                tx("account.create", name="bench-peer", role="peer", key_hash=api_key_hash(PEER_KEY)),
            ]
        )
        seal([tx("miner.register", miner_id=MINER_ID, owner=MINER, capabilities=["llama3.2"], gpu_info={})])
        price = store.genesis.params.price_per_unit("llama3.2")
        # All submissions, then all claims, then all completions: the last third of the chain is
        # a run of blocks made only of receipt transactions.
        ids = [f"job_{i:08d}" for i in range(jobs)]
        rounds = [ids[i : i + block_txs] for i in range(0, jobs, block_txs)]
        for part in rounds:
            seal([tx("job.submit", job_id=j, client=CLIENT, prompt="bench", model="llama3.2", params={}) for j in part])
        for part in rounds:
            seal([tx("job.claim", job_id=j, miner_id=MINER_ID, owner=MINER) for j in part])
        for part in rounds:
            done_at = clock[0] + 1000
            completes = []
            for j in part:
                body = receipt_body(
                    receipt_id="r" + j,
                    job=get_job(store, j),
                    provider=MINER_ID,
                    result=RESULT,
                    completed_at_ms=done_at,
                    price_per_unit=price,
                    coordinator_id=store.genesis.chain_id,
                )
                completes.append(
                    Transaction(
                        "job.complete",
                        {
                            "job_id": j,
                            "miner_id": MINER_ID,
                            "owner": MINER,
                            "result": RESULT,
                            "completed_at": done_at,
                            "receipt": sign_receipt(body, key),
                        },
                        done_at,
                    )
                )
            clock[0] = done_at - 1000
            seal(completes)
        return {"height": store.tip().height, "txs": store.tx_count()}
    finally:
        store.close()


def _batches(blocks: list[Block]) -> list[list[Block]]:
    """Catch-up batches of BATCH_BLOCKS blocks, never mixing receipt-only blocks with others."""
    batches: list[list[Block]] = []
    for block in blocks:
        last = batches[-1] if batches else None
        if last is None or len(last) == BATCH_BLOCKS or _receipts_only(last[0]) != _receipts_only(block):
            batches.append([block])
        else:
            last.append(block)
    return batches


def _run(target: Store, batches: list[list[Block]]) -> tuple[float, dict[str, float]]:
    """Feed the batches through a fresh BlockPipeline; seconds for all, and per kind of batch."""
    pipeline = BlockPipeline(target, target.genesis)
    pipeline.start(wait=True)  # a follower starts its helper process once, at start-up
    totals = {
        "blocks": 0,
        "txs": 0,
        "receipts": 0,
        "seconds": 0.0,
        "receipt_seconds": 0.0,
        "receipt_blocks_receipts": 0,
    }
    try:
        for batch in batches:
            started = time.perf_counter()
            stored, rejected = pipeline.run(batch)
            spent = time.perf_counter() - started
            assert rejected is None and len(stored) == len(batch), rejected
            receipts = sum(1 for b in batch for t in b.transactions if t.type == "job.complete")
            totals["blocks"] += len(batch)
            totals["txs"] += sum(len(b.transactions) for b in batch)
            totals["receipts"] += receipts
            totals["seconds"] += spent
            if _receipts_only(batch[0]):
                totals["receipt_seconds"] += spent
                totals["receipt_blocks_receipts"] += receipts
    finally:
        pipeline.close()
    return totals["seconds"], totals


def verify_in_process(source_dir: Path, work: Path, repeats: int) -> tuple[dict[str, float], list[tuple[float, float]]]:
    """The follower's path (node.catchup.BlockPipeline, what node/sync.py runs), fed batches of
    BATCH_BLOCKS blocks decoded beforehand (as catch-up decodes them from the wire): once over
    the whole chain, then `repeats` times over the run of receipt-only blocks alone, each time
    from a copy of a store that holds the blocks before it, right after a raw verify measurement.
    Returns the whole-chain totals and (raw verifies/s, receipts verified/s) per repeat."""
    source = Store(source_dir / "chain", DataDir(source_dir).genesis(), create=False)
    try:
        raws = [raw for _, raw in source.iter_block_bytes(1)]
        genesis, tip = source.genesis, source.tip().hash
    finally:
        source.close()
    target = Store(work / "whole", genesis)
    try:
        _, whole = _run(target, _batches([Block.decode(r) for r in raws]))
        assert target.tip().hash == tip
    finally:
        target.close()
    first = next(i for i, r in enumerate(raws) if _receipts_only(Block.decode(r)))
    assert all(_receipts_only(Block.decode(r)) for r in raws[first:])
    prefix = Store(work / "prefix", genesis)
    try:
        _run(prefix, _batches([Block.decode(r) for r in raws[:first]]))
    finally:
        prefix.close()
    rates = []
    for i in range(repeats):
        shutil.copytree(work / "prefix", work / f"repeat-{i}")
        batches = _batches([Block.decode(r) for r in raws[first:]])
        raw = raw_verify_rate(1.0)
        target = Store(work / f"repeat-{i}", genesis)
        try:
            _, run = _run(target, batches)
            assert target.tip().hash == tip
        finally:
            target.close()
        rates.append((raw, run["receipt_blocks_receipts"] / run["receipt_seconds"]))
    return whole, rates


def _receipts_only(block: Block) -> bool:
    return all(t.type == "job.complete" for t in block.transactions)


def _node(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", *args]


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("health:"):
            return
    raise RuntimeError("node did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def catch_up_over_http(source_dir: Path, follower_dir: Path, tip: int, timeout_s: float) -> float:
    a_port, f_port = _free_port(), _free_port()
    procs = []
    try:
        authority = subprocess.Popen(
            _node("start", "--data-dir", str(source_dir), "--port", str(a_port), "--log-level", "warning"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(authority)
        _wait_ready(authority)
        started = time.perf_counter()
        follower = subprocess.Popen(
            _node(
                "start",
                "--data-dir",
                str(follower_dir),
                "--port",
                str(f_port),
                "--log-level",
                "warning",
                "--follow",
                f"http://127.0.0.1:{a_port}",
                "--genesis",
                str(source_dir / "genesis.json"),
                "--peer-key",
                PEER_KEY,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(follower)
        _wait_ready(follower)
        while time.perf_counter() - started < timeout_s:
            with urllib.request.urlopen(f"http://127.0.0.1:{f_port}/health", timeout=10) as resp:
                if json.loads(resp.read())["height"] >= tip:
                    return time.perf_counter() - started
            time.sleep(0.05)
        raise RuntimeError(f"the follower did not catch up within {timeout_s} s")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=60)
            if p.stdout is not None:
                p.stdout.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=34_000, help="jobs in the chain (3 transactions each)")
    parser.add_argument("--block-txs", type=int, default=500, help="transactions per block")
    parser.add_argument("--no-http", action="store_true", help="skip the two-process catch-up over HTTP")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs over the receipt-only blocks")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for the HTTP catch-up")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="aitbc-bench-sync-"))
    try:
        print(
            f"building a chain of {args.jobs} jobs ({3 * args.jobs} transactions, {args.jobs} receipts) …", flush=True
        )
        started = time.perf_counter()
        built = build_chain(work / "authority", args.jobs, args.block_txs)
        print(f"  built {built['height']} blocks, {built['txs']} transactions in {time.perf_counter() - started:.1f} s")

        (work / "verify").mkdir()
        whole, rates = verify_in_process(work / "authority", work / "verify", args.repeats)
        print(
            "follower verification path (in-process, node.catchup.BlockPipeline in batches of "
            f"{BATCH_BLOCKS} blocks, as catch-up runs it):"
        )
        print(
            f"  whole chain:   {whole['blocks'] / whole['seconds']:>10,.1f} blocks/s  "
            f"{whole['txs'] / whole['seconds']:>10,.0f} tx/s  "
            f"{whole['receipts'] / whole['seconds']:>10,.0f} receipts verified/s"
        )
        print(
            f"  receipt-only blocks ({whole['receipt_blocks_receipts']:,.0f} receipts), "
            "each run right after a raw PyNaCl verify measurement:"
        )
        for i, (raw, rate) in enumerate(rates, 1):
            print(
                f"    run {i}: raw verify {raw:>8,.0f}/s   catch-up {rate:>8,.0f} receipts verified/s   "
                f"ratio {rate / raw:.2f}"
            )
        ratio = statistics.median(rate / raw for raw, rate in rates)
        print(f"  median ratio to raw verify: {ratio:.2f} (target >= 0.50)")

        if not args.no_http:
            seconds = catch_up_over_http(work / "authority", work / "follower", built["height"], args.timeout)
            print("two processes over HTTP on 127.0.0.1 (start of follower to level with the authority):")
            print(
                f"  {built['height'] / seconds:>10,.1f} blocks/s  {built['txs'] / seconds:>10,.0f} tx/s  "
                f"{args.jobs / seconds:>10,.0f} receipts verified/s  in {seconds:.1f} s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
