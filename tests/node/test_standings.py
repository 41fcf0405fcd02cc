"""The explorer's activity counters (node/store.py `D` keys) and what node.ledger.standings reads
from them: standings over days, a miner's receipts as CSV, hourly activity. The counters are
derived data beside the state: state and state roots stay as they were, and reindex rebuilds them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.errors import NotFound, ValidationError
from node.ledger import standings
from node.reindex import reindex_store
from node.store import ACTIVITY, META_ACTIVITY_FROM, Store
from node.verify import verify_store
from tests.chain.devchain import T0, Chain, job_chain


def _replay(chain: Chain, path: Path) -> Store:
    """A store holding the chain's blocks, each applied and written as a follower does."""
    from chain.transition import apply_block

    store = Store(path, chain.genesis)
    for block in chain.blocks[1:]:
        derived = apply_block(store, store.tip(), block, chain.genesis)
        store.write_block(block, derived.changes())
    return store


def _counters(store: Store) -> dict[bytes, bytes]:
    return dict(store._db.iterator(prefix=ACTIVITY))  # noqa: SLF001 - the raw counters, below the API


@pytest.fixture
def chain_store(tmp_path: Path) -> Iterator[tuple[Chain, Store]]:
    chain = job_chain()
    store = _replay(chain, tmp_path / "chain")
    yield chain, store
    store.close()


def test_standings_rank_the_miner_of_a_receipt_in_every_window(chain_store: tuple[Chain, Store]) -> None:
    chain, store = chain_store
    receipt = chain.blocks[-1].transactions[1].payload["receipt"]
    data = standings.standings_data(store, T0 + 10_000)
    assert data["counted_from_height"] == 0
    for name in ("24h", "7d", "30d"):
        window = data["windows"][name]
        assert window["miners"] == [{"rank": 1, "miner_id": "gpu-1", "receipts": 1, "units": receipt["units"]}]
        assert window["receipts"] == 1 and window["miner_count"] == 1
    # 25 hours later the receipt has left the 24 h window, not the 7 d one.
    later = standings.standings_data(store, T0 + 25 * 3_600_000)
    assert later["windows"]["24h"]["miners"] == []
    assert later["windows"]["7d"]["miners"][0]["miner_id"] == "gpu-1"
    with pytest.raises(ValidationError):
        standings.standings_data(store, T0, by="price")


def test_counters_are_not_state_and_reindex_rebuilds_them_exactly(chain_store: tuple[Chain, Store]) -> None:
    chain, store = chain_store
    assert dict(store.iter_all_state()) == chain.states[-1]  # the state is exactly the chain's
    assert store.tip().state_root == chain.tip.state_root
    before = _counters(store)
    assert before
    reindex_store(store)
    assert _counters(store) == before
    verify_store(store)


def test_a_store_older_than_the_counters_counts_from_its_next_block_until_reindexed(tmp_path: Path) -> None:
    chain = job_chain()
    store = _replay(chain, tmp_path / "chain")
    counted = _counters(store)
    with store._db.write_batch() as batch:  # noqa: SLF001 - make it look like a store from before the counters
        for key in counted:
            batch.delete(key)
        batch.delete(META_ACTIVITY_FROM)
    store.close()
    store = Store(tmp_path / "chain", chain.genesis)
    try:
        assert store.activity_from == store.tip().height + 1
        assert standings.standings_data(store, T0 + 10_000)["windows"]["30d"]["miners"] == []
        reindex_store(store)
        assert store.activity_from == 0
        assert _counters(store) == counted
    finally:
        store.close()


def test_hourly_activity_counts_blocks_jobs_and_receipts(chain_store: tuple[Chain, Store]) -> None:
    _, store = chain_store
    hours = standings.hourly_activity(store, T0 + 10_000, 24, 1)
    assert len(hours) == 24 and hours[-1]["start"] == "2026-01-01T00:00:00.000Z"
    last = hours[-1]
    # block 0 (at the genesis time, with its own transaction) and the two job blocks
    assert (last["blocks"], last["transactions"], last["jobs"], last["receipts"]) == (3, 7, 1, 1)
    assert sum(h["blocks"] for h in hours[:-1]) == 0
    week = standings.hourly_activity(store, T0 + 10_000, 28, 6)
    assert len(week) == 28 and week[-1]["receipts"] == 1 and week[-1]["hours"] == 6


def test_miner_receipts_page_and_csv(chain_store: tuple[Chain, Store]) -> None:
    _, store = chain_store
    items, older = standings.miner_receipts_page(store, "gpu-1", 10, None)
    assert [r["receipt_id"] for r in items] == ["rcpt-1"] and older is None
    rows = list(csv.reader(io.StringIO(standings.receipts_csv(items))))
    assert rows[0] == list(standings.CSV_COLUMNS)
    assert rows[1][0] == "rcpt-1" and rows[1][7].endswith("Z")
    with pytest.raises(NotFound):
        standings.miner_receipts_page(store, "nobody", 10, None)


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    text = standings.receipts_csv([{"receipt_id": "=HYPERLINK(1)", "client": "@x", "units": 3, "price": 4e-06}])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[0] == "'=HYPERLINK(1)" and row[2] == "'@x" and row[4] == "3" and row[6] == "4e-06"
