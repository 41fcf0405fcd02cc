"""Progress on long work: a bar on a terminal, periodic lines otherwise."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from node.progress import Progress, format_duration
from tests.support import run_cli


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_progress_is_logged_every_interval_with_rate_and_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="aitbc.progress")
    with Progress("verify", stream=io.StringIO(), tty=False, interval_s=5, clock=clock) as p:
        for done in range(1, 101):
            clock.now += 0.5  # 2 blocks per second
            p.update(done, 100)
    lines = [r.getMessage() for r in caplog.records if r.name == "aitbc.progress"]
    # One every 5 s of the 50 s, and one at the end.
    assert 10 <= len(lines) <= 12
    assert lines[0].startswith("verify: 10/100 blocks")
    assert lines[-1] == "verify: 100/100 blocks (100.0%), 2.0 blocks/s, ETA 0s"
    middle = next(line for line in lines if line.startswith("verify: 40/100"))
    assert "2.0 blocks/s" in middle and "ETA 30s" in middle
    assert caplog.records[-1].progress["done"] == 100  # type: ignore[attr-defined]  # set by the logging call's extra=


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place() -> None:
    clock = FakeClock()
    out = io.StringIO()
    with Progress("reindex", total=10, stream=out, tty=True, clock=clock) as p:
        for done in range(1, 11):
            clock.now += 1
            p.update(done)
    text = out.getvalue()
    assert text.count("\r") >= 10
    assert "[#########-----" in text and "3/10 blocks  30.0%   1.00 blocks/s  ETA 00:07" in text
    assert text.endswith("10/10 blocks 100.0%   1.00 blocks/s  ETA 00:00\n")


def test_short_work_writes_one_final_line_and_a_failure_none(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="aitbc.progress")
    with Progress("verify", stream=io.StringIO(), tty=False, clock=clock) as p:
        p.update(1, 3)
        p.update(3, 3)
    assert [r.getMessage() for r in caplog.records] == ["verify: 3/3 blocks (100.0%), 0.0 blocks/s, ETA 0s"]
    caplog.clear()
    with pytest.raises(RuntimeError), Progress("verify", stream=io.StringIO(), tty=False, clock=clock) as p:
        p.update(1, 3)
        raise RuntimeError("block 2: bad")
    assert caplog.records == []


def test_a_growing_total_is_followed() -> None:
    clock = FakeClock()
    p = Progress("catch-up", total=10, stream=io.StringIO(), tty=False, clock=clock)
    clock.now += 1
    p.update(5, 20)
    assert p.describe() == "catch-up: 5/20 blocks (25.0%), 5.0 blocks/s, ETA 3s"
    p.close()


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (0, 59, 61, 3599, 3600 * 2 + 60 * 5)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "2h05m",
    ]


def test_disabled_progress_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="aitbc.progress")
    with Progress("verify", stream=out, tty=True, enabled=False) as p:
        p.update(1, 2)
    assert out.getvalue() == "" and caplog.records == []


def test_verify_without_a_terminal_prints_progress_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli("init", "--data-dir", str(data)).returncode == 0
    for name in ("a", "b", "c"):
        assert run_cli("keys", "create", "--role", "client", "--name", name, "--data-dir", str(data)).returncode == 0
    result = run_cli("verify", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "verify: 3/3 blocks (100.0%)" in result.stderr
    assert result.stdout.startswith("ok: 4 blocks")
    as_json = run_cli("verify", "--data-dir", str(data), "--log-format", "json")
    import json

    records = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert records[-1]["progress"]["done"] == 3 and records[-1]["logger"] == "aitbc.progress"
    quiet = run_cli("verify", "--data-dir", str(data), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_on_a_terminal_the_bar_is_redrawn_at_most_ten_times_a_second() -> None:
    clock = FakeClock()
    out = io.StringIO()
    with Progress("verify", total=1000, stream=out, tty=True, clock=clock) as p:
        for done in range(1, 1001):
            clock.now += 0.001
            p.update(done)
    # The first draw, one per 0.1 s of the second, and the final one.
    assert 10 <= out.getvalue().count("\r") <= 13
    assert out.getvalue().endswith("1000/1000 blocks 100.0%  1000.00 blocks/s  ETA 00:00\n")


def test_on_a_terminal_the_rate_counts_from_the_first_update_and_follows_the_total() -> None:
    clock = FakeClock()
    out = io.StringIO()
    p = Progress("catch-up", total=60_000, stream=out, tty=True, clock=clock)
    clock.now += 10  # the first batch is on its way
    p.update(50_000, 60_000)  # a follower resuming at height 50,000
    clock.now += 1
    p.update(50_500, 61_000)
    p.close()
    last = out.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert "50500/61000 blocks" in last and "500.00 blocks/s" in last and "ETA 00:21" in last


def test_on_a_terminal_a_failure_ends_the_bar_where_it_stopped_and_an_early_one_draws_nothing() -> None:
    clock = FakeClock()
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress("verify", total=5, stream=out, tty=True, clock=clock) as p:
        p.update(1)
        clock.now += 1
        p.update(2)
        raise RuntimeError("block 3: bad")
    assert out.getvalue().endswith("2/5 blocks  40.0%   1.00 blocks/s  ETA 00:03\n")
    early = io.StringIO()
    with pytest.raises(RuntimeError), Progress("verify", total=5, stream=early, tty=True, clock=clock):
        raise RuntimeError("cannot open the store")
    assert early.getvalue() == ""
