"""The follower's block pipeline: receipt signatures checked ahead in a helper process, blocks
applied in order and committed on a writer thread."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chain.blocks import Block, seal_header, tx_root
from chain.context import Signers
from chain.crypto import NodeKey, b64url
from chain.transactions import Transaction
from node import sigcheck
from node.catchup import BlockPipeline, equivocation
from node.sigcheck import SignatureChecker
from node.store import Store
from tests.chain.devchain import AUTHORITY, OUTSIDER, T0, Chain, job_chain, key_hash, make_genesis, tx

CHAIN = job_chain()
COMPLETE = next(t for t in CHAIN.blocks[2].transactions if t.type == "job.complete")


def forge_receipt(tx: Transaction) -> Transaction:
    receipt = tx.payload["receipt"]
    forged = {**receipt, "signature": {**receipt["signature"], "sig": b64url(bytes(64))}}
    return Transaction(tx.type, {**tx.payload, "receipt": forged}, tx.timestamp)


def block_with(block: Block, txs: tuple[Transaction, ...]) -> Block:
    """The block with other transactions: a matching tx_root and a valid seal, so only the
    transactions themselves can be wrong."""
    header = replace(block.header, tx_root=tx_root(txs))
    return Block(header, seal_header(header, AUTHORITY), txs)


FORGED_BLOCK = block_with(
    CHAIN.blocks[2], tuple(forge_receipt(t) if t is COMPLETE else t for t in CHAIN.blocks[2].transactions)
)


def worker_pid(checker: SignatureChecker) -> int:
    """The helper's process id (it answers its first job with it), once it has started."""
    assert checker._ready is not None
    return checker._ready.result(timeout=60)


def gone(pid: int) -> bool:
    """Whether the process has exited and been reaped: it is no longer in the process table."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie, waiting to be reaped by a parent
    it was handed to, has exited)."""
    if gone(pid):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc, or it has just been reaped
        return not gone(pid)


# Helpers that misbehave, given to SignatureChecker in place of sigcheck.check. The helper
# process imports them from this module, so they are defined at its top level.
def exits_at_once(raws: list[bytes]) -> list[Signers]:
    os._exit(3)


def answers_nonsense(raws: list[bytes]) -> list[Signers]:
    return [(b"?", None) for _ in raws]


def answers_too_few(raws: list[bytes]) -> list[Signers]:
    return sigcheck.check(raws)[1:]


def raises(raws: list[bytes]) -> list[Signers]:
    raise RuntimeError("a bug in the helper")


def hangs(raws: list[bytes]) -> list[Signers]:
    time.sleep(600)
    return sigcheck.check(raws)


@pytest.fixture
def checker() -> Iterator[SignatureChecker]:
    c = SignatureChecker()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[BlockPipeline]:
    store = Store(tmp_path / "chain", CHAIN.genesis)
    p = BlockPipeline(store, CHAIN.genesis)
    try:
        yield p
    finally:
        p.close()
        store.close()


def test_the_helper_process_answers_each_completions_signers(checker: SignatureChecker) -> None:
    forged = forge_receipt(COMPLETE)
    checker.send([COMPLETE, forged])
    waited, checked = checker.collect()
    assert waited >= 0
    assert checked == {COMPLETE.hash.hex(): (AUTHORITY.public_key, None), forged.hash.hex(): (None, None)}
    assert checker.collect() == (0.0, {})  # nothing more was asked


def test_the_pipeline_stores_valid_blocks_in_order_and_the_helper_stays_on(pipeline: BlockPipeline) -> None:
    stored, rejected = pipeline.run(list(CHAIN.blocks[1:]))
    assert rejected is None and [b.height for b in stored] == [1, 2]
    assert pipeline.store.tip() == CHAIN.tip
    assert pipeline._checker._pool is not None and not pipeline._checker._off
    assert running(worker_pid(pipeline._checker))


@pytest.mark.parametrize("helper", ["on", "dead"])
def test_a_forged_receipt_signature_is_rejected_with_or_without_the_helper(
    pipeline: BlockPipeline, helper: str, caplog: pytest.LogCaptureFixture
) -> None:
    stored, rejected = pipeline.run([CHAIN.blocks[1]])
    assert rejected is None and len(stored) == 1
    if helper == "dead":
        pipeline.start()  # (already started: block 1 had no completion to check, but was sent)
        os.kill(worker_pid(pipeline._checker), signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="aitbc.sigcheck"):
        stored, rejected = pipeline.run([FORGED_BLOCK])
    assert stored == [] and rejected is not None
    assert (rejected.height, rejected.check) == (2, "receipt_signature_invalid")
    assert pipeline.store.tip() == CHAIN.blocks[1].header
    if helper == "dead":
        assert "signature helper process turned off" in caplog.text
        # and the valid block is still verified and stored, by this process alone
        stored, rejected = pipeline.run([CHAIN.blocks[2]])
        assert rejected is None and pipeline.store.tip() == CHAIN.tip


