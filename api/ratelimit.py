"""A token bucket per API key: `rate` requests per second sustained, bursts up to `burst`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from api.errors import ApiError


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # account -> (tokens, updated)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, account: str) -> None:
        """Spend one token of this account's bucket, or raise 429 saying when to retry."""
        if not self.enabled:
            return
        now = self.clock()
        tokens, updated = self._buckets.get(account, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
        if tokens < 1.0:
            self._buckets[account] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise ApiError(
                429,
                f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded for this key; "
                f"retry in {retry} s",
                "rate_limited",
                headers={"Retry-After": str(retry)},
            )
        self._buckets[account] = (tokens - 1.0, now)
