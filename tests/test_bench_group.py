"""bench.load's group report: the ratio to the single node per worker count, and capacity (each
setup at the worker count where it carried most in its round) against the target."""

from __future__ import annotations

import pytest

from bench.load import SINGLE, SPREAD, TO_SEQUENCER, GroupPass, report_group


def made(setup: str, workers: int, rate: float) -> GroupPass:
    """A pass of one second that carried `rate` lifecycles."""
    nan = float("nan")
    return GroupPass(setup, workers, [0.1] * int(rate), 1.0, 0, 0, 0, 1, nan, nan, 0.0, *[nan] * 6)


def rounds(*figures: dict[tuple[str, int], float]) -> list[GroupPass]:
    return [made(setup, n, rate) for by in figures for (setup, n), rate in by.items()]


def test_capacity_compares_each_setups_best_worker_count_round_by_round(capsys: pytest.CaptureFixture[str]) -> None:
    # Round 1: the single node carries most at 64 workers, the group at 128: 800 against 1000.
    # Round 2: both carry most at 128: 720 against 900.
    passes = rounds(
        {(SINGLE, 64): 1000, (TO_SEQUENCER, 64): 600, (SPREAD, 64): 300,
         (SINGLE, 128): 950, (TO_SEQUENCER, 128): 800, (SPREAD, 128): 400},
        {(SINGLE, 64): 850, (TO_SEQUENCER, 64): 500, (SPREAD, 64): 200,
         (SINGLE, 128): 900, (TO_SEQUENCER, 128): 720, (SPREAD, 128): 250},
    )  # fmt: skip
    report_group(passes, (64, 128))
    out = capsys.readouterr().out
    assert "group, to the sequencer, 64 workers      median    550.0 lifecycles/s, 0.59 x the single node " in out
    assert "(rounds: 0.60, 0.59)" in out
    capacity = out.split("capacity")[1]
    assert "group, to the sequencer                  median    760.0 lifecycles/s, 0.80 x the single node" in capacity
    assert "(rounds: 0.80, 0.80); target >= 0.7: met" in capacity
    assert "(rounds: 0.40, 0.28)" in capacity  # spread: 400 of 1000, 250 of 900


def test_the_target_is_not_met_when_the_groups_best_is_below_it(capsys: pytest.CaptureFixture[str]) -> None:
    passes = rounds({(SINGLE, 64): 1000, (TO_SEQUENCER, 64): 650, (SPREAD, 64): 300})
    report_group(passes, (64,))
    assert "0.65 x the single node (rounds: 0.65); target >= 0.7: not met" in capsys.readouterr().out
