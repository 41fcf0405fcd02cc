"""A hostile upstream: a fake node written here serves one wrong block; the follower refuses it.

The fake speaks just enough of the sync protocol (GET /v1/chain/blocks; no websocket, so the
follower falls back to long-polling). Each case checks that the follower stores nothing bad,
says "degraded" on /health naming the failed check, logs it, keeps retrying, and that its
data dir still verifies.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chain.blocks import Block, seal_header
from chain.transactions import Transaction
from tests.chain.devchain import AUTHORITY, OUTSIDER, genesis_doc, job_chain
from tests.e2e.replication import follower, health, send_json, wait_until
from tests.support import run_cli


class FakeUpstream:
    """Serves `blocks` (raw bytes, keyed by the height they are served as) over HTTP."""

    def __init__(self, genesis_hash: str, served: list[tuple[int, bytes]]) -> None:
        self.genesis_hash = genesis_hash
        self.served = served
        self.block_requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/v1/chain/blocks":
                    self.send_error(404)
                    return
                fake.block_requests += 1
                start = int(urllib.parse.parse_qs(url.query).get("from", ["1"])[0])
                raws = [raw for height, raw in fake.served if height >= start]
                head = {"genesis_hash": fake.genesis_hash, "height": max(h for h, _ in fake.served)}
                send_json(self, b'{"blocks":[' + b",".join(raws) + b'],"head":' + json.dumps(head).encode() + b"}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


CHAIN = job_chain()
BLOCK1, BLOCK2 = CHAIN.blocks[1], CHAIN.blocks[2]


def resealed(block: Block, **header_changes: object) -> Block:
    """The block with its header changed and properly signed again by the real authority."""
    header = replace(block.header, **header_changes)  # type: ignore[arg-type]  # header fields, by name and value
    return Block(header, seal_header(header, AUTHORITY), block.transactions)


def altered_byte() -> list[tuple[int, bytes]]:
    raw = BLOCK1.encode()
    at = raw.index("café".encode())
    return [(1, raw[:at] + b"k" + raw[at + 1 :])]


def bad_signature() -> list[tuple[int, bytes]]:
    sig = BLOCK1.signature
    flipped = ("0" if sig[10] != "0" else "1").join((sig[:10], sig[11:]))
    return [(1, Block(BLOCK1.header, flipped, BLOCK1.transactions).encode())]


def wrong_state_root() -> list[tuple[int, bytes]]:
    return [(1, resealed(BLOCK1, state_root="ab" * 32).encode())]


def height_gap() -> list[tuple[int, bytes]]:
    return [(2, BLOCK2.encode())]


def forged_receipt() -> list[tuple[int, bytes]]:
    from chain.blocks import tx_root
    from chain.receipts import sign_receipt

    claim, complete = BLOCK2.transactions
    receipt = {k: v for k, v in complete.payload["receipt"].items() if k != "signature"}
    forged = Transaction(
        complete.type, {**complete.payload, "receipt": sign_receipt(receipt, OUTSIDER)}, complete.timestamp
    )
    txs = (claim, forged)
    block = resealed(Block(BLOCK2.header, "", txs), tx_root=tx_root(txs))
    return [(1, BLOCK1.encode()), (2, Block(block.header, block.signature, txs).encode())]


CASES: dict[str, tuple[Callable[[], list[tuple[int, bytes]]], str, int, int]] = {
    # name: (what the fake serves, the check the follower must name, the block it rejects,
    #        the height it must stay at)
    "one altered byte": (altered_byte, "bad_tx_root", 1, 0),
    "bad proposer signature": (bad_signature, "bad_signature", 1, 0),
    "wrong state_root": (wrong_state_root, "bad_state_root", 1, 0),
    "height gap": (height_gap, "bad_height", 2, 0),
    "forged receipt signature": (forged_receipt, "receipt_signature_invalid", 2, 1),
}


@pytest.fixture
def genesis_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(genesis_doc()))
    yield path


@pytest.mark.parametrize("case", list(CASES))
def test_follower_rejects_a_bad_block_stores_nothing_and_reports_the_check(
    case: str, tmp_path: Path, genesis_file: Path
) -> None:
    serve, check, rejected, stays_at = CASES[case]
    with FakeUpstream(CHAIN.genesis.hash, serve()) as fake:
        node = follower(tmp_path, "follower", fake.url, genesis_file, peer_key="any-peer-key-0000000000")
        with node:
            h = wait_until(
                lambda: (lambda x: x if x["status"] == "degraded" else None)(health(node)), "degraded health"
            )
            assert h["check"] == check, h
            assert h["reason"].startswith(f"rejected block {rejected} from the upstream"), h
            assert h["height"] == stays_at and h["role"] == "follower"
            seen = fake.block_requests
            wait_until(lambda: fake.block_requests > seen, "the follower to retry")
            h = health(node)
            assert h["status"] == "degraded" and h["check"] == check and h["height"] == stays_at
            with node.client() as http:
                metrics = http.get("/metrics").text
                sync = http.get("/status").json()["sync"]
            rejected_line = next(
                line
                for line in metrics.splitlines()
                if line.startswith(f'aitbc_sync_rejected_blocks_total{{reason="{check}"}}')
            )
            assert float(rejected_line.split()[-1]) >= 2  # the first rejection and the retry
            assert sync["upstream"] and sync["lag_blocks"] >= 1
        log = "".join(node.output)
        assert f"check: {check}" in log
    result = run_cli("verify", "--data-dir", str(node.data_dir))
    assert result.returncode == 0, result.stderr
    assert f"ok: {stays_at + 1} blocks" in result.stdout
