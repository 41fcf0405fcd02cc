"""Progress on long work (verify, reindex, restore, a follower's catch-up).

On a terminal: tqdm's bar redrawn in place, with blocks done out of the total, the rate and the
time left. Otherwise (a pipe, journald, or JSON logs): a log line every few seconds, plus
one at the end, through the `aitbc.progress` logger so that the
configured log format applies.

    with Progress("verify", total=tip) as progress:
        for height in ...:
            progress.update(height)          # or progress.update(done, new_total)

`Progress.callback` has the (done, total) signature of verify_store's progress argument.
Bench: `python -m bench logs_and_progress`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Never

from tqdm import tqdm

log = logging.getLogger("aitbc.progress")

BAR_WIDTH = 30
REDRAW_S = 0.1
LINE_INTERVAL_S = 5.0
# tqdm's fields, filled in at each redraw: "verify [#####-----] 50/100 blocks  50.0%  12.00 blocks/s  ETA 00:04"
BAR_FORMAT = (
    "{desc} [{bar:" + str(BAR_WIDTH) + "}] {n}/{total}{unit} {percentage:5.1f}%  {rate_noinv_fmt}  ETA {remaining}"
)


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


if TYPE_CHECKING:
    _Bar = tqdm[Never]  # tqdm is generic in what it iterates over only in its stubs; this bar iterates over nothing
else:
    _Bar = tqdm


class TerminalBar(_Bar):
    """tqdm's bar, redrawn only from update() and close(), reading time from the given clock."""

    monitor_interval = 0  # no monitor thread: nothing draws the bar between updates

    def __init__(self, label: str, done: int, total: int, unit: str, stream: IO[str], clock: Callable[[], float]):
        super().__init__(
            desc=label,
            total=total,
            initial=done,
            unit=" " + unit,
            file=stream,
            bar_format=BAR_FORMAT,
            ascii="-#",
            mininterval=REDRAW_S,
            smoothing=0,  # the rate is the average since the first update, as in the log lines
        )
        # tqdm reads its clock through _time (the hook its own tests use); set before any
        # figure is taken, so that a test's clock drives the rate and the time left.
        self._time = clock
        self.start_t = self.last_print_t = clock()


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
        # Lines come only once an interval has passed, so short work writes just its final
        # line (and a failure writes none). On a terminal the bar appears at the first update.
        self._last_line = self._start
        self._bar: TerminalBar | None = None
        self._started = False
        self._closed = False

    # -- figures -------------------------------------------------------------------------
    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = self.clock() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

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
        self._started = True
        bar = self._bar
        if bar is not None:
            if bar.total != self.total:
                bar.total = max(self.total, done)
            bar.update(done - bar.n)  # tqdm counts increments and decides when to redraw
        elif self.tty:
            self._bar = TerminalBar(self.label, done, max(self.total, done), self.unit, self.stream, self.clock)
        else:
            now = self.clock()
            if now - self._last_line >= self.interval_s:
                self._log_line(now)

    def callback(self, done: int, total: int) -> None:
        self.update(done, total)

    def close(self, failed: bool = False) -> None:
        """Write the final figures; after a failure only end the bar (the error says the rest)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()  # draws the last figures and ends the line
        elif self.enabled and self._started and not failed:
            self._log_line(self.clock())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(failed=exc_type is not None)

    def _log_line(self, now: float) -> None:
        self._last_line = now
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
