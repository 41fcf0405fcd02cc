"""Job and receipt ids: random hex from os.urandom, drawn from a pool refilled a few KiB at a time."""

from __future__ import annotations

import re

from api import jobs


def test_ids_are_hex_of_the_asked_length_and_do_not_repeat_across_pool_refills() -> None:
    drawn = [jobs.random_hex(12) for _ in range(3 * jobs._RANDOM_POOL_BYTES // 12 + 5)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", d) for d in drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_request_larger_than_what_is_left_refills_the_pool() -> None:
    jobs._random_pool = bytearray(b"\x00" * 3)
    assert jobs.random_hex(12) != "00" * 12 and len(jobs._random_pool) == jobs._RANDOM_POOL_BYTES - 12