def test_a_rejection_after_a_stored_block_reports_that_block_stored(pipeline: BlockPipeline) -> None:
    stored, rejected = pipeline.run([CHAIN.blocks[1], FORGED_BLOCK])
    assert [b.height for b in stored] == [1] and rejected is not None and rejected.height == 2
    assert pipeline.store.tip() == CHAIN.blocks[1].header


def test_a_prepared_block_that_is_never_committed_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "chain", CHAIN.genesis)
    try:
        block = CHAIN.blocks[1]
        from chain.transition import apply_block

        state = apply_block(store, store.tip(), block, CHAIN.genesis)
        store.prepare_block(block, state.changes())
        assert (
            store.tip().height == 0
            and store.block_bytes(1) is None
            and store.tx_count() == len(CHAIN.blocks[0].transactions)
        )
        store.commit(store.prepare_block(block, state.changes()))
        assert store.tip() == block.header and store.block_bytes(1) == block.encode()
    finally:
        store.close()


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_checks_the_helper_is_not_given_are_made_by_the_pipeline_itself(pipeline: BlockPipeline, share: float) -> None:
    pipeline.share = share
    pipeline._balance(0.0)  # an answer that was ready: the helper gets more, at most all
    assert share <= pipeline.share <= 1.0
    pipeline.share = share
    stored, rejected = pipeline.run([CHAIN.blocks[1], FORGED_BLOCK])
    assert [b.height for b in stored] == [1] and rejected is not None
    assert rejected.check == "receipt_signature_invalid"


def test_the_helper_gets_less_when_the_pipeline_waits_for_it_and_more_when_it_does_not(pipeline: BlockPipeline) -> None:
    assert pipeline.share == 1.0
    for _ in range(100):
        pipeline._balance(1.0)
    assert pipeline.share == 0.0
    pipeline._balance(0.0)
    assert 0.0 < pipeline.share < 1.0
    for _ in range(100):
        pipeline._balance(0.0)
    assert pipeline.share == 1.0


def test_a_started_helper_says_it_is_ready(checker: SignatureChecker) -> None:
    checker.start(wait=True)
    assert checker._ready is not None and checker._ready.done()
    assert running(worker_pid(checker))


@pytest.mark.parametrize("check", [exits_at_once, answers_nonsense, answers_too_few, raises, hangs])
def test_a_helper_that_misbehaves_is_turned_off_and_nothing_changes(
    tmp_path: Path, check: Callable[[list[bytes]], list[Signers]], caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "chain", CHAIN.genesis)
    pipeline = BlockPipeline(store, CHAIN.genesis)
    pipeline._checker = SignatureChecker(check, deadline_s=5.0)
    pipeline.start(wait=True)
    pid = worker_pid(pipeline._checker)
    try:
        with caplog.at_level(logging.WARNING, logger="aitbc.sigcheck"):
            stored, rejected = pipeline.run([CHAIN.blocks[1], FORGED_BLOCK])
            assert [b.height for b in stored] == [1] and rejected is not None
            assert rejected.check == "receipt_signature_invalid"
            stored, rejected = pipeline.run([CHAIN.blocks[2]])
        assert rejected is None and store.tip() == CHAIN.tip
        assert caplog.text.count("signature helper process turned off") == 1
        assert gone(pid)  # turned off: its process has exited and been reaped, stuck or not
    finally:
        pipeline.close()
        store.close()


def test_answers_for_blocks_a_run_did_not_reach_are_dropped(pipeline: BlockPipeline) -> None:
    bad_first = Block(
        replace(CHAIN.blocks[1].header, state_root="00" * 32), CHAIN.blocks[1].signature, CHAIN.blocks[1].transactions
    )
    stored, rejected = pipeline.run([bad_first, CHAIN.blocks[2]])  # block 2 was sent to the helper ahead
    assert stored == [] and rejected is not None and rejected.height == 1
    assert pipeline._checker.outstanding == 0
    stored, rejected = pipeline.run(list(CHAIN.blocks[1:]))  # the next run's answers are its own
    assert [b.height for b in stored] == [1, 2] and rejected is None


