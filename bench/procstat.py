"""CPU time of a process and of each of its threads, from /proc (Linux); without the bench's own
dependencies, so the tests can import it."""

from __future__ import annotations

import math
import os
from pathlib import Path

from node.store import COMPACTION_THREAD_NAME

COMPACTION_THREAD = COMPACTION_THREAD_NAME
"""The name the node gives LevelDB's compaction thread, which the shares are reported under."""


def _stat_cpu(stat_path: str) -> float:
    """User plus system CPU seconds from a /proc stat file (nan where it cannot be read)."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all threads (nan where /proc is missing)."""
    return _stat_cpu(f"/proc/{pid}/stat")


def _thread_files(pid: int, name: str) -> list[tuple[int, str]] | None:
    """(thread id, text of /proc/<pid>/task/<tid>/<name>) for each live thread of a process;
    None where /proc is missing. A thread that ends while it is read is left out."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found = []
    for tid in tids:
        try:
            found.append((int(tid), Path(f"/proc/{pid}/task/{tid}/{name}").read_text()))
        except OSError:
            continue
    return found


def runnable_wait_seconds(pid: int) -> float:
    """Seconds a process's threads have spent runnable but waiting for a CPU, summed over its live
    threads (/proc/<pid>/task/<tid>/schedstat: run time, wait time, timeslices); nan where /proc
    is missing. Over a run's wall time: near 0, the process got a CPU whenever it wanted one."""
    stats = _thread_files(pid, "schedstat")
    if stats is None:
        return float("nan")
    return sum(int(text.split()[1]) for _, text in stats if len(text.split()) > 1) / 1e9


def descendants(pid: int) -> list[int]:
    """The live processes a process started, and theirs (a node's signature-check helper)."""
    found: list[int] = []
    for _, children in _thread_files(pid, "children") or []:
        for child in map(int, children.split()):
            found += [child, *descendants(child)]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of the live processes it started (a helper counts towards its
    node); nan where /proc is missing."""
    return cpu_seconds(pid) + sum(c for c in map(cpu_seconds, descendants(pid)) if not math.isnan(c))


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of a process: its name and CPU seconds so far (empty where /proc is missing)."""
    return {
        tid: (name.strip(), _stat_cpu(f"/proc/{pid}/task/{tid}/stat")) for tid, name in _thread_files(pid, "comm") or []
    }


def thread_shares(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], elapsed: float
) -> dict[str, float]:
    """The share of one core each kind of server thread used between two thread_cpu readings:
    the main thread (the event loop), LevelDB's compaction, and the rest (the block writer and
    other helpers). A thread that ended in between is not counted."""
    shares = {"event loop": 0.0, "LevelDB compaction": 0.0, "other threads": 0.0}
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if not math.isnan(used):
            kind = (
                "event loop" if tid == pid else "LevelDB compaction" if name == COMPACTION_THREAD else "other threads"
            )
            shares[kind] += used / elapsed
    return shares
