"""bench.procstat: where a server's core went, thread by thread, from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.procstat import COMPACTION_THREAD, cpu_seconds, descendants, thread_cpu, thread_shares, tree_cpu_seconds
from node.store import COMPACTION_THREAD_NAME


def test_the_bench_looks_for_the_name_the_node_gives_its_compaction_thread() -> None:
    assert COMPACTION_THREAD == COMPACTION_THREAD_NAME


def test_thread_cpu_lists_each_thread_by_id_with_its_name_and_cpu_time() -> None:
    named = threading.Event()
    done = threading.Event()
    tid: list[int] = []

    def worker() -> None:
        tid.append(threading.get_native_id())
        Path(f"/proc/self/task/{tid[0]}/comm").write_text("probe-thread")
        named.set()
        done.wait(timeout=30)

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert named.wait(timeout=30)
        threads = thread_cpu(os.getpid())
    finally:
        done.set()
        t.join()
    assert threads[tid[0]][0] == "probe-thread"
    assert os.getpid() in threads  # the main thread's id is the process id
    total = sum(cpu for _, cpu in threads.values())
    assert all(cpu >= 0 for _, cpu in threads.values()) and 0 < total <= cpu_seconds(os.getpid()) + 0.05


def test_thread_shares_sorts_threads_into_event_loop_compaction_and_the_rest() -> None:
    before = {100: ("aitbc-node", 10.0), 101: (COMPACTION_THREAD, 1.0), 102: ("python", 2.0)}
    after = {
        100: ("aitbc-node", 11.5),  # the main thread: 1.5 s
        101: (COMPACTION_THREAD, 1.2),  # 0.2 s
        102: ("python", 2.1),  # 0.1 s
        103: ("python", 0.2),  # started in between: all of its 0.2 s
        104: ("python", float("nan")),  # unreadable: not counted
    }
    shares = thread_shares(100, before, after, elapsed=2.0)
    assert shares == pytest.approx({"event loop": 0.75, "LevelDB compaction": 0.1, "other threads": 0.15})
    assert thread_shares(100, before, {}, elapsed=2.0) == {
        "event loop": 0.0,
        "LevelDB compaction": 0.0,
        "other threads": 0.0,
    }


def test_tree_cpu_counts_the_processes_a_process_started() -> None:
    """A child that has burnt 0.3 s of CPU and waits: it is among this process's descendants, and
    its CPU counts towards this process's tree."""
    burn = (
        "import sys, time\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert child.pid in descendants(os.getpid())
        assert tree_cpu_seconds(os.getpid()) >= cpu_seconds(os.getpid()) + 0.25
    finally:
        child.communicate(timeout=30)  # closes its stdin (it exits) and its stdout
    assert child.pid not in descendants(os.getpid())
