from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

import pytest

from chain import transition
from chain.accounts import account_key, key_hash_key
from chain.context import ApplyContext
from chain.crypto import NodeKey, hash_hex
from chain.errors import Conflict, LedgerError, ValidationError
from chain.genesis import Genesis
from chain.state import WorkingState, key
from chain.transactions import Transaction
from chain.transition import apply_tx, seal_block
from node.clock import now_ms
from node.producer import seal_now
from node.store import ChainMismatch, Store, StoreError, StoreLocked
from tests.support import make_genesis


def account_tx(name: str, role: str = "client") -> Transaction:
    payload = {"name": name, "role": role, "key_hash": hash_hex(name.encode())}
    return Transaction("account.create", payload, now_ms())


def snapshot(store: Store) -> dict[str, Any]:
    """Everything a reader of the store can observe."""
    return {
        "tip": store.tip(),
        "tx_count": store.tx_count(),
        "state": list(store.iter_all_state()),
        "blocks": list(store.iter_block_bytes()),
    }


def test_fresh_store_starts_at_genesis_block(store: Store, genesis: Genesis) -> None:
    assert store.tip().height == 0
    assert store.tip().prev_hash == genesis.hash
    assert [h for h, _ in store.iter_block_bytes()] == [0]


def test_batch_where_every_tx_is_invalid_leaves_no_trace(store: Store, node_key: NodeKey) -> None:
    seal_now(store, node_key, [account_tx("alice")])
    before = snapshot(store)
    bad_role = Transaction("account.create", {"name": "bob", "role": "wizard", "key_hash": "ab" * 32}, now_ms())
    duplicate = Transaction("account.create", {"name": "alice", "role": "client", "key_hash": "cd" * 32}, now_ms())

    outcomes, block = seal_now(store, node_key, [bad_role, duplicate])

    assert block is None
    assert isinstance(outcomes[0], ValidationError)
    assert isinstance(outcomes[1], Conflict)
    assert snapshot(store) == before
    assert store.get(account_key("bob")) is None
    assert store.tx_location(bad_role.hash.hex()) is None


