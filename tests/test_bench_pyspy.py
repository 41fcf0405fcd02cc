"""bench.pyspy: py-spy's samples of the node summed by layer (bench load --profile), and what an
operator reads when py-spy is missing or cannot trace the server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import pyspy
from bench.__main__ import available
from bench.pyspy import OTHER, Recording, report, summarise

ROOT = Path(__file__).resolve().parent.parent

LOOP = "thread (101): MainThread;_run_module_as_main (<frozen runpy>:198);run (asyncio/runners.py:118)"
SAMPLES = textwrap.dedent(f"""\
    {LOOP};send (uvicorn/protocols/http/httptools_impl.py:561) 30
    {LOOP};__call__ (api/middleware.py:160);submit_job (api/jobs.py:76) 20
    {LOOP};_run (node/producer.py:162);apply_tx (chain/transition.py:45);canonical (chain/encoding.py:43) 25
    {LOOP};_run (node/producer.py:162);write (node/store.py:435) 5
    {LOOP};flush (node/framework_internals.py:80) 10
    {LOOP} 5
    {LOOP};parse (yaml/parser.py:10) 5
    thread (102): uvloop_0;_bootstrap (threading.py:1002);write_block (node/store.py:435) 7
    not a sample line
    """)


def test_each_sample_of_the_event_loop_counts_for_the_layer_of_its_innermost_frame() -> None:
    profile = summarise(SAMPLES)
    assert profile.main_samples == 100
    assert profile.layers["HTTP server (uvicorn, httptools, Starlette)"] == 40  # uvicorn, and the node's own protocol
    assert profile.layers["API handlers (api/)"] == 20
    assert profile.layers["chain/ (state transition, canonical JSON, hashes, signatures)"] == 25
    assert profile.layers["producer, store and the rest of node/"] == 5
    assert profile.layers["event loop, tasks and thread hand-offs"] == 5  # the loop between callbacks
    assert profile.layers[OTHER] == 5
    assert profile.functions.most_common(2) == [
        ("send (uvicorn/protocols/http/httptools_impl.py)", 30),
        ("canonical (chain/encoding.py)", 25),
    ]
    assert dict(profile.other_threads) == {"uvloop_0": 7}


def test_the_report_gives_every_layer_its_share_and_the_busiest_functions(tmp_path: Path) -> None:
    lines = report("[lifecycle]", summarise(SAMPLES), tmp_path / "lifecycle.txt", top=2)
    text = "\n".join(lines)
    assert "100 samples of the event loop's thread" in text and str(tmp_path / "lifecycle.txt") in text
    assert " 40.0%  HTTP server (uvicorn, httptools, Starlette)" in text
    assert "  5.0%  " + OTHER in text
    assert lines[-3:] == [
        "     30.0%  send (uvicorn/protocols/http/httptools_impl.py)",
        "     25.0%  canonical (chain/encoding.py)",
        "  samples of the other threads: uvloop_0 7",
    ]
    assert "no samples" in report("[stats]", summarise(""), tmp_path / "stats.txt")[0]


def test_without_py_spy_the_profile_is_skipped_with_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pyspy, "py_spy", lambda: None)
    recording = Recording(os.getpid(), 1, tmp_path / "x.txt", [])
    assert recording.finish() is None
    assert recording.error is not None and "pip install -e '.[bench]'" in recording.error


def test_a_py_spy_that_cannot_trace_the_server_is_reported_with_its_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "py-spy"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nprint('Permission denied (os error 1)', file=sys.stderr)\nsys.exit(1)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(pyspy, "py_spy", lambda: str(fake))
    recording = Recording(os.getpid(), 1, tmp_path / "out" / "x.txt", [])
    assert recording.finish() is None
    assert recording.error is not None
    assert "Permission denied (os error 1)" in recording.error and "ptrace_scope" in recording.error


def test_python_m_bench_lists_the_benchmarks_not_their_helpers() -> None:
    assert available() == ["abuse", "bench_sync", "ceiling", "load", "logs_and_progress", "scale"]
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0 and "abuse, bench_sync, ceiling, load, logs_and_progress, scale" in listed.stdout
    helper = subprocess.run(
        [sys.executable, "-m", "bench", "pyspy"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert helper.returncode == 2 and "no benchmark named 'pyspy'" in helper.stderr
