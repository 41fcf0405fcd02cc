"""Idempotency records on chain: only a hash of the key, expired records deleted by block time
(a bounded number per block, the same on every replica), and 0.3.0 chains (raw keys) still valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from chain import idempotency, indexes
from chain.context import ApplyContext
from chain.crypto import hash_hex
from chain.errors import Conflict, LedgerError
from chain.genesis import Genesis, parse_genesis
from chain.state import EmptyState, WorkingState, key
from chain.transactions import Transaction
from chain.transition import apply_block, apply_tx, genesis_block, open_block, seal_block
from node.verify import MemoryState
from tests.chain.devchain import AUTHORITY, T0, Chain, key_hash, make_genesis, tx

TTL = idempotency.TTL_MS
VECTOR = Path(__file__).parent.parent / "vectors" / "idempotency-0.3.0-chain.json"
ACCOUNTS = ("alice", "bob")


def keyed_submit(job_id: str, account: str, t: int, idem_key: str | None) -> Transaction:
    payload: dict[str, Any] = {"job_id": job_id, "client": account, "prompt": f"prompt of {job_id}"}
    if idem_key is not None:
        request = hash_hex(job_id.encode())
        payload[idempotency.FIELD] = idempotency.payload_record(account, idem_key, request)
    return Transaction("job.submit", payload, t)


def market(genesis: Genesis | None = None) -> Chain:
    chain = Chain(genesis or make_genesis())
    creates = [tx("account.create", T0 + 1_000, name=n, role="client", key_hash=key_hash(f"{n}-key")) for n in ACCOUNTS]
    chain.seal(creates, T0 + 1_000)
    return chain


def seal_and_replay(chain: Chain, txs: list[Transaction], t: int) -> None:
    """Seal on the authority's side, then check a follower replaying the block derives the same state."""
    follower = chain.base_before(len(chain.blocks))
    block = chain.seal(txs, t)
    follower.apply(apply_block(follower, chain.blocks[-2].header, block, chain.genesis).changes())
    assert follower.data == chain.state.data


def hashed_records(state: MemoryState) -> dict[bytes, int]:
    prefix = key("idemh", "")
    return {k: json.loads(v)["time"] for k, v in state.data.items() if k.startswith(prefix)}


def expiry_entries(state: MemoryState) -> list[tuple[int, str, str]]:
    return [indexes.parse_idempotency_expiry(k) for k, _ in state.scan(indexes.IDEMPOTENCY_EXPIRY)]


def test_the_chain_holds_a_hash_of_the_key_never_the_key() -> None:
    chain = market()
    chain.seal([keyed_submit("job-1", "alice", T0 + 2_000, "order-42")], T0 + 2_000)
    assert b"order-42" not in chain.blocks[-1].encode()
    assert not any(b"order-42" in k or b"order-42" in v for k, v in chain.state.data.items())
    assert idempotency.key_hash("alice", "order-42") != idempotency.key_hash("bob", "order-42")
    record = idempotency.live_record(WorkingState(chain.state), "alice", "order-42", T0 + 2_000)
    assert record is not None and record["type"] == "job.submit"


def test_a_live_key_is_refused_for_another_write_and_an_expired_one_may_be_used_again() -> None:
    chain = market()
    chain.seal([keyed_submit("job-1", "alice", T0 + 2_000, "k")], T0 + 2_000)
    state = open_block(chain.state, T0 + 2_000 + TTL - 1, chain.genesis)
    with pytest.raises(Conflict) as refused:
        ctx = ApplyContext(time_ms=T0 + 2_000 + TTL - 1, genesis=chain.genesis)
        apply_tx(state, keyed_submit("job-2", "alice", T0 + 2_000 + TTL - 1, "k"), ctx)
    assert refused.value.error_code == "idempotency_key_used"
    seal_and_replay(chain, [keyed_submit("job-2", "bob", T0 + 2_000 + TTL - 1, "k")], T0 + 2_000 + TTL - 1)
    seal_and_replay(chain, [keyed_submit("job-3", "alice", T0 + 2_000 + TTL, "k")], T0 + 2_000 + TTL)
    record = idempotency.live_record(WorkingState(chain.state), "alice", "k", T0 + 2_000 + TTL)
    assert record is not None and record["time"] == T0 + 2_000 + TTL


