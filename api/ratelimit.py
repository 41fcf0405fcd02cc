"""Token buckets: `rate` requests per second sustained, bursts up to `burst`, per API key (the
account) or, for requests that are not authenticated, per client address."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from api.errors import ApiError


class RateLimiter:
    MAX_BUCKETS = 65_536
    """Past this many buckets the full ones (no request for burst/rate seconds) are dropped,
    and if that is not enough, all: a client cycling through addresses cannot grow the table."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, what: str = "this key"
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.what = what
        """What a bucket belongs to, for the 429's detail."""
        self._buckets: dict[str, tuple[float, float]] = {}  # account or address -> (tokens, updated)

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
                f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded for {self.what}; "
                f"retry in {retry} s",
                "rate_limited",
                headers={"Retry-After": str(retry)},
            )
        if account not in self._buckets and len(self._buckets) >= self.MAX_BUCKETS:
            self._prune(now)
        self._buckets[account] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        refilled = now - self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if v[1] > refilled}
        if len(self._buckets) >= self.MAX_BUCKETS:
            self._buckets.clear()
