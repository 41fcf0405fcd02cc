"""The sequencer deletes expired idempotency records as it seals blocks (pipelined, over LevelDB),
and `verify` and `reindex` re-derive exactly the state it wrote."""

from __future__ import annotations

import asyncio
from typing import Any

from chain import idempotency, indexes
from chain.crypto import NodeKey, hash_hex
from chain.transactions import Transaction
from node.datadir import api_key_hash
from node.producer import IDEMPOTENCY, Producer, seal_now
from node.reindex import reindex_store
from node.store import Store
from node.verify import verify_store

TTL = idempotency.TTL_MS


def submit_keyed(producer: Producer, jobs: list[tuple[str, str]]) -> list[Any]:
    """Submit job.submit transactions at once, each sent with its idempotency key, as the API does."""

    async def one(job_id: str, idem_key: str) -> Any:
        IDEMPOTENCY.set(idempotency.payload_record("alice", idem_key, hash_hex(job_id.encode())))
        payload = {"job_id": job_id, "client": "alice", "prompt": f"p {job_id}", "model": "llama3.2", "params": {}}
        return await producer.submit("job.submit", payload)

    async def scenario() -> list[Any]:
        producer.start()
        try:
            return await asyncio.gather(*(one(j, k) for j, k in jobs), return_exceptions=True)
        finally:
            await producer.stop()

    return asyncio.run(scenario())


def records(store: Store) -> list[tuple[int, str, str]]:
    return [indexes.parse_idempotency_expiry(k) for k, _ in store.iter_state(indexes.IDEMPOTENCY_EXPIRY)]


def test_the_sequencer_deletes_expired_records_and_verify_and_reindex_agree(store: Store, node_key: NodeKey) -> None:
    cap = store.genesis.params.max_block_txs
    now = [store.tip().timestamp + 1_000]
    create = Transaction("account.create", {"name": "alice", "role": "client", "key_hash": api_key_hash("a" * 32)}, 0)
    seal_now(store, node_key, [create], lambda: now[0])

    first = [(f"old-{i}", f"key-{i}") for i in range(3 * cap + 5)]
    outcomes = submit_keyed(Producer(store, node_key, clock=lambda: now[0]), first)
    assert not any(isinstance(o, Exception) for o in outcomes)
    assert len(records(store)) == len(first)

    now[0] += TTL  # a day later: every first-day record has expired
    start = store.tip().height
    again = [(f"again-{i}", f"key-{i}") for i in range(7)]  # keys of the first day, used again
    fresh = [(f"fresh-{i}", f"fresh-{i}") for i in range(4 * cap)]
    outcomes = submit_keyed(Producer(store, node_key, clock=lambda: now[0]), again)
    outcomes += submit_keyed(Producer(store, node_key, clock=lambda: now[0]), fresh + [("retry", "key-0")])
    assert not any(isinstance(o, Exception) for o in outcomes[:-1])
    assert getattr(outcomes[-1], "error_code", None) == "idempotency_key_used"  # live again: refused
    assert store.tip().height - start >= 4  # blocks enough to delete the backlog, at most cap each

    left = records(store)
    assert {e[0] for e in left} == {now[0] + TTL}  # only the second day's records
    expected = {idempotency.key_hash("alice", k) for _, k in again + fresh}
    assert {e[2] for e in left} == expected
    assert len(list(store.iter_state(b"idemh\x00"))) == len(expected)

    before = dict(store.iter_all_state())
    verify_store(store)
    reindex_store(store)
    assert dict(store.iter_all_state()) == before
    verify_store(store)
