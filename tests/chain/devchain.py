"""An in-memory chain for the core tests: a genesis, an authority key, and both sides of
the transition (the authority sealing blocks, a follower applying them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chain.blocks import Block, BlockHeader
from chain.context import ApplyContext
from chain.crypto import NodeKey, hash_hex
from chain.genesis import Genesis, parse_genesis
from chain.state import EmptyState, WorkingState
from chain.transactions import Transaction
from chain.transition import apply_tx, genesis_block, open_block, seal_block
from node.verify import MemoryState  # the committed state verify replays into

AUTHORITY = NodeKey(bytes(range(32)))
"""The devnet authority: seals blocks and signs receipts."""
OUTSIDER = NodeKey(bytes(range(100, 132)))
"""A well-formed key that genesis does not trust."""

GENESIS_TIME = "2026-01-01T00:00:00Z"
T0 = 1_767_225_600_000
"""GENESIS_TIME in Unix milliseconds."""


def key_hash(api_key: str) -> str:
    """What the chain stores for an API key: its BLAKE3 hash, hex."""
    return hash_hex(api_key.encode())


def genesis_doc(**overrides: Any) -> dict[str, Any]:
    """A valid genesis document with AUTHORITY as its only authority and an admin account."""
    doc: dict[str, Any] = {
        "chain_id": "aitbc-test",
        "genesis_time": GENESIS_TIME,
        "authorities": [AUTHORITY.public_hex],
        "params": {
            "max_block_txs": 500,
            "lease_seconds": 60,
            "max_attempts": 2,
            "prices": {"llama3.2": {"tokens": "0.000002"}, "mistral-7b": {"tokens": "0.000003"}},
        },
        "accounts": [{"name": "ops", "role": "admin", "key_hash": key_hash("ops-key")}],
    }
    doc.update(overrides)
    return doc


def make_genesis(**overrides: Any) -> Genesis:
    return parse_genesis(genesis_doc(**overrides))


def tx(tx_type: str, timestamp: int, **payload: Any) -> Transaction:
    return Transaction(tx_type, payload, timestamp)


def run(state: WorkingState, genesis: Genesis, tx_type: str, timestamp: int, **payload: Any) -> dict[str, Any]:
    """Apply one transaction at block time `timestamp`."""
    return apply_tx(state, tx(tx_type, timestamp, **payload), ApplyContext(time_ms=timestamp, genesis=genesis))


class Chain:
    """Blocks sealed by `key` over a committed MemoryState."""

    def __init__(self, genesis: Genesis, key: NodeKey = AUTHORITY) -> None:
        self.genesis = genesis
        self.key = key
        block0, state0 = genesis_block(genesis, EmptyState())
        self.blocks: list[Block] = [block0]
        self.states: list[dict[bytes, bytes]] = []
        self.state = MemoryState()
        self.state.apply(state0.changes())
        self.states.append(dict(self.state.data))

    @property
    def tip(self) -> BlockHeader:
        return self.blocks[-1].header

    def seal(self, transactions: Sequence[Transaction], timestamp: int) -> Block:
        """The authority's side: apply each transaction, seal, commit."""
        working = open_block(self.state, timestamp, self.genesis)
        ctx = ApplyContext(time_ms=timestamp, genesis=self.genesis)
        for t in transactions:
            apply_tx(working, t, ctx)
        block = seal_block(self.tip, transactions, working, timestamp, self.key)
        self.blocks.append(block)
        self.state.apply(working.changes())
        self.states.append(dict(self.state.data))
        return block

    def base_before(self, height: int) -> MemoryState:
        """The committed state a follower holds just before applying block `height`."""
        return MemoryState.holding(self.states[height - 1])


def job_chain() -> Chain:
    """Genesis plus two blocks: accounts, a miner and a job; then claim and completion."""
    from chain.jobs import get_job
    from chain.receipts import receipt_body, sign_receipt

    chain = Chain(make_genesis())
    t1 = T0 + 1_000
    chain.seal(
        [
            tx("account.create", t1 - 5, name="alice", role="client", key_hash=key_hash("alice-key")),
            tx("account.create", t1 - 4, name="minnie", role="miner", key_hash=key_hash("minnie-key")),
            tx(
                "miner.register",
                t1 - 3,
                miner_id="gpu-1",
                owner="minnie",
                capabilities=["llama3.2"],
                gpu_info={"name": "RTX 4090", "memory": "24GB"},
            ),
            tx(
                "job.submit",
                t1 - 2,
                job_id="job-1",
                client="alice",
                prompt="Übersetze: café ☕ 1.0",
                model="llama3.2",
                params={"max_tokens": 64, "temperature": 1.0, "top_p": 0.5},
            ),
        ],
        t1,
    )
    t2 = T0 + 2_000
    claim = tx("job.claim", t2 - 10, job_id="job-1", miner_id="gpu-1", owner="minnie")
    working = WorkingState(chain.state)
    apply_tx(working, claim, ApplyContext(time_ms=t2, genesis=chain.genesis))
    job = get_job(working, "job-1")
    result = "Translate: coffee, one point zero"
    body = receipt_body(
        receipt_id="rcpt-1",
        job=job,
        provider="gpu-1",
        result=result,
        completed_at_ms=t2,
        price_per_unit=chain.genesis.params.price_per_unit("llama3.2"),
        coordinator_id=chain.genesis.chain_id,
    )
    complete = tx(
        "job.complete",
        t2 - 1,
        job_id="job-1",
        miner_id="gpu-1",
        owner="minnie",
        result=result,
        completed_at=t2,
        receipt=sign_receipt(body, AUTHORITY),
    )
    chain.seal([claim, complete], t2)
    return chain
