"""Offers: which pending job `GET /v1/jobs/available` shows which polling miner.

Shown the same oldest job, many miners serving one model would race to claim it: one wins and
the rest are refused. So a job shown to one miner is held for it for the offer window
(--offer-ms); other miners are shown the oldest fitting job nobody holds, or nothing.

Offers are soft. They live in the sequencer's memory only (a follower forwards `available`),
so losing them in a restart or a failover costs a little efficiency and never correctness:
the claim stays the one authoritative step, and a claim of a job offered to another miner
still succeeds if the job is pending.

A miner holds at most one offer. Polling again within its window gives it the same job back
while the job is still pending; the window is not extended, so a job a miner does not claim
goes to another once the window ends.

Long polls wait here too: `wait` returns once a block may have made a job pending (the
sequencer calls `notify`), an offer lapses, or the time is up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from node.clock import Clock, now_ms

DEFAULT_OFFER_MS = 2000
MAX_WAIT_S = 30.0
"""The longest a long poll (GET /v1/jobs/available, POST /v1/jobs/claim-next) may be held."""
MAKES_PENDING = frozenset(("job.submit", "job.requeue", "job.fail"))
"""Transaction types after which a job may be pending that was not before (a failed job with
attempts left goes back to the queue, as does an expired lease)."""


@dataclass(frozen=True)
class Offer:
    job_id: str
    miner_id: str
    expires_ms: int
    claimed: bool = False
    """Not an offer made to a poll: the miner's claim of the job is in a block not yet durable."""


class Offers:
    def __init__(self, window_ms: int = DEFAULT_OFFER_MS, clock: Clock = now_ms) -> None:
        self.window_ms = window_ms
        self.clock = clock
        self._by_miner: dict[str, Offer] = {}
        self._by_job: dict[str, Offer] = {}
        self._by_expiry: deque[Offer] = deque()
        """Every offer made, oldest first: with one window for all, also soonest to lapse first."""
        self._changed = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        self._lapse(self.clock())
        return len(self._by_job)

    def offer(self, miner_id: str, fitting: Iterable[str], still_fits: Callable[[str], bool]) -> str | None:
        """The job to show miner_id: its own offer while that job still fits (is pending), else
        the first of `fitting` (job ids, oldest first) that no other miner holds, which it then
        holds for the window; None if every fitting job is held."""
        now = self.clock()
        self._lapse(now)
        own = self._by_miner.get(miner_id)
        if own is not None:
            if still_fits(own.job_id):
                return own.job_id
            self._drop(own)
        for job_id in fitting:
            if job_id not in self._by_job:
                offer = Offer(job_id, miner_id, now + self.window_ms)
                self._by_miner[miner_id] = self._by_job[job_id] = offer
                self._by_expiry.append(offer)
                return job_id
        return None

    def claimed(self, job_id: str, miner_id: str) -> None:
        """miner_id's claim of job_id is in a block not yet durable: until the store shows the
        job running, it is held for that miner as if offered, so no poll offers it to another."""
        now = self.clock()
        self._lapse(now)
        for held in (self._by_miner.get(miner_id), self._by_job.get(job_id)):
            if held is not None:
                self._drop(held)
        offer = Offer(job_id, miner_id, now + self.window_ms, claimed=True)
        self._by_miner[miner_id] = self._by_job[job_id] = offer
        self._by_expiry.append(offer)

    def held_by_others(self, miner_id: str, fitting: Iterable[str]) -> list[str]:
        """The jobs of `fitting` (job ids, oldest first) on offer to miners other than miner_id,
        up to the first that is not: what a claim-next for miner_id should pass over
        (job.claim_next's `skip`). Jobs already claimed in a block not yet durable are stepped
        over without being named: the transition no longer finds them pending."""
        self._lapse(self.clock())
        ahead = []
        for job_id in fitting:
            offer = self._by_job.get(job_id)
            if offer is None or offer.miner_id == miner_id:
                break
            if not offer.claimed:
                ahead.append(job_id)
        return ahead

    def holder(self, job_id: str) -> str | None:
        """The miner holding an offer of job_id, if one does."""
        self._lapse(self.clock())
        offer = self._by_job.get(job_id)
        return None if offer is None else offer.miner_id

    def release(self, miner_id: str) -> None:
        """The miner claimed (or gave up) what it was offered: its offer ends now."""
        own = self._by_miner.get(miner_id)
        if own is not None:
            self._drop(own)

    def _drop(self, offer: Offer) -> None:
        if self._by_miner.get(offer.miner_id) is offer:
            del self._by_miner[offer.miner_id]
        if self._by_job.get(offer.job_id) is offer:
            del self._by_job[offer.job_id]

    def _lapse(self, now: int) -> None:
        queue = self._by_expiry
        while queue and queue[0].expires_ms <= now:
            self._drop(queue.popleft())

    def _next_lapse_ms(self) -> int | None:
        for offer in self._by_expiry:
            if self._by_job.get(offer.job_id) is offer:
                return offer.expires_ms
        return None

    # -- waiting ---------------------------------------------------------------------------
    def notify(self) -> None:
        """Jobs may have become pending: wake every waiting poll to look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """The sequencer stops: wake every waiting poll, and make later waits return at once."""
        self.closed = True
        self.notify()

    async def wait(self, timeout_s: float) -> None:
        """Until notify() or close(), the next offer lapses (its job may then go to the waiter),
        or timeout_s pass, whichever comes first."""
        if self.closed or timeout_s <= 0:
            return
        changed = self._changed
        lapse = self._next_lapse_ms()
        if lapse is not None:
            timeout_s = min(timeout_s, max(0.0, (lapse - self.clock()) / 1000) + 0.001)
        try:
            await asyncio.wait_for(changed.wait(), timeout_s)
        except TimeoutError:
            pass
