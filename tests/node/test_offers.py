"""node.offers: a pending job shown to one miner is held for it, so concurrent pollers spread."""

from __future__ import annotations

import asyncio

from node.offers import Offers


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def pending(*job_ids: str) -> set[str]:
    return set(job_ids)


def test_concurrent_pollers_are_shown_different_jobs_oldest_first() -> None:
    offers = Offers(2000, Clock())
    queue = ["j1", "j2", "j3"]
    fits = pending(*queue).__contains__
    assert [offers.offer(m, queue, fits) for m in ("a", "b", "c", "d")] == ["j1", "j2", "j3", None]
    assert offers.holder("j2") == "b" and len(offers) == 3


def test_a_miner_polling_again_in_its_window_gets_its_own_offer_back() -> None:
    clock = Clock()
    offers = Offers(2000, clock)
    queue = ["j1", "j2"]
    assert offers.offer("a", queue, pending(*queue).__contains__) == "j1"
    clock.now += 1999
    assert offers.offer("a", queue, pending(*queue).__contains__) == "j1"
    assert offers.offer("b", queue, pending(*queue).__contains__) == "j2"


def test_an_offer_lapses_after_the_window_and_goes_to_another_miner() -> None:
    clock = Clock()
    offers = Offers(2000, clock)
    queue = ["j1"]
    assert offers.offer("a", queue, pending("j1").__contains__) == "j1"
    assert offers.offer("b", queue, pending("j1").__contains__) is None
    clock.now += 2000  # polling again does not extend a's window
    assert offers.offer("b", queue, pending("j1").__contains__) == "j1"
    assert offers.holder("j1") == "b"


def test_a_miner_holds_at_most_one_offer_and_a_taken_job_frees_it() -> None:
    offers = Offers(2000, Clock())
    queue = ["j1", "j2", "j3"]
    assert offers.offer("a", queue, pending(*queue).__contains__) == "j1"
    # j1 was claimed (no longer fits): a is shown the next job, and holds only that one.
    assert offers.offer("a", ["j2", "j3"], pending("j2", "j3").__contains__) == "j2"
    assert offers.holder("j1") is None and len(offers) == 1
    offers.release("a")
    assert offers.holder("j2") is None and offers.offer("b", ["j2", "j3"], pending("j2").__contains__) == "j2"


def test_a_wait_ends_on_notify_on_an_offer_lapsing_or_on_close() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        offers = Offers(50, lambda: int(loop.time() * 1000))
        waiting = asyncio.create_task(offers.wait(30))
        await asyncio.sleep(0)
        offers.notify()
        await asyncio.wait_for(waiting, 5)  # ended by notify, long before its 30 s

        offers.offer("a", ["j1"], lambda _: True)
        await asyncio.wait_for(offers.wait(30), 5)  # ended by a's offer lapsing after 50 ms
        assert offers.holder("j1") is None

        waiting = asyncio.create_task(offers.wait(30))
        await asyncio.sleep(0)
        offers.close()
        await asyncio.wait_for(waiting, 5)
        await asyncio.wait_for(offers.wait(30), 5)  # closed: returns at once

    asyncio.run(scenario())
