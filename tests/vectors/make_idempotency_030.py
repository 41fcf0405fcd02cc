"""Writes idempotency-0.3.0-chain.json: a chain sealed by the 0.3.0 transition, whose
idempotency records hold the raw key (the form newer versions must keep verifying).

Run against a 0.3.0 checkout's chain/ (the vector must come from the old code, not this one):

    git archive <0.3.0 commit> chain | tar -x -C /tmp/aitbc-030
    PYTHONPATH=/tmp/aitbc-030 python tests/vectors/make_idempotency_030.py > tests/vectors/idempotency-0.3.0-chain.json

It uses only chain/ and the standard library, so that it runs against the old package.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from chain.context import ApplyContext
from chain.crypto import NodeKey, hash_hex
from chain.genesis import parse_genesis
from chain.state import EmptyState, WorkingState
from chain.transactions import Transaction
from chain.transition import apply_tx, genesis_block, seal_block

AUTHORITY = NodeKey(bytes(range(32)))
T0 = 1_767_225_600_000
DAY = 24 * 3600 * 1000
GENESIS: dict[str, Any] = {
    "chain_id": "aitbc-test",
    "genesis_time": "2026-01-01T00:00:00Z",
    "authorities": [AUTHORITY.public_hex],
    "params": {"max_block_txs": 500, "prices": {"llama3.2": {"tokens": "0.000002"}}},
    "accounts": [{"name": "ops", "role": "admin", "key_hash": hash_hex(b"ops-key")}],
}


class Memory:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        found = sorted(k for k in self.data if k.startswith(prefix) and k >= prefix + start)
        return ((k[len(prefix) :], self.data[k]) for k in found)


def keyed(job_id: str, client: str, t: int, idem_key: str | None) -> Transaction:
    payload: dict[str, Any] = {"job_id": job_id, "client": client, "prompt": f"prompt of {job_id}"}
    if idem_key is not None:
        payload["idempotency"] = {"account": client, "key": idem_key, "request": hash_hex(job_id.encode())}
    return Transaction("job.submit", payload, t)


def main() -> None:
    genesis = parse_genesis(GENESIS)
    block0, state0 = genesis_block(genesis, EmptyState())
    state = Memory()
    state.data.update((k, v) for k, v in state0.changes() if v is not None)
    tip = block0.header
    t2 = T0 + 2_000
    plan = [
        (
            T0 + 1_000,
            [
                Transaction(
                    "account.create", {"name": n, "role": "client", "key_hash": hash_hex(n.encode())}, T0 + 1_000
                )
                for n in ("alice", "bob")
            ],
        ),
        (t2, [keyed("job-1", "alice", t2, "order-42"), keyed("job-2", "bob", t2, "order-42")]),
        (t2 + DAY - 1, [keyed("job-3", "alice", t2 + DAY - 1, "other")]),
        (t2 + DAY, [keyed("job-4", "alice", t2 + DAY, "order-42")]),  # reused once expired
        (t2 + 2 * DAY + 5, [keyed("job-5", "bob", t2 + 2 * DAY + 5, None)]),  # every record expired
    ]
    blocks = []
    for time_ms, txs in plan:
        working = WorkingState(state)
        for t in txs:
            apply_tx(working, t, ApplyContext(time_ms=time_ms, genesis=genesis))
        block = seal_block(tip, txs, working, time_ms, AUTHORITY)
        for k, v in working.changes():
            if v is None:
                state.data.pop(k, None)
            else:
                state.data[k] = v
        blocks.append(block.to_dict())
        tip = block.header
    json.dump({"genesis": GENESIS, "blocks": blocks}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
