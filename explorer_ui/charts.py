"""Bar charts as plain geometry for the templates to draw as SVG (no JavaScript needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

WIDTH = 600
HEIGHT = 150
PAD_TOP = 8
PAD_BOTTOM = 20
PAD_LEFT = 34


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    """Class naming the series (the stylesheet colours it, in light and dark mode)."""
    title: str
    """Tooltip text."""


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    """(y, label) of the horizontal grid lines."""
    labels: list[tuple[float, str]]
    """(x, label) along the bottom."""
    legend: list[tuple[str, str]] = field(default_factory=list)
    """(css class, series name)."""
    width: int = WIDTH
    height: int = HEIGHT
    empty: bool = False


def _nice_max(value: int) -> int:
    """A round axis maximum at or above value."""
    if value <= 4:
        return 4
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step * 4 >= value:
                return m * step * 4
        step *= 10


def bar_chart(
    title: str,
    columns: list[tuple[str, list[tuple[str, int, str]]]],
    *,
    label_every: int = 10,
    legend: list[tuple[str, str]] | None = None,
) -> Chart:
    """columns: (x label, [(css class, value, tooltip), ...]); each column's bars side by side."""
    top = _nice_max(max((v for _, series in columns for _, v, _ in series), default=0))
    plot_w = WIDTH - PAD_LEFT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(columns), 1)
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for i, (label, series) in enumerate(columns):
        inner = slot * 0.8 / max(len(series), 1)
        for j, (css, value, tip) in enumerate(series):
            h = plot_h * value / top
            x = PAD_LEFT + i * slot + slot * 0.1 + j * inner
            bars.append(Bar(round(x, 2), round(PAD_TOP + plot_h - h, 2), round(inner, 2), round(h, 2), css, tip))
        if label and i % label_every == 0:
            labels.append((round(PAD_LEFT + i * slot + slot / 2, 2), label))
    ticks = [(round(PAD_TOP + plot_h - plot_h * k / 4, 2), str(top * k // 4)) for k in range(5)]
    empty = all(v == 0 for _, series in columns for _, v, _ in series)
    return Chart(title, bars, ticks, labels, legend or [], empty=empty)


class MinuteTally(TypedDict):
    """What the activity chart shows of a minute (node.ledger.explorer.MinuteActivity has more)."""

    minute: str
    """ISO 8601 UTC, as node.ledger.views.iso writes it."""
    jobs: int
    receipts: int


def activity_chart(last_hour: Sequence[MinuteTally]) -> Chart:
    """Jobs submitted and receipts issued in each minute of the last hour."""
    columns = []
    for i, m in enumerate(last_hour):
        minute = m["minute"][11:16]
        ago = len(last_hour) - 1 - i
        label = "now" if ago == 0 else f"-{ago}m"
        jobs, receipts = m["jobs"], m["receipts"]
        columns.append(
            (
                label if ago % 15 == 0 else "",
                [
                    ("s-jobs", jobs, f"{minute} UTC: {jobs} jobs submitted"),
                    ("s-receipts", receipts, f"{minute} UTC: {receipts} receipts"),
                ],
            )
        )
    return bar_chart(
        "Jobs and receipts per minute, last hour",
        columns,
        label_every=1,
        legend=[("s-jobs", "jobs"), ("s-receipts", "receipts")],
    )


def block_size_chart(recent: list[dict[str, int]]) -> Chart:
    """Transactions in each of the latest blocks."""
    padding: list[tuple[str, list[tuple[str, int, str]]]] = [("", [])] * max(0, 60 - len(recent))
    columns = padding + [
        (
            f"#{b['height']}" if (b["height"] % 10 == 0) else "",
            [("s-blocks", b["transactions"], f"block {b['height']}: {b['transactions']} transactions")],
        )
        for b in recent
    ]
    return bar_chart(
        "Block sizes (transactions), latest blocks", columns, label_every=1, legend=[("s-blocks", "transactions")]
    )


class PeriodTally(TypedDict):
    """What the activity chart shows of a period (node.ledger.standings.Period has more)."""

    start: str
    """ISO 8601 UTC."""
    hours: int
    jobs: int
    receipts: int


def period_chart(periods: Sequence[PeriodTally], title: str) -> Chart:
    """Jobs submitted and receipts issued in each period (hours or groups of hours), oldest first."""
    columns = []
    every = max(len(periods) // 6, 1)
    for i, p in enumerate(periods):
        ago = len(periods) - 1 - i
        start = f"{p['start'][5:10]} {p['start'][11:16]}" if p["hours"] > 1 or ago > 23 else p["start"][11:16]
        label = "now" if ago == 0 else f"-{ago * p['hours']}h"
        jobs, receipts = p["jobs"], p["receipts"]
        columns.append(
            (
                label if ago % every == 0 else "",
                [
                    ("s-jobs", jobs, f"from {start} UTC ({p['hours']} h): {jobs} jobs submitted"),
                    ("s-receipts", receipts, f"from {start} UTC ({p['hours']} h): {receipts} receipts"),
                ],
            )
        )
    return bar_chart(title, columns, label_every=1, legend=[("s-jobs", "jobs"), ("s-receipts", "receipts")])
