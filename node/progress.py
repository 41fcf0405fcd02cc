"""Progress on long work (verify, reindex, restore, a follower's catch-up).

On a terminal: a bar redrawn in place, with blocks done out of the total, the rate and the
time left. Otherwise (a pipe, journald, or JSON logs): a log line every few seconds, plus
one at the end, through the `aitbc.progress` logger so that the
configured log format applies.

    with Progress("verify", total=tip) as progress:
        for height in ...:
            progress.update(height)          # or progress.update(done, new_total)

`Progress.callback` has the (done, total) signature of verify_store's progress argument.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO

log = logging.getLogger("aitbc.progress")

BAR_WIDTH = 30
REDRAW_S = 0.1
LINE_INTERVAL_S = 5.0


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    def __init__(
        self,
        label: str,
        total: int = 0,
        *,
        unit: str = "blocks",
        stream: IO[str] | None = None,
        tty: bool | None = None,
        interval_s: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval_s = interval_s
        self.clock = clock
        self.enabled = enabled
        self._start = clock()
        self._start_done = 0
        # On a terminal the bar appears at once; lines come only once an interval has passed,
        # so short work writes just its final line (and a failure writes none).
        self._last_draw = float("-inf") if tty else self._start
        self._started = False
        self._closed = False

    # -- figures -------------------------------------------------------------------------
    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = self.clock() - self._start
        return (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        if rate <= 0 or self.total <= self.done:
            return None if self.total > self.done else 0.0
        return (self.total - self.done) / rate

    def describe(self) -> str:
        total = max(self.total, self.done)
        pct = f" ({100 * self.done / total:.1f}%)" if total else ""
        eta = self.eta()
        eta_text = "?" if eta is None else format_duration(eta)
        return f"{self.label}: {self.done}/{total} {self.unit}{pct}, {self.rate():.1f} {self.unit}/s, ETA {eta_text}"

    # -- updates -------------------------------------------------------------------------
    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled or self._closed:
            return
        now = self.clock()
        self._started = True
        if now - self._last_draw >= (REDRAW_S if self.tty else self.interval_s):
            self._emit(now)

    def callback(self, done: int, total: int) -> None:
        self.update(done, total)

    def close(self, failed: bool = False) -> None:
        """Write the final figures; after a failure only end the bar (the error says the rest)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled or not self._started:
            return
        if not failed:
            self._emit(self.clock(), final=True)
        elif self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(failed=exc_type is not None)

    def _emit(self, now: float, final: bool = False) -> None:
        self._last_draw = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self._bar() + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info(
                "%s",
                self.describe(),
                extra={
                    "progress": {
                        "task": self.label,
                        "done": self.done,
                        "total": max(self.total, self.done),
                        "rate": round(self.rate(), 3),
                        "eta_s": self.eta(),
                    },
                },
            )

    def _bar(self) -> str:
        total = max(self.total, self.done)
        frac = self.done / total if total else 1.0
        filled = int(frac * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = self.eta()
        return (
            f"{self.label} [{bar}] {self.done}/{total} {self.unit} {100 * frac:5.1f}%  "
            f"{self.rate():.1f}/s  ETA {'?' if eta is None else format_duration(eta)}"
        )