def test_a_block_deletes_the_records_expired_by_its_time_and_keeps_the_live_ones() -> None:
    chain = market()
    t = T0 + 2_000
    seal_and_replay(chain, [keyed_submit("job-1", "alice", t, "a"), keyed_submit("job-2", "bob", t, "b")], t)
    seal_and_replay(chain, [keyed_submit("job-3", "alice", t + 1, "c")], t + 1)
    assert len(hashed_records(chain.state)) == 3 and len(expiry_entries(chain.state)) == 3

    seal_and_replay(chain, [keyed_submit("job-4", "bob", t + TTL - 1, None)], t + TTL - 1)
    assert len(hashed_records(chain.state)) == 3  # nothing expired yet

    seal_and_replay(chain, [keyed_submit("job-5", "bob", t + TTL, None)], t + TTL)
    assert sorted(hashed_records(chain.state).values()) == [t + 1]  # a and b gone, c remains
    assert [e[0] for e in expiry_entries(chain.state)] == [t + 1 + TTL]
    assert idempotency.live_record(WorkingState(chain.state), "alice", "a", t + TTL) is None
    assert idempotency.live_record(WorkingState(chain.state), "alice", "c", t + TTL) is not None

    seal_and_replay(chain, [keyed_submit("job-6", "bob", t + TTL + 1, None)], t + TTL + 1)
    assert hashed_records(chain.state) == {} and expiry_entries(chain.state) == []


def test_a_block_deletes_at_most_max_block_txs_expired_records_and_the_next_blocks_the_rest() -> None:
    genesis = make_genesis(params={"max_block_txs": 3, "prices": {"llama3.2": {"tokens": "0.000002"}}})
    chain = market(genesis)
    t = T0 + 2_000
    seal_and_replay(chain, [keyed_submit(f"job-{i}", "alice", t, f"k{i}") for i in range(7)], t)
    left = []
    for n in range(4):
        seal_and_replay(chain, [keyed_submit(f"later-{n}", "bob", t + TTL + n, None)], t + TTL + n)
        left.append(len(hashed_records(chain.state)))
    assert left == [4, 1, 0, 0]
    assert expiry_entries(chain.state) == []


def test_a_key_reused_once_expired_but_not_yet_deleted_keeps_its_new_record() -> None:
    genesis = make_genesis(params={"max_block_txs": 1, "prices": {"llama3.2": {"tokens": "0.000002"}}})
    chain = market(genesis)
    t = T0 + 2_000
    seal_and_replay(chain, [keyed_submit("job-1", "alice", t, "first")], t)
    seal_and_replay(chain, [keyed_submit("job-2", "alice", t + 1, "second")], t + 1)
    # Both are due at t + 1 + TTL; the block deletes one ("first", due sooner) and reuses "second".
    later = t + 1 + TTL
    seal_and_replay(chain, [keyed_submit("job-3", "alice", later, "second")], later)
    assert list(hashed_records(chain.state).values()) == [later]
    assert expiry_entries(chain.state) == [(later + TTL, "alice", idempotency.key_hash("alice", "second"))]
    seal_and_replay(chain, [keyed_submit("job-4", "bob", later + 1, None)], later + 1)
    assert idempotency.live_record(WorkingState(chain.state), "alice", "second", later + 1) is not None


def test_an_idempotency_record_of_another_shape_is_refused() -> None:
    chain = market()
    state = open_block(chain.state, T0 + 2_000, chain.genesis)
    ctx = ApplyContext(time_ms=T0 + 2_000, genesis=chain.genesis)
    request = hash_hex(b"r")
    for bad in (
        {"account": "alice", "key_hash": "AB" * 32, "request": request},
        {"account": "alice", "key_hash": "ab" * 31, "request": request},
        {"account": "alice", "key": "k", "key_hash": "ab" * 32, "request": request},
        {"account": "alice", "key": "\n", "request": request},
    ):
        t = Transaction("job.submit", {"job_id": "j", "client": "alice", "prompt": "p", "idempotency": bad}, T0)
        with pytest.raises(LedgerError):
            apply_tx(state, t, ctx)
    assert state.changes() == []


# -- a chain sealed by 0.3.0 (raw keys) -------------------------------------------------------


def replay(doc: dict[str, Any]) -> tuple[Genesis, MemoryState, list[Any]]:
    from chain.blocks import Block

    genesis = parse_genesis(doc["genesis"])
    block0, state0 = genesis_block(genesis, EmptyState())
    state = MemoryState()
    state.apply(state0.changes())
    prev = block0.header
    blocks = [Block.from_dict(b) for b in doc["blocks"]]
    for block in blocks:
        state.apply(apply_block(state, prev, block, genesis).changes())
        prev = block.header
    return genesis, state, blocks


