"""Receipt signature checks in a worker process, so that a follower checks the completions of
block N+1 on another core while it applies block N.

The worker is the one process of a concurrent.futures.ProcessPoolExecutor, started with
"spawn": the node runs threads and an event loop, whose locks a forked child could inherit
held. It is given each block's job.complete transactions as their canonical bytes, and runs
chain.receipts.completion_signers, the same code the transition runs, on each. The parent keys
the answers by the transaction hashes it computed itself and passes them to
chain.transition.apply_block (ApplyContext.checked), so that applying those transactions takes
them instead of checking again. Anything that goes wrong with the worker (it cannot start,
dies, answers late or nonsense) turns it off for good, with one warning: the parent then checks
everything itself, as it would on one core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from typing import Any

from chain.context import Signers
from chain.encoding import decode
from chain.errors import EncodingError
from chain.receipts import completion_signers
from chain.transactions import Transaction

log = logging.getLogger("aitbc.sigcheck")

ANSWER_DEADLINE_S = 60.0
"""How long an answer may take; a batch of 10,000 completions needs under a second."""
CLOSE_WAIT_S = 5.0
"""How long close() lets the worker finish the batch it is on before killing it."""
KEY_BYTES = 32


def check(raws: list[bytes]) -> list[Signers]:
    """The worker's job: the signers of each transaction's receipt (transactions given as their
    canonical bytes, which pickle as one copy each, unlike the decoded objects)."""
    return [completion_signers(_receipt_of(raw)) for raw in raws]


def _receipt_of(raw: bytes) -> Any:
    try:
        tx = decode(raw)
    except EncodingError:
        return None
    payload = tx.get("payload") if isinstance(tx, dict) else None
    return payload.get("receipt") if isinstance(payload, dict) else None


def _is_signers(answer: object) -> bool:
    """Whether an answer has the shape the transition takes as checked signers."""
    return (
        isinstance(answer, tuple)
        and len(answer) == 2
        and all(key is None or (isinstance(key, bytes) and len(key) == KEY_BYTES) for key in answer)
    )


def _init_worker() -> None:
    """The worker's initializer. Ctrl-C reaches the whole process group: the parent decides when
    the worker stops (close()), so it neither dies first nor prints a traceback. And should the
    parent die without closing it (killed), the worker exits too: its job queue would not tell
    it, as it holds both ends of that pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="aitbc-sigcheck-parent", daemon=True).start()


def _exit_with(parent: BaseProcess) -> None:
    parent.join()  # returns once the parent has exited
    os._exit(0)


class SignatureChecker:
    """The parent's side: send blocks' completions, and collect the answers in the same order.

    The worker takes its jobs in the order they are sent, so it can be given the next blocks
    while it still works on one; the executor's own threads pickle and pass them, so the caller
    never waits on a pipe.
    """

    def __init__(
        self,
        check: Callable[[list[bytes]], list[Signers]] = check,
        deadline_s: float = ANSWER_DEADLINE_S,
    ) -> None:
        self.check = check
        """What the worker runs on each batch (a test may give another module-level function)."""
        self.deadline_s = deadline_s
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[int] | None = None
        """The worker's first job: its process id, once it has started and imported what it needs."""
        self._off = False
        self._pending: deque[tuple[Sequence[Transaction], Future[list[Signers]] | None]] = deque()

    def start(self, *, wait: bool = False) -> None:
        """Start the worker now rather than at the first request (it takes a fraction of a
        second to import); wait=True also waits until it is ready."""
        if self._off:
            return
        try:
            self._started()
            if wait and self._ready is not None:
                self._ready.result(timeout=self.deadline_s)
        except Exception as exc:  # whatever stops the worker, this process checks alone
            self._turn_off(f"cannot start it: {_describe(exc)}")

    @property
    def outstanding(self) -> int:
        """Requests sent (or skipped) and not yet collected."""
        return len(self._pending)

    def send(self, txs: Sequence[Transaction]) -> None:
        """Queue these job.complete transactions for checking; collect() answers in order."""
        if not txs or self._off:
            self._pending.append(((), None))  # nothing to check, or the parent checks it
            return
        try:
            future = self._started().submit(self.check, [tx.encoded for tx in txs])
        except Exception as exc:  # a broken or unstartable pool: this process checks alone
            self._turn_off(f"cannot give it work: {_describe(exc)}")
            self._pending.append(((), None))
            return
        self._pending.append((txs, future))

    def collect(self) -> tuple[float, dict[str, Signers]]:
        """Wait for the answer to the oldest request. Return the seconds spent waiting for it
        and the signers found, by transaction hash (hex); empty if the worker could not say."""
        if not self._pending:
            return 0.0, {}
        txs, future = self._pending.popleft()
        if future is None or self._off:
            return 0.0, {}
        started = time.perf_counter()
        try:
            answers = future.result(timeout=self.deadline_s)
            if len(answers) != len(txs) or not all(_is_signers(a) for a in answers):
                raise ValueError("it answered something other than the signers of each completion")
        except Exception as exc:  # died, late, raised or nonsense: this process checks alone
            self._turn_off(_describe(exc))
            return 0.0, {}
        waited = time.perf_counter() - started
        return waited, {tx.hash.hex(): signers for tx, signers in zip(txs, answers, strict=True)}

    def discard_all(self) -> None:
        """Drop every outstanding request, so that the next one starts clean: those the worker
        has not taken are cancelled, and the answer to the one it is on is ignored."""
        while self._pending:
            _, future = self._pending.popleft()
            if future is not None:
                future.cancel()

    def close(self) -> None:
        """Stop the worker: it finishes the batch it is on (killed if that takes longer than
        CLOSE_WAIT_S) and exits; nothing of it is left running."""
        self.discard_all()
        pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool, CLOSE_WAIT_S)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
            # The pool starts its process at the first job: this one, which also tells when the
            # worker has started.
            self._ready = self._pool.submit(os.getpid)
        return self._pool

    def _turn_off(self, why: str) -> None:
        log.warning("signature helper process turned off (%s); verifying on this process alone", why)
        self._off = True
        self.discard_all()
        pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool, 0.0)  # it may be stuck: kill it now


def _stop(pool: ProcessPoolExecutor, grace_s: float) -> None:
    """Shut the pool down, and make sure its worker has exited (and is reaped) on return."""
    workers = list(pool._processes.values()) if pool._processes else []
    pool.shutdown(wait=False, cancel_futures=True)  # the worker exits after the job it is on
    for worker in workers:
        worker.join(grace_s)
        if worker.exitcode is None:
            worker.kill()
            worker.join()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the deadline"
    return str(exc) or type(exc).__name__
