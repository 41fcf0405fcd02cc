"""How times are shown: ISO 8601 UTC with milliseconds, exact for any Unix millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from node.ledger.views import iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=253402300799999))
def test_iso_is_the_exact_utc_time_with_milliseconds(ms: int) -> None:
    moment = EPOCH + timedelta(milliseconds=ms)
    assert iso(ms) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_iso_known_values() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1764300001234) == "2025-11-28T03:20:01.234Z"
    assert iso(253402300799999) == "9999-12-31T23:59:59.999Z"