def test_a_chain_sealed_by_0_3_0_with_raw_keys_still_verifies_and_its_records_still_answer() -> None:
    genesis, state, blocks = replay(json.loads(VECTOR.read_text()))
    assert len(blocks) == 5
    legacy = idempotency.legacy_record_key
    # Every record the 0.3.0 blocks made is still there (deleting one would change their roots).
    assert {legacy("alice", "order-42"), legacy("bob", "order-42"), legacy("alice", "other")} <= set(state.data)
    view = open_block(state, blocks[-1].header.timestamp, genesis)
    assert view.changes() == []  # nothing of the raw form is deleted
    reused_at = blocks[3].header.timestamp
    found = idempotency.live_record(view, "alice", "order-42", reused_at)
    assert found is not None and found["time"] == reused_at
    assert idempotency.live_record(view, "alice", "order-42", reused_at + TTL) is None

    # The chain goes on with the hashed form: its records expire and are deleted as usual.
    t = blocks[-1].header.timestamp + 1
    block = seal_keyed(state, blocks[-1].header, genesis, [keyed_submit("job-6", "alice", t, "order-42")], t)
    assert b"order-42" not in block.encode()
    later = t + TTL
    seal_keyed(state, block.header, genesis, [keyed_submit("job-7", "bob", later, None)], later)
    assert legacy("alice", "order-42") in state.data
    assert idempotency.hashed_record_key("alice", idempotency.key_hash("alice", "order-42")) not in state.data


def seal_keyed(state: MemoryState, prev: Any, genesis: Genesis, txs: list[Transaction], t: int) -> Any:
    working = open_block(state, t, genesis)
    for one in txs:
        apply_tx(working, one, ApplyContext(time_ms=t, genesis=genesis))
    block = seal_block(prev, txs, working, t, AUTHORITY)
    replica = MemoryState.holding(state.data)
    replica.apply(apply_block(replica, prev, block, genesis).changes())
    state.apply(working.changes())
    assert replica.data == state.data
    return block


# -- the property: any history, two replicas, the same state; expired gone, live kept --------

STEPS = st.sampled_from([0, 1, 1_000, TTL - 1, TTL, TTL + 1, 6 * 3600 * 1000])
WRITES = st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(["k1", "k2", "k3", "k4", "k5"])), max_size=5)


@settings(max_examples=60)
@given(st.lists(st.tuples(STEPS, WRITES), min_size=1, max_size=12), st.integers(1, 4))
def test_any_history_of_keyed_writes_leaves_every_replica_the_same_day_of_keys(
    history: list[tuple[int, list[tuple[str, str]]]], cap: int
) -> None:
    genesis = make_genesis(params={"max_block_txs": cap, "prices": {"llama3.2": {"tokens": "0.000002"}}})
    chain = market(genesis)
    model: dict[tuple[str, str], int] = {}  # (account, key hash) -> time of its record
    now = T0 + 2_000
    serial = 0
    for step, writes in history:
        now += step
        due = sorted((t + TTL, a, h) for (a, h), t in model.items() if t + TTL <= now)
        for _, a, h in due[:cap]:
            del model[(a, h)]
        working = open_block(chain.state, now, genesis)
        accepted = []
        for account, idem_key in writes:
            serial += 1
            one = keyed_submit(f"job-{serial}", account, now, idem_key)
            h = idempotency.key_hash(account, idem_key)
            live = (account, h) in model and model[(account, h)] + TTL > now
            note(f"at {now}: {account}/{idem_key} {'refused' if live else 'recorded'}")
            try:
                apply_tx(working, one, ApplyContext(time_ms=now, genesis=genesis))
            except Conflict:
                assert live
                continue
            assert not live
            model[(account, h)] = now
            accepted.append(one)
        if not accepted:  # a block holds at least one transaction
            plain = keyed_submit(f"plain-{len(chain.blocks)}", "bob", now, None)
            apply_tx(working, plain, ApplyContext(time_ms=now, genesis=genesis))
            accepted.append(plain)
        follower = MemoryState.holding(chain.state.data)
        block = seal_block(chain.tip, accepted, working, now, AUTHORITY)
        follower.apply(apply_block(follower, chain.tip, block, genesis).changes())
        chain.blocks.append(block)
        chain.state.apply(working.changes())
        assert follower.data == chain.state.data

        records = hashed_records(chain.state)
        expected = {idempotency.hashed_record_key(a, h): t for (a, h), t in model.items()}
        assert records == expected
        assert sorted(expiry_entries(chain.state)) == sorted((t + TTL, a, h) for (a, h), t in model.items())
        if len(due) <= cap:  # no backlog: nothing expired is left
            assert all(t + TTL > now for t in records.values())
