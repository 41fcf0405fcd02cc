"""The node's clock: Unix milliseconds, the one reading of wall time outside tests' fakes
(block and transaction times, lease decisions, lag). chain/ never reads it."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Unix milliseconds; tests pass a fake."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000
