"""Receipt signature checks in a helper process, so that a follower checks the completions of
block N+1 on another core while it applies block N.

The helper is `python -m node.sigcheck`, fed over its stdin and answering on its stdout:

  request   u32 length, then per job.complete transaction: u32 length, its canonical bytes
  answer    per transaction: a flags byte (1: the receipt's authority signature verifies,
            2: its miner co-signature verifies), then the 32-byte key of each (zeros if not)

It runs chain.receipts.completion_signers, the same code the transition runs, on each
transaction. The parent notes the answers with chain.receipts.note_checked_completion under
the transaction hashes it computed itself, so that applying those transactions takes them
instead of checking again. Anything that goes wrong with the helper (it cannot start, dies,
answers late or nonsense) turns it off for good, with one warning: the parent then checks
everything itself, as it would on one core.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from chain.encoding import decode
from chain.errors import EncodingError
from chain.receipts import Signers, completion_signers, note_checked_completion
from chain.transactions import Transaction

log = logging.getLogger("aitbc.sigcheck")

ANSWER_DEADLINE_S = 60.0
"""How long an answer may take; a batch of 10,000 completions needs under a second."""
MAX_REQUEST_BYTES = 256 * 1024 * 1024
PIPE_BYTES = 1024 * 1024
ANSWER_BYTES = 65
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
        raw = body[at + 4:at + 4 + size]
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
    """The helper's loop: answer requests until stdin closes (the parent went away)."""
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
    """The parent's side: send a block's completions, later collect the answer. One request
    at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._off = False
        self._pending: Sequence[Transaction] | None = None

    def send(self, txs: Sequence[Transaction]) -> None:
        """Start checking these job.complete transactions (collect the previous answer first)."""
        assert self._pending is None, "collect the previous answer first"
        if self._off or not txs:
            return
        request = encode_request(txs)
        if len(request) > MAX_REQUEST_BYTES:
            return  # the parent checks these itself
        try:
            proc = self._process()
            assert proc.stdin is not None
            view = memoryview(request)
            while view:
                view = view[proc.stdin.write(view) or 0:]
        except (OSError, ValueError) as exc:
            self._turn_off(f"cannot send to it: {exc}")
            return
        self._pending = txs

    def collect(self) -> None:
        """Wait for the answer to the last request and note it for the transition."""
        txs, self._pending = self._pending, None
        if txs is None or self._off:
            return
        assert self._proc is not None and self._proc.stdout is not None
        try:
            data = _read_exact(self._proc.stdout.fileno(), len(txs) * ANSWER_BYTES, ANSWER_DEADLINE_S)
            answers = [read_answer(data[i:i + ANSWER_BYTES]) for i in range(0, len(data), ANSWER_BYTES)]
        except OSError as exc:
            self._turn_off(str(exc))
            return
        for tx, signers in zip(txs, answers, strict=True):
            note_checked_completion(tx.hash.hex(), signers)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        self._pending = None
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

    def _process(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "node.sigcheck"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                close_fds=True,
            )
            if hasattr(fcntl, "F_SETPIPE_SZ") and self._proc.stdin is not None:
                # Room for a whole block's request, so sending it does not wait for the helper.
                try:
                    fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
                except OSError:
                    pass  # above the system's limit: sending may then wait a little
        return self._proc

    def _turn_off(self, why: str) -> None:
        log.warning("signature helper process turned off (%s); verifying on this process alone", why)
        self._off = True
        self._pending = None
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


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
    serve(sys.stdin.buffer, sys.stdout.buffer)
