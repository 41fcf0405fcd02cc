"""bench.syncs: the group-commit count tells the write-ahead log's syncs from LevelDB's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.syncs import start_sync_counter, stop_sync_counter

# strace -f -y output: one thread's call may be split around another's.
TRACE = """\
4101 fdatasync(7</tmp/n/data/chain/000005.log>) = 0
4102 fsync(9</tmp/n/data/chain/000007.ldb> <unfinished ...>
4101 fdatasync(7</tmp/n/data/chain/000005.log>) = 0
4102 <... fsync resumed>) = 0
4102 fsync(3</tmp/n/data/chain/MANIFEST-000004>) = 0
4102 fsync(4</tmp/n/data/chain>) = 0
4101 fdatasync(11</tmp/n/data/chain/000008.log>) = 0
"""


def test_syncs_are_counted_by_the_file_they_synced(tmp_path: Path) -> None:
    out = tmp_path / "trace"
    out.write_text(TRACE)
    # a stand-in for strace: stop_sync_counter interrupts it and waits for it
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_sync_counter((proc, out)) == (3, 3)
    assert proc.returncode is not None
    assert not out.exists()


def test_no_strace_no_count() -> None:
    assert stop_sync_counter(None) is None


def test_a_tracer_that_cannot_attach_counts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "strace" here is a script that exits at once, as strace does when ptrace is refused
    fake = tmp_path / "strace"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert start_sync_counter(child.pid) is None
    finally:
        child.kill()
        child.wait()
