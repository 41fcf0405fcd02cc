"""The state transition: one function per transaction, one to apply a whole block.

The authority runs `apply_tx` while it builds a block and `seal_block` to close it; a
follower or `aitbc-node verify` runs `apply_block`, which recomputes and checks every
root and signature. It is the same code both times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from chain import accounts, idempotency, jobs, miners
from chain.blocks import Block, BlockHeader, check_seal, seal_header, tx_root
from chain.context import NOTHING_CHECKED, ApplyContext, Signers
from chain.crypto import NodeKey
from chain.errors import EncodingError, InvalidBlock, LedgerError
from chain.genesis import Genesis
from chain.state import ReadableState, WorkingState, state_root
from chain.transactions import Transaction

Handler = Callable[[WorkingState, dict[str, Any], ApplyContext], dict[str, Any]]

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "account.create": accounts.create_account,
        "account.revoke": accounts.revoke_account,
        "miner.register": miners.register_miner,
        "miner.heartbeat": miners.heartbeat,
        "job.submit": jobs.submit,
        "job.claim": jobs.claim,
        "job.claim_next": jobs.claim_next,
        "job.complete": jobs.complete,
        "job.fail": jobs.fail,
        "job.cancel": jobs.cancel,
        "job.requeue": jobs.requeue,
    }
)

GENESIS_STATE_ROOT = "00" * 32


def apply_tx(state: WorkingState, tx: Transaction, ctx: ApplyContext) -> dict[str, Any]:
    """Validate and apply one transaction. On error nothing is written to `state`."""
    if tx.timestamp > ctx.time_ms:
        raise LedgerError("transaction timestamp is after its block's", error_code="tx_from_future")
    scratch = state.child()
    payload = tx.payload
    parsed = None
    if idempotency.FIELD in payload:  # from 0.3.0: the write's idempotency key, recorded with it
        parsed = idempotency.check_unused(scratch, payload[idempotency.FIELD], ctx.time_ms)
        payload = {k: v for k, v in payload.items() if k != idempotency.FIELD}
    tx_hash = tx.hash.hex()
    result = HANDLERS[tx.type](
        scratch,
        payload,
        ApplyContext(time_ms=ctx.time_ms, genesis=ctx.genesis, tx_hash=tx_hash, checked=ctx.checked),
    )
    if parsed is not None:
        idempotency.record(scratch, parsed, tx.type, tx_hash, ctx.time_ms, result)
    scratch.merge_into_parent()
    return result


def open_block(base: ReadableState, time_ms: int, genesis: Genesis) -> WorkingState:
    """The working state of a block at time_ms over base, before its transactions: with the
    idempotency records expired by then deleted (at most max_block_txs, as many as a block can
    add; chain.idempotency). The sealing authority and every replica start a block here."""
    state = WorkingState(base)
    idempotency.expire(state, base, time_ms, genesis.params.max_block_txs)
    return state


def genesis_transactions(genesis: Genesis) -> tuple[Transaction, ...]:
    return tuple(
        Transaction(
            "account.create",
            {"name": a.name, "role": a.role, "key_hash": a.key_hash},
            genesis.genesis_time_ms,
        )
        for a in genesis.accounts
    )


def genesis_block(genesis: Genesis, base: ReadableState) -> tuple[Block, WorkingState]:
    """Block 0, derived from genesis.json alone; every node computes the same one."""
    state = WorkingState(base)
    txs = genesis_transactions(genesis)
    ctx = ApplyContext(time_ms=genesis.genesis_time_ms, genesis=genesis)
    for tx in txs:
        apply_tx(state, tx, ctx)
    header = BlockHeader(
        height=0,
        prev_hash=genesis.hash,
        timestamp=genesis.genesis_time_ms,
        tx_root=tx_root(txs),
        state_root=state_root(GENESIS_STATE_ROOT, state.changes()),
        tx_count=len(txs),
        proposer="",
    )
    return Block(header, "", txs), state


def seal_block(
    prev: BlockHeader,
    transactions: Sequence[Transaction],
    state: WorkingState,
    timestamp: int,
    key: NodeKey,
) -> Block:
    """Close a block over transactions already applied to `state` (the authority's side)."""
    header = BlockHeader(
        height=prev.height + 1,
        prev_hash=prev.hash,
        timestamp=timestamp,
        tx_root=tx_root(transactions),
        state_root=state_root(prev.state_root, state.changes()),
        tx_count=len(transactions),
        proposer=key.public_hex,
    )
    return Block(header, seal_header(header, key), tuple(transactions))


def apply_block(
    base: ReadableState,
    prev: BlockHeader,
    block: Block,
    genesis: Genesis,
    checked: Mapping[str, Signers] = NOTHING_CHECKED,
) -> WorkingState:
    """Verify a block against its predecessor and apply it; raise InvalidBlock naming the check.

    checked: receipt signatures of its completions already checked elsewhere (ApplyContext.checked)."""
    header = block.header
    h = header.height
    if h != prev.height + 1:
        raise InvalidBlock(f"block {h}: height does not follow {prev.height}", error_code="bad_height")
    if header.prev_hash != prev.hash:
        raise InvalidBlock(f"block {h}: prev_hash does not link to block {prev.height}", error_code="bad_link")
    if header.timestamp < prev.timestamp:
        raise InvalidBlock(f"block {h}: timestamp goes backwards", error_code="bad_timestamp")
    if header.tx_count != len(block.transactions) or header.tx_count == 0:
        raise InvalidBlock(f"block {h}: tx_count is wrong", error_code="bad_tx_count")
    if header.tx_root != tx_root(block.transactions):
        raise InvalidBlock(f"block {h}: tx_root does not match its transactions", error_code="bad_tx_root")
    check_seal(block, genesis.authorities)
    state = open_block(base, header.timestamp, genesis)
    ctx = ApplyContext(time_ms=header.timestamp, genesis=genesis, checked=checked)
    for i, tx in enumerate(block.transactions):
        try:
            apply_tx(state, tx, ctx)
        except (LedgerError, EncodingError) as exc:
            raise InvalidBlock(
                f"block {h}: transaction {i} ({tx.type}) is invalid: {exc.detail}", error_code="bad_transaction"
            ) from exc
    if header.state_root != state_root(prev.state_root, state.changes()):
        raise InvalidBlock(f"block {h}: state_root does not match the re-derived state", error_code="bad_state_root")
    return state
