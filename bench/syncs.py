"""Counting a process's synced writes with strace, each attributed to the file it synced."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def start_sync_counter(pid: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """strace recording the node's fsync/fdatasync calls (all threads, each with the file it
    synced), once it is attached to every thread; None if strace is not installed or cannot
    attach (ptrace not permitted, say) within 10 s."""
    if shutil.which("strace") is None:
        return None
    out = Path(tempfile.mkstemp(prefix="aitbc-strace-")[1])
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _traced(pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            out.unlink()
            return None
        time.sleep(0.01)
    return proc, out


def _traced(pid: int) -> bool:
    """Whether every thread of pid has a tracer."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return all("\nTracerPid:\t0\n" not in (t / "status").read_text() for t in tasks)
    except OSError:
        return False


SYNCED_FILE = re.compile(r"\b(?:fsync|fdatasync)\(\d+<([^>]*)>")


def stop_sync_counter(tracer: tuple[subprocess.Popen[bytes], Path] | None) -> tuple[int, int] | None:
    """(syncs of LevelDB's write-ahead log, every other sync), counted since start_sync_counter.

    A block's batch is one synced append to the log (`*.log`); LevelDB's background work syncs
    the tables it writes and its MANIFEST, whenever a memtable is flushed or tables are compacted."""
    if tracer is None:
        return None
    proc, out = tracer
    proc.send_signal(2)
    proc.wait(timeout=30)
    log = other = 0
    for match in SYNCED_FILE.finditer(out.read_text()):
        if match.group(1).endswith(".log"):
            log += 1
        else:
            other += 1
    out.unlink()
    return log, other
