"""Receipt signature checks in a helper process, so that a follower checks the completions of
block N+1 on another core while it applies block N.

The helper is `python -m node.sigcheck`, fed over its stdin and answering on its stdout:

  request   u32 length, then per job.complete transaction: u32 length, its canonical bytes
  answer    per transaction: a flags byte (1: the receipt's authority signature verifies,
            2: its miner co-signature verifies), then the 32-byte key of each (zeros if not)

It runs chain.receipts.completion_signers, the same code the transition runs, on each
transaction. The parent keys the answers by the transaction hashes it computed itself and
passes them to chain.transition.apply_block (ApplyContext.checked), so that applying those
transactions takes them instead of checking again. Anything that goes wrong with the helper (it cannot start, dies,
answers late or nonsense) turns it off for good, with one warning: the parent then checks
everything itself, as it would on one core.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from chain.context import Signers
from chain.encoding import decode
from chain.errors import EncodingError
from chain.receipts import completion_signers
from chain.transactions import Transaction

log = logging.getLogger("aitbc.sigcheck")

ANSWER_DEADLINE_S = 60.0
"""How long an answer may take; a batch of 10,000 completions needs under a second."""
MAX_REQUEST_BYTES = 256 * 1024 * 1024
PIPE_BYTES = 1024 * 1024
ANSWER_BYTES = 65
READY = b"R"
"""The helper's first byte: it has started and imported what it needs."""
NO_KEY = bytes(32)


def encode_request(txs: Sequence[Transaction]) -> bytes:
    body = b"".join(struct.pack(">I", len(tx.encoded)) + tx.encoded for tx in txs)
    return struct.pack(">I", len(body)) + body


def answer(body: bytes) -> bytes:
    """Check every transaction in a request body; ANSWER_BYTES each."""
    out = bytearray()
    at, end = 0, len(body)
    while at < end:
        (size,) = struct.unpack_from(">I", body, at)
        raw = body[at + 4 : at + 4 + size]
        at += 4 + size
        receipt_key, miner_key = completion_signers(_receipt_of(raw))
        out.append((1 if receipt_key else 0) | (2 if miner_key else 0))
        out += receipt_key or NO_KEY
        out += miner_key or NO_KEY
    return bytes(out)


def _receipt_of(raw: bytes) -> Any:
    try:
        tx = decode(raw)
    except EncodingError:
        return None
    payload = tx.get("payload") if isinstance(tx, dict) else None
    return payload.get("receipt") if isinstance(payload, dict) else None


def read_answer(data: bytes) -> Signers:
    flags, receipt_key, miner_key = data[0], data[1:33], data[33:65]
    if flags > 3:
        raise OSError("it answered flags it does not define")
    return (receipt_key if flags & 1 else None), (miner_key if flags & 2 else None)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The helper's loop: say it is ready, then answer requests until stdin closes (the
    parent went away)."""
    stdout.write(READY)
    stdout.flush()
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (size,) = struct.unpack(">I", head)
        body = stdin.read(size)
        if len(body) < size:
            return
        stdout.write(answer(body))
        stdout.flush()


class SignatureChecker:
    """The parent's side: send blocks' completions, and collect the answers in the same order.

    Requests are written by a sender thread, so the caller never waits on the pipe, and the
    helper can be given the next blocks while it still works on one. (It cannot dead-lock: the
    helper only ever waits to write the oldest answer, which is the next one collected.)
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else [sys.executable, "-m", "node.sigcheck"]
        """How to start the helper (a test may give another program)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._greeted = False
        self._off = False
        self._pending: deque[tuple[Sequence[Transaction], Future[None] | None]] = deque()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="aitbc-sigcheck-send")

    def start(self, *, wait: bool = False) -> None:
        """Start the helper now rather than at the first request (it takes a fraction of a
        second to import); wait=True also waits until it is ready."""
        if self._off:
            return
        try:
            self._process()
            if wait:
                self._greet()
        except OSError as exc:
            self._turn_off(f"cannot start it: {exc}")

    @property
    def outstanding(self) -> int:
        """Requests sent (or skipped) and not yet collected."""
        return len(self._pending)

    def send(self, txs: Sequence[Transaction]) -> None:
        """Queue these job.complete transactions for checking; collect() answers in order."""
        request = encode_request(txs) if txs and not self._off else b""
        if not request or len(request) > MAX_REQUEST_BYTES:
            self._pending.append(((), None))  # nothing to check, or too big: the parent checks it
            return
        try:
            proc = self._process()
        except OSError as exc:
            self._turn_off(f"cannot start it: {exc}")
            self._pending.append(((), None))
            return
        self._pending.append((txs, self._sender.submit(_write_all, proc, request)))

    def collect(self) -> tuple[float, dict[str, Signers]]:
        """Wait for the answer to the oldest request. Return the seconds spent waiting for it
        and the signers found, by transaction hash (hex); empty if the helper could not say."""
        if not self._pending:
            return 0.0, {}
        txs, sent = self._pending.popleft()
        if sent is None or self._off:
            return 0.0, {}
        assert self._proc is not None and self._proc.stdout is not None
        started = time.perf_counter()
        try:
            self._greet()
            sent.result()
            data = _read_exact(self._proc.stdout.fileno(), len(txs) * ANSWER_BYTES, ANSWER_DEADLINE_S)
            answers = [read_answer(data[i : i + ANSWER_BYTES]) for i in range(0, len(data), ANSWER_BYTES)]
        except (OSError, ValueError) as exc:
            self._turn_off(str(exc))
            return 0.0, {}
        waited = time.perf_counter() - started
        return waited, {tx.hash.hex(): signers for tx, signers in zip(txs, answers, strict=True)}

    def discard_all(self) -> None:
        """Read and drop every outstanding answer, so that the next request starts clean."""
        while self._pending:
            self.collect()

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        proc, self._proc = self._proc, None
        self._pending.clear()
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the helper's read sees end of input and it exits
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def _greet(self) -> None:
        if not self._greeted:
            assert self._proc is not None and self._proc.stdout is not None
            if _read_exact(self._proc.stdout.fileno(), len(READY), ANSWER_DEADLINE_S) != READY:
                raise OSError("it did not start as expected")
            self._greeted = True

    def _process(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            self._greeted = False
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                close_fds=True,
            )
            if hasattr(fcntl, "F_SETPIPE_SZ") and self._proc.stdin is not None:
                # Room for a block's request, so the helper finds the next one waiting.
                try:
                    fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
                except OSError:
                    pass  # above the system's limit: the sender thread then waits a little longer
        return self._proc

    def _turn_off(self, why: str) -> None:
        log.warning("signature helper process turned off (%s); verifying on this process alone", why)
        self._off = True
        self._pending.clear()
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _write_all(proc: subprocess.Popen[bytes], request: bytes) -> None:
    assert proc.stdin is not None
    view = memoryview(request)
    while view:
        view = view[proc.stdin.write(view) or 0 :]


def _read_exact(fd: int, size: int, deadline_s: float) -> bytes:
    """size bytes from fd, or OSError if it ends or they take longer than deadline_s."""
    out = bytearray()
    deadline = time.monotonic() + deadline_s
    while len(out) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OSError(f"no answer within {deadline_s:.0f} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, size - len(out))
        if not chunk:
            raise OSError("it exited")
        out += chunk
    return bytes(out)


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the parent decides when this stops (by closing
    # its end of the pipe), so the helper neither dies first nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
