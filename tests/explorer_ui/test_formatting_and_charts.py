"""Page helpers: relative times, URL-safe ids, prices, and the server-drawn bar charts."""

from __future__ import annotations

from explorer_ui.charts import MinuteTally, activity_chart, bar_chart, block_size_chart
from explorer_ui.web import absolute_time, id_path, price, relative_time

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_relative_time_reads_like_a_person_in_both_directions() -> None:
    assert relative_time("2026-01-01T00:00:00.000Z", NOW_MS) == "just now"
    assert relative_time("2025-12-31T23:59:18.000Z", NOW_MS) == "42 s ago"
    assert relative_time("2025-12-31T23:55:00.000Z", NOW_MS) == "5 min ago"
    assert relative_time("2025-12-31T21:00:00.000Z", NOW_MS) == "3 h ago"
    assert relative_time("2025-12-29T00:00:00.000Z", NOW_MS) == "3 d ago"
    assert relative_time("2026-01-01T00:02:00.000Z", NOW_MS) == "in 2 min"
    assert relative_time(None, NOW_MS) == ""


def test_absolute_time_is_utc() -> None:
    assert absolute_time("2026-01-02T03:04:05.678Z") == "2026-01-02 03:04:05 UTC"


def test_ids_become_one_escaped_path_segment() -> None:
    assert id_path("gpu/1 #a?b") == "gpu%2F1%20%23a%3Fb"
    assert id_path("<script>") == "%3Cscript%3E"


def test_prices_show_without_trailing_zeros() -> None:
    assert price(0.00001) == "0.00001"
    assert price(1.5) == "1.5"
    assert price(0) == "0"


def test_bars_scale_to_a_round_axis_maximum() -> None:
    chart = bar_chart("t", [("a", [("s", 3, "three")]), ("b", [("s", 17, "seventeen")])])
    assert [label for _, label in chart.ticks] == ["0", "5", "10", "15", "20"]
    short, tall = chart.bars
    assert tall.height > short.height > 0
    assert tall.y + tall.height == short.y + short.height  # both stand on the axis
    assert not chart.empty


def test_an_idle_hour_is_an_empty_chart_of_60_minutes() -> None:
    minutes: list[MinuteTally] = [
        {"minute": f"2026-01-01T00:{i:02d}:00.000Z", "jobs": 0, "receipts": 0} for i in range(60)
    ]
    chart = activity_chart(minutes)
    assert chart.empty and len(chart.bars) == 120
    assert [label for _, label in chart.labels] == ["-45m", "-30m", "-15m", "now"]


def test_block_sizes_keep_their_width_when_the_chain_is_young() -> None:
    few = block_size_chart([{"height": 0, "transactions": 1}, {"height": 1, "transactions": 5}])
    many = block_size_chart([{"height": h, "transactions": 1} for h in range(60)])
    assert len(few.bars) == 2 and few.bars[0].width == many.bars[0].width
    assert few.bars[1].title == "block 1: 5 transactions"
