"""Logs and progress: the JSON log formatter and the terminal progress bar against the
hand-written ones they replaced (read from git at BASELINE), measured in the same run.

  json logs   records/s formatted: an access-log record, ASCII and non-ASCII path
  progress    Progress.update calls/s on a terminal (the bar) and off one (log lines); rich's
              Progress as a reference
  real rate   the progress updates/s `aitbc-node verify` makes on a chain of one-transaction
              blocks, and the share of that time each bar's updates cost

Each figure is the fastest of --rounds rounds, the candidates taking turns round by round.

  python -m bench logs_and_progress
  python -m bench logs_and_progress --rounds 3 --records 5000 --updates 50000 --jobs 100
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node import logging_setup, progress

BASELINE = "af6acfd"
"""The last commit with the hand-written JSON formatter and progress bar."""

ROOT = Path(__file__).resolve().parent.parent


def baseline_module(path: str) -> types.ModuleType:
    """The module at `path` as it was at BASELINE."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BASELINE}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"baseline_{Path(path).stem}")
    exec(compile(source, f"{BASELINE}:{path}", "exec"), module.__dict__)
    return module


def fastest(candidates: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Units/s of each candidate (it returns how many units it did), fastest of its rounds."""
    best = dict.fromkeys(candidates, 0.0)
    for _ in range(rounds):
        for name, run in candidates.items():
            started = time.perf_counter()
            units = run()
            best[name] = max(best[name], units / (time.perf_counter() - started))
    return best


def report(title: str, rates: dict[str, float], unit: str) -> None:
    base = next(iter(rates.values()))
    print(title)
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:>12,.0f} {unit}/s  {1e9 / rate:>7,.0f} ns each  ratio {rate / base:.2f}")


# -- JSON logs ---------------------------------------------------------------------------
def access_record(path: str) -> logging.LogRecord:
    """The record api.middleware logs for one request, with its request id."""
    record = logging.LogRecord(
        "aitbc.access", logging.INFO, __file__, 0, "%s %s %d %.1fms", ("GET", path, 200, 1.234), None
    )
    record.http = {"method": "GET", "path": path, "status": 200, "duration_ms": 1.23, "client": "127.0.0.1"}
    record.request_id = "3f2a9c0d1e8b4a7f"
    return record


def bench_json(old: types.ModuleType, rounds: int, records: int) -> None:
    formatters = {
        "hand-written (json.dumps)": old.JsonFormatter(),
        "python-json-logger (orjson)": logging_setup.JsonFormatter(),
    }
    for label, path in (("an ASCII path", "/v1/jobs/job_0000001234"), ("a non-ASCII path", "/explorer/search/café…")):
        batch = [access_record(path) for _ in range(records)]

        def formatting(fmt: logging.Formatter, batch: list[logging.LogRecord] = batch) -> Callable[[], int]:
            def run() -> int:
                for record in batch:
                    fmt.format(record)
                return len(batch)

            return run

        rates = fastest({name: formatting(fmt) for name, fmt in formatters.items()}, rounds)
        report(f"JSON log records formatted, an access line with {label}:", rates, "records")


# -- progress ----------------------------------------------------------------------------
class Terminal(io.StringIO):
    """A terminal that discards what is drawn on it."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def updating(make: Callable[[], Any], updates: int) -> Callable[[], int]:
    def run() -> int:
        bar = make()
        for done in range(1, updates + 1):
            bar.update(done, updates)
        bar.close()
        return updates

    return run


def rich_updating(updates: int) -> Callable[[], int]:
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    def run() -> int:
        console = Console(file=Terminal(), force_terminal=True, width=100)
        with RichProgress(console=console, refresh_per_second=10) as bar:
            task = bar.add_task("verify", total=updates)
            for done in range(1, updates + 1):
                bar.update(task, completed=done, total=updates)
        return updates

    return run


def bench_progress(old: types.ModuleType, rounds: int, updates: int) -> dict[str, float]:
    logging.getLogger("aitbc.progress").propagate = False  # the final line of each run goes nowhere
    terminal = {
        "hand-written bar": updating(lambda: old.Progress("verify", stream=Terminal()), updates),
        "tqdm bar (node.progress)": updating(lambda: progress.Progress("verify", stream=Terminal()), updates),
    }
    try:
        terminal["rich.progress (reference)"] = rich_updating(updates)
    except ImportError:
        pass
    bars = fastest(terminal, rounds)
    report("Progress updates on a terminal:", bars, "updates")
    lines = fastest(
        {
            "hand-written (log lines)": updating(lambda: old.Progress("verify", stream=io.StringIO()), updates),
            "node.progress (log lines)": updating(lambda: progress.Progress("verify", stream=io.StringIO()), updates),
        },
        rounds,
    )
    report("Progress updates off a terminal (log lines every few seconds):", lines, "updates")
    return bars


def verify_update_rate(jobs: int) -> tuple[int, float]:
    """Blocks and progress updates/s of verify_store over a chain of one-transaction blocks."""
    from bench.bench_sync import build_chain
    from node.datadir import DataDir
    from node.store import Store
    from node.verify import verify_store

    work = Path(tempfile.mkdtemp(prefix="aitbc-bench-progress-"))
    try:
        build_chain(work / "data", jobs, block_txs=1)
        datadir = DataDir(work / "data")
        store = Store(datadir.chain_path, datadir.genesis(), create=False)
        calls = 0

        def count(done: int, total: int) -> None:
            nonlocal calls
            calls += 1

        try:
            started = time.perf_counter()
            verify_store(store, count)
            return calls, calls / (time.perf_counter() - started)
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench logs_and_progress", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per candidate (the fastest counts)")
    parser.add_argument("--records", type=int, default=20_000, help="log records formatted per round")
    parser.add_argument("--updates", type=int, default=200_000, help="progress updates per round")
    parser.add_argument("--jobs", type=int, default=500, help="jobs in the verified chain (3 blocks each)")
    args = parser.parse_args(argv)

    try:
        old_logging = baseline_module("node/logging_setup.py")
        old_progress = baseline_module("node/progress.py")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot read the baseline from git at {BASELINE}: {exc}", file=sys.stderr)
        return 1
    bench_json(old_logging, args.rounds, args.records)
    bars = bench_progress(old_progress, args.rounds, args.updates)
    blocks, rate = verify_update_rate(args.jobs)
    print(f"aitbc-node verify, {blocks} one-transaction blocks: {rate:,.0f} progress updates/s")
    for name, bar_rate in bars.items():
        print(f"  {name:<34} {100 * rate / bar_rate:>6.2f}% of verify's time spent in its updates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
