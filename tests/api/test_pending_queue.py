"""Which pending job a miner gets: the oldest one whose model it serves, however many models it
serves and however many other jobs wait ahead of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import queries
from chain.transactions import Transaction
from node.producer import seal_now
from node.store import Store
from tests.chain.devchain import AUTHORITY, T0, key_hash, make_genesis

MODELS = ["m0", "m1", "m2", "m3", "m4"]
GENESIS = make_genesis(params={
    "max_block_txs": 500, "lease_seconds": 60, "max_attempts": 2,
    "prices": {m: {"tokens": "0.000001"} for m in MODELS},
})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "chain", GENESIS)
    try:
        seal_now(s, AUTHORITY, [Transaction("account.create", {"name": "c", "role": "client", "key_hash": key_hash("c")}, T0)], clock=lambda: T0)
        yield s
    finally:
        s.close()


def submit(store: Store, models: list[str]) -> list[str]:
    at = store.tip().timestamp + 1
    ids = [f"job-{store.tip().height}-{i}" for i in range(len(models))]
    txs = [Transaction("job.submit", {"job_id": j, "client": "c", "prompt": "p", "model": m, "params": {}}, at) for j, m in zip(ids, models, strict=True)]
    outcomes, block = seal_now(store, AUTHORITY, txs, clock=lambda: at)
    assert block is not None and all(isinstance(o, dict) for o in outcomes), outcomes
    return ids


def oldest(store: Store, models: list[str]) -> Any:
    job = queries.oldest_pending_for_models(store, models)
    return None if job is None else job["job_id"]


@pytest.mark.parametrize("served", [["m4"], ["m3", "m4"], ["m2", "m3", "m4"], MODELS[1:]])
def test_the_oldest_job_of_a_served_model_wins_even_behind_many_others(store: Store, served: list[str]) -> None:
    submit(store, ["m0"] * (queries.PENDING_WALK * 2))  # more than one walk of jobs nobody here serves
    first = submit(store, ["m4", "m3", "m2", "m1"])
    assert oldest(store, served) == first[["m4", "m3", "m2", "m1"].index(next(m for m in ["m4", "m3", "m2", "m1"] if m in served))]


def test_a_served_job_within_the_walk_is_found_and_none_is_none(store: Store) -> None:
    assert oldest(store, MODELS) is None
    ids = submit(store, ["m0", "m1", "m2"])
    assert oldest(store, ["m1", "m2", "m3"]) == ids[1]
    assert oldest(store, ["m4", "m3", "m2"]) == ids[2]
    assert oldest(store, ["m3", "m4", "m9"]) is None
