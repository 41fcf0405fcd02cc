"""bench.load's group report: the group's ratio to the single node of the same round, for each
worker count, and the target judged at the largest count."""

from __future__ import annotations

import pytest

from bench.load import SINGLE, SPREAD, TO_SEQUENCER, GroupPass, report_group


def made(setup: str, workers: int, rate: float) -> GroupPass:
    """A pass of one second that carried `rate` lifecycles."""
    nan = float("nan")
    return GroupPass(setup, workers, [0.1] * int(rate), 1.0, 0, 0, 0, 1, nan, nan, 0.0, *[nan] * 6)


def rounds(*figures: dict[tuple[str, int], float]) -> list[GroupPass]:
    return [made(setup, n, rate) for by in figures for (setup, n), rate in by.items()]


def test_each_worker_count_is_compared_round_by_round_and_the_largest_is_judged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    passes = rounds(
        {(SINGLE, 64): 1000, (TO_SEQUENCER, 64): 600, (SPREAD, 64): 300,
         (SINGLE, 128): 950, (TO_SEQUENCER, 128): 760, (SPREAD, 128): 380},
        {(SINGLE, 64): 850, (TO_SEQUENCER, 64): 500, (SPREAD, 64): 200,
         (SINGLE, 128): 900, (TO_SEQUENCER, 128): 720, (SPREAD, 128): 270},
    )  # fmt: skip
    report_group(passes, (64, 128))
    lines = capsys.readouterr().out.splitlines()
    at64 = next(line for line in lines if line.startswith("group, to the sequencer, 64 workers "))
    assert "median    550.0 lifecycles/s, 0.59 x the single node (rounds: 0.60, 0.59)" in at64
    assert "target" not in at64  # judged only where both carry all they can
    at128 = next(line for line in lines if line.startswith("group, to the sequencer, 128 workers "))
    assert "median    740.0 lifecycles/s, 0.80 x the single node (rounds: 0.80, 0.80); target >= 0.7: met" in at128
    spread = next(line for line in lines if line.startswith("group, spread over members, 128 workers "))
    assert "(rounds: 0.40, 0.30)" in spread and "target" not in spread


def test_the_target_is_not_met_when_the_groups_ratio_is_below_it(capsys: pytest.CaptureFixture[str]) -> None:
    report_group(rounds({(SINGLE, 64): 1000, (TO_SEQUENCER, 64): 650, (SPREAD, 64): 300}), (64,))
    assert "0.65 x the single node (rounds: 0.65); target >= 0.7: not met" in capsys.readouterr().out