def test_tx_that_raises_unexpectedly_leaves_no_trace(
    store: Store, node_key: NodeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    seal_now(store, node_key, [account_tx("alice")])
    before = snapshot(store)

    def half_done_then_crash(state: WorkingState, payload: dict[str, Any], ctx: ApplyContext) -> dict[str, Any]:
        state.put(key("half", "written"), b"1")
        raise RuntimeError("handler bug")

    monkeypatch.setattr(transition, "HANDLERS", {**transition.HANDLERS, "miner.heartbeat": half_done_then_crash})
    valid = account_tx("bob")
    with pytest.raises(RuntimeError, match="handler bug"):
        seal_now(store, node_key, [valid, Transaction("miner.heartbeat", {}, now_ms())])

    assert snapshot(store) == before
    assert store.get(key("half", "written")) is None
    assert store.get(account_key("bob")) is None
    assert store.tx_location(valid.hash.hex()) is None


def test_mixed_batch_commits_only_the_valid_txs(store: Store, node_key: NodeKey) -> None:
    before = snapshot(store)
    a, b = account_tx("alice"), account_tx("bob")
    invalid_payload = {"name": "carol", "role": "wizard", "key_hash": hash_hex(b"carol")}
    invalid = Transaction("account.create", invalid_payload, now_ms())
    repeat = Transaction("account.create", {"name": "alice", "role": "client", "key_hash": "ef" * 32}, now_ms())

    outcomes, block = seal_now(store, node_key, [a, invalid, b, repeat])

    assert block is not None
    assert [type(o) for o in outcomes] == [dict, ValidationError, dict, Conflict]
    assert [tx.hash for tx in block.transactions] == [a.hash, b.hash]
    assert store.tip() == block.header
    assert store.tip().height == before["tip"].height + 1
    assert store.tx_count() == before["tx_count"] + 2
    assert store.tx_location(a.hash.hex()) == (block.height, 0)
    assert store.tx_location(b.hash.hex()) == (block.height, 1)
    assert store.tx_location(invalid.hash.hex()) is None
    assert store.tx_location(repeat.hash.hex()) is None
    assert store.get_record(account_key("alice"))["key_hash"] == a.payload["key_hash"]
    assert store.get_record(account_key("bob"))["name"] == "bob"
    assert store.get(account_key("carol")) is None
    assert store.get(key_hash_key(invalid_payload["key_hash"])) is None
    assert store.get(key_hash_key("ef" * 32)) is None


def _next_block(store: Store, node_key: NodeKey, txs: list[Transaction]) -> tuple[Any, WorkingState]:
    prev = store.tip()
    timestamp = max(now_ms(), prev.timestamp)
    state = WorkingState(store)
    ctx = ApplyContext(time_ms=timestamp, genesis=store.genesis)
    for tx in txs:
        apply_tx(state, tx, ctx)
    return seal_block(prev, txs, state, timestamp, node_key), state


def test_write_block_that_fails_midway_writes_nothing(store: Store, node_key: NodeKey) -> None:
    before = snapshot(store)
    tx = account_tx("alice")
    block, state = _next_block(store, node_key, [tx])
    # A value that is not bytes makes the batch fail after the block, its hash and
    # tx index entries and some state have been added to it.
    broken = state.changes() + [(b"\xff-last", "not bytes")]

    with pytest.raises(TypeError):
        store.write_block(block, broken)  # type: ignore[arg-type]  # the value that is not bytes, on purpose

    assert snapshot(store) == before
    assert store.block(block.height) is None
    assert store.height_of(block.hash) is None
    assert store.tx_location(tx.hash.hex()) is None
    assert store.get(account_key("alice")) is None


def test_write_block_makes_block_tip_and_indexes_appear_together(
    store_path: Path, genesis: Genesis, node_key: NodeKey
) -> None:
    store = Store(store_path, genesis)
    try:
        tx_count = store.tx_count()
        txs = [account_tx("alice"), account_tx("bob")]
        block, state = _next_block(store, node_key, txs)
        assert store.block(block.height) is None
        store.write_block(block, state.changes())
    finally:
        store.close()

    store = Store(store_path, genesis, create=False)
    try:
        assert store.tip() == block.header
        assert store.block_bytes(block.height) == block.encode()
        assert store.height_of(block.hash) == block.height
        assert [store.tx_location(tx.hash.hex()) for tx in txs] == [(block.height, 0), (block.height, 1)]
        assert store.tx_count() == tx_count + 2
        assert store.get_record(account_key("bob"))["role"] == "client"
    finally:
        store.close()


def test_close_and_reopen_gives_same_tip_and_state(store_path: Path, genesis: Genesis, node_key: NodeKey) -> None:
    store = Store(store_path, genesis)
    try:
        for i in range(5):
            seal_now(store, node_key, [account_tx(f"user-{i}-{j}") for j in range(i + 1)])
        before = snapshot(store)
    finally:
        store.close()
    assert store.closed
    assert before["tip"].height == 5
    assert before["tx_count"] == 15

    reopened = Store(store_path, genesis, create=False)
    try:
        assert reopened.tip() == before["tip"]
        assert reopened.tip().hash == before["tip"].hash
        assert list(reopened.iter_all_state()) == before["state"]
        assert reopened.tx_count() == before["tx_count"]
        assert list(reopened.iter_block_bytes()) == before["blocks"]
    finally:
        reopened.close()


def test_other_genesis_raises_chain_mismatch(store_path: Path, genesis: Genesis, node_key: NodeKey) -> None:
    Store(store_path, genesis).close()
    other = make_genesis(node_key.public_hex, max_block_txs=11)
    assert other.hash != genesis.hash

    with pytest.raises(ChainMismatch) as info:
        Store(store_path, other)

    message = str(info.value)
    assert "belongs to another chain" in message
    assert str(store_path.parent) in message
    assert genesis.hash[:16] in message and other.hash[:16] in message
    # The refused open released the data dir: the right genesis opens it again.
    Store(store_path, genesis).close()


def test_opening_the_same_path_twice_raises_store_locked(store: Store, store_path: Path, genesis: Genesis) -> None:
    with pytest.raises(StoreLocked, match="already in use by another aitbc-node process"):
        Store(store_path, genesis)
    assert store.tip().height == 0  # the first handle still works


def test_lock_is_released_on_close(store_path: Path, genesis: Genesis) -> None:
    Store(store_path, genesis).close()
    second = Store(store_path, genesis)
    second.close()


def test_opening_a_missing_store_without_create_says_it_holds_no_chain(tmp_path: Path, genesis: Genesis) -> None:
    with pytest.raises(StoreError, match="holds no chain") as info:
        Store(tmp_path / "missing", genesis, create=False)
    assert "corrupt" not in str(info.value)
    assert not (tmp_path / "missing").exists()


def test_iter_state_reverse_returns_keys_in_descending_order(store: Store, node_key: NodeKey) -> None:
    names = [f"acct-{secrets.token_hex(3)}" for _ in range(25)]
    seal_now(store, node_key, [account_tx(n) for n in names])
    prefix = key("acct", "")

    forward = [k for k, _ in store.iter_state(prefix)]
    newest_first = [k for k, _ in store.iter_state(prefix, reverse=True)]

    assert newest_first == sorted(forward, reverse=True)
    assert forward == sorted(forward)
    assert all(a > b for a, b in itertools.pairwise(newest_first))
    # Entries under neighbouring prefixes ("akey" sorts right after "acct") never leak in.
    assert sorted(k.decode() for k in forward) == sorted(names)


def test_iter_state_reverse_with_bounds(store: Store, node_key: NodeKey) -> None:
    seal_now(store, node_key, [account_tx(f"n{i:02d}") for i in range(10)])
    prefix = key("acct", "")

    bounded = [k for k, _ in store.iter_state(prefix, reverse=True, start=b"n03", stop=b"n07")]
    from_start = [k for k, _ in store.iter_state(prefix, reverse=True, start=b"n05")]

    assert bounded == [b"n06", b"n05", b"n04", b"n03"]
    assert from_start == [b"n09", b"n08", b"n07", b"n06", b"n05"]


def test_seal_now_reports_ledger_error_types(store: Store, node_key: NodeKey) -> None:
    outcomes, _ = seal_now(store, node_key, [Transaction("account.revoke", {"name": "nobody"}, now_ms())])
    assert isinstance(outcomes[0], LedgerError)
    assert outcomes[0].error_code == "account_not_found"


# -- the state read cache (node.store.StateCache) ----------------------------------------


def _revoke(name: str) -> Transaction:
    return Transaction("account.revoke", {"name": name}, now_ms())


def test_reads_see_every_committed_change_through_the_cache(store: Store, node_key: NodeKey) -> None:
    seal_now(store, node_key, [account_tx("alice")])
    assert store.get_record(account_key("alice"))["revoked"] is False  # read once: now cached
    assert store.get_record(account_key("alice"))["revoked"] is False
    outcomes, _ = seal_now(store, node_key, [_revoke("alice")])
    assert not isinstance(outcomes[0], LedgerError), outcomes
    assert store.get_record(account_key("alice"))["revoked"] is True


def test_a_read_that_races_a_commit_keeps_no_stale_value(store: Store, node_key: NodeKey) -> None:
    """LevelDB answers with the old value, a block changing the key is committed before the
    reader keeps it: the reader's answer is the old value, but the store must not keep it."""
    seal_now(store, node_key, [account_tx("bob")])
    wanted = b"s" + account_key("bob")
    real = store._db

    class CommitDuringRead:
        raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get(self, k: bytes) -> Any:
            value = real.get(k)
            if k == wanted and not self.raced:
                self.raced = True
                store._db = real
                outcomes, _ = seal_now(store, node_key, [_revoke("bob")])
                assert not isinstance(outcomes[0], LedgerError), outcomes
            return value

    store._cache.clear()
    store._db = CommitDuringRead()
    try:
        assert store.get_record(account_key("bob"))["revoked"] is False  # read before the commit
    finally:
        store._db = real
    assert store.get_record(account_key("bob"))["revoked"] is True


def test_a_commit_replaces_or_drops_cached_keys_and_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.store import StateCache

    cache = StateCache()
    cache.keep(b"a", b"1", cache.epoch)
    cache.keep(b"b", b"1", cache.epoch)
    cache.committed([(b"a", None), (b"b", b"2"), (b"c", b"3")])
    assert cache.values == {b"b": b"2"}  # a deleted, b replaced, c (never read) not added
    epoch = cache.epoch
    cache.committed([])
    cache.keep(b"c", b"old", epoch)  # read before a commit finished: not kept
    assert b"c" not in cache.values
    monkeypatch.setattr(StateCache, "MAX_ENTRIES", 3)
    for i in range(10):
        cache.keep(b"k%d" % i, b"v", cache.epoch)
        assert len(cache.values) <= 3


def test_absent_keys_are_not_cached(store: Store) -> None:
    for i in range(100):
        assert store.get(account_key(f"nobody-{i}")) is None
    assert store._cache.values == {}


def test_reindex_empties_the_cache(store: Store, node_key: NodeKey) -> None:
    seal_now(store, node_key, [account_tx("carol")])
    assert store.get(account_key("carol")) is not None
    store.begin_reindex()
    assert store.get(account_key("carol")) is None
    store.end_reindex()


_TWO_STORES = """
import json, os, sys
from pathlib import Path
from node.store import Store
from tests.support import make_genesis
from chain.crypto import NodeKey
os.nice(int(sys.argv[2]))
genesis = make_genesis(NodeKey(os.urandom(32)).public_hex)
first = Store(Path(sys.argv[1]) / "one", genesis)
tid = first.lower_compaction_priority()
second = Store(Path(sys.argv[1]) / "two", genesis)
again = second.lower_compaction_priority()
def nice(t):
    return int(Path(f"/proc/self/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[16])
print(json.dumps({"tid": tid, "again": again, "name": Path(f"/proc/self/task/{tid}/comm").read_text().strip(),
                  "nice": nice(tid), "main_nice": nice(os.getpid())}))
"""


@pytest.mark.parametrize(("own", "lowered"), [(0, 10), (5, 15), (15, 19)])
def test_lower_compaction_priority_names_leveldbs_one_thread_and_lowers_only_it(
    tmp_path: Path, own: int, lowered: int
) -> None:
    """In a fresh process at nice `own`: the thread LevelDB starts is found, named and set 10
    lower (at most 19); a second store in the same process shares that thread (LevelDB has one
    per process) and gets its id back without another search; the calling thread keeps its own."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_STORES, str(tmp_path), str(own)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert isinstance(got["tid"], int) and got["again"] == got["tid"]
    assert got["name"] == "leveldb-compact" and got["nice"] == lowered and got["main_nice"] == own


def test_lower_compaction_priority_gives_up_quietly_when_leveldb_refuses(
    tmp_path: Path, genesis: Genesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lowering the compaction thread's priority is an optimisation: a LevelDB error on the way
    leaves it undone (None) instead of failing the node's start."""
    import plyvel

    import node.store as store_module

    monkeypatch.setattr(store_module, "_compaction_thread", None)
    store = Store(tmp_path / "refusing", genesis)

    class Refusing:
        def __init__(self, db: Any) -> None:
            self.db = db

        def compact_range(self, **_: Any) -> None:
            raise plyvel.IOError("IO error: the disk went away")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.db, name)

    real = store._db
    store._db = Refusing(real)
    try:
        assert store.lower_compaction_priority() is None
        assert store_module._compaction_thread is None
    finally:
        store._db = real
        store.close()