@pytest.mark.parametrize("check", [sigcheck.check, hangs])
def test_close_leaves_no_helper_process_behind(
    check: Callable[[list[bytes]], list[Signers]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sigcheck, "CLOSE_WAIT_S", 0.5)  # a helper stuck on a batch is killed after it
    checker = SignatureChecker(check)
    checker.start(wait=True)
    pid = worker_pid(checker)
    checker.send([COMPLETE])  # on it, or stuck on it, when closed
    checker.close()
    assert gone(pid)
    assert checker.outstanding == 0


def test_a_helper_whose_parent_is_killed_exits_too(tmp_path: Path) -> None:
    program = (
        "import sys, time\n"
        "from node.sigcheck import SignatureChecker\n"
        "checker = SignatureChecker()\n"
        "checker.start(wait=True)\n"
        "print(checker._ready.result(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert running(pid)
    finally:
        parent.kill()  # no close(), no atexit: only the helper itself can notice
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid)


# -- equivocation: another block at a height the store holds, sealed by a genesis authority --

SECOND = NodeKey(bytes(range(50, 82)))
"""A second genesis authority."""


def two_authority_chains() -> tuple[Chain, Chain]:
    """Two chains of one genesis with two authorities, forking at block 1: the first sealed by
    AUTHORITY, the other by SECOND."""
    genesis = make_genesis(authorities=[AUTHORITY.public_hex, SECOND.public_hex])
    ours, theirs = Chain(genesis, AUTHORITY), Chain(genesis, SECOND)
    ours.seal([tx("account.create", T0 + 990, name="a", role="client", key_hash=key_hash("a-key"))], T0 + 1_000)
    ours.seal([tx("account.create", T0 + 1_990, name="b", role="client", key_hash=key_hash("b-key"))], T0 + 2_000)
    theirs.seal([tx("account.create", T0 + 1_490, name="c", role="client", key_hash=key_hash("c-key"))], T0 + 1_500)
    return ours, theirs


def test_a_conflicting_block_sealed_by_another_authority_is_an_equivocation(tmp_path: Path) -> None:
    ours, theirs = two_authority_chains()
    store = Store(tmp_path / "chain", ours.genesis)
    pipeline = BlockPipeline(store, ours.genesis)
    try:
        stored, rejected = pipeline.run(ours.blocks[1:])
        assert rejected is None and len(stored) == 2
        found = equivocation(store, theirs.blocks[1])
        assert found is not None and found.height == 1
        assert (found.ours.hash, found.ours.sealer, found.ours.authority) == (
            ours.blocks[1].hash,
            AUTHORITY.public_hex,
            "authority 1 of 2",
        )
        assert (found.theirs.hash, found.theirs.sealer, found.theirs.authority) == (
            theirs.blocks[1].hash,
            SECOND.public_hex,
            "authority 2 of 2",
        )
        assert ours.blocks[1].hash in found.describe() and theirs.blocks[1].hash in found.describe()
        # the pipeline refuses it, naming the block, and the store keeps its own
        _, refused = pipeline.run([theirs.blocks[1]])
        assert refused is not None and refused.check == "bad_link" and refused.block == theirs.blocks[1]
        assert store.tip() == ours.tip
    finally:
        pipeline.close()
        store.close()


def test_a_conflicting_block_without_a_valid_authority_seal_proves_nothing(tmp_path: Path) -> None:
    ours, theirs = two_authority_chains()
    store = Store(tmp_path / "chain", ours.genesis)
    pipeline = BlockPipeline(store, ours.genesis)
    try:
        pipeline.run(ours.blocks[1:])
        forged = theirs.blocks[1]
        by_outsider = Block(replace(forged.header, proposer=OUTSIDER.public_hex), "", forged.transactions)
        by_outsider = Block(by_outsider.header, seal_header(by_outsider.header, OUTSIDER), forged.transactions)
        bad_signature = Block(forged.header, ours.blocks[1].signature, forged.transactions)
        assert equivocation(store, by_outsider) is None
        assert equivocation(store, bad_signature) is None
        assert equivocation(store, ours.blocks[1]) is None  # the same block
        beyond = Block(replace(forged.header, height=5), forged.signature, forged.transactions)
        assert equivocation(store, beyond) is None  # a height the store does not hold
    finally:
        pipeline.close()
        store.close()
