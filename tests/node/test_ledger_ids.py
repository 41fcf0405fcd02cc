"""Job and receipt ids: random hex from os.urandom, drawn from a pool refilled a few KiB at a time."""

from __future__ import annotations

import re

from node.ledger.commands import RANDOM_POOL_BYTES, IdPool


def test_ids_are_hex_of_the_asked_length_and_do_not_repeat_across_pool_refills() -> None:
    ids = IdPool()
    drawn = [ids.random_hex(12) for _ in range(3 * RANDOM_POOL_BYTES // 12 + 5)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", d) for d in drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_request_larger_than_what_is_left_refills_the_pool() -> None:
    ids = IdPool()
    ids.pool = bytearray(b"\x00" * 3)
    assert ids.random_hex(12) != "00" * 12 and len(ids.pool) == RANDOM_POOL_BYTES - 12
