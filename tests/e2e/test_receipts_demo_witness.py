"""`start --demo` shows blocks moving; `witness` alarms on an inconsistent checkpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.crypto import NodeKey
from chain.merkle import consistency_proof, merkle_root
from chain.proofs import sign_checkpoint
from tests.support import NodeProcess, genesis_doc, run_cli


def test_the_demo_shows_blocks_and_receipts_moving_within_seconds(tmp_path: Path) -> None:
    with (
        NodeProcess(tmp_path / "data", extra_args=("--demo",)) as node,
        httpx.Client(base_url=node.url, timeout=10) as http,
    ):
        start = http.get("/health").json()["height"]
        deadline = time.monotonic() + 20
        receipts: list[Any] = []
        while time.monotonic() < deadline:
            receipts = http.get("/explorer/receipts").json()
            if receipts and http.get("/health").json()["height"] >= start + 3:
                break
            time.sleep(0.2)
        assert http.get("/health").json()["height"] >= start + 3
        assert receipts and receipts[0]["provider"] == "demo-echo-miner"
    assert node.proc is not None and node.proc.returncode == 0


class FakeLog:
    """A 'node' whose checkpoints the test controls: entries, and whether to lie."""

    key = NodeKey(bytes(range(7, 39)))

    def __init__(self) -> None:
        self.entries = [b"block-0", b"block-1", b"block-2"]
        self.forged: list[bytes] | None = None

    def checkpoint(self) -> dict[str, Any]:
        entries = self.forged or self.entries
        root = merkle_root(entries)
        return {
            "chain_id": "fake",
            "size": len(entries),
            "root_hash": root.hex(),
            "signer": self.key.public_hex,
            "note": sign_checkpoint("fake", len(entries), root, self.key),
        }

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        entries = self.forged or self.entries
        return {"proof": [h.hex() for h in consistency_proof(entries[:new], old)]}


@pytest.fixture
def fake() -> Iterator[tuple[FakeLog, str]]:
    log = FakeLog()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = httpx.URL(self.path)
            if url.path == "/v1/chain/checkpoint":
                body = log.checkpoint()
            else:
                body = log.consistency(int(url.params["from"]), int(url.params["to"]))
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield log, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def witness(url: str, state: Path, genesis: Path | None = None) -> Any:
    extra = ("--genesis", str(genesis)) if genesis else ()
    return run_cli("witness", url, "--api-key", "k" * 20, "--state", str(state), "--once", *extra)


def test_a_witness_accepts_a_growing_log_and_alarms_on_a_rewritten_history(
    fake: tuple[FakeLog, str], tmp_path: Path
) -> None:
    log, url = fake
    state = tmp_path / "w.json"
    genesis = tmp_path / "genesis.json"
    doc = genesis_doc(FakeLog.key.public_hex)
    doc["chain_id"] = "fake"
    genesis.write_text(json.dumps(doc))
    assert witness(url, state, genesis).returncode == 0
    log.entries += [b"block-3", b"block-4"]
    first = witness(url, state, genesis)
    assert (first.returncode, first.stderr) == (0, "")
    assert json.loads(state.read_text())["size"] == 5
    log.forged = [b"block-0", b"rewritten", *log.entries[2:], b"block-5"]
    alarm = witness(url, state, genesis)
    assert alarm.returncode == 3
    assert "ALARM" in alarm.stderr and "not consistent" in alarm.stderr
    assert json.loads(state.read_text())["size"] == 5  # the last good checkpoint is kept


def test_a_witness_alarms_on_a_shrinking_chain_or_two_roots_for_one_size(
    fake: tuple[FakeLog, str], tmp_path: Path
) -> None:
    log, url = fake
    state = tmp_path / "w.json"
    assert witness(url, state).returncode == 0
    log.forged = [b"block-0", b"block-1", b"other"]
    same_size = witness(url, state)
    assert same_size.returncode == 3 and "two different roots for size 3" in same_size.stderr
    log.forged = [b"block-0"]
    shrunk = witness(url, state)
    assert shrunk.returncode == 3 and "shrank from 3 to 1" in shrunk.stderr


def test_a_witness_alarms_on_a_checkpoint_signed_by_an_untrusted_key(fake: tuple[FakeLog, str], tmp_path: Path) -> None:
    _, url = fake
    other = tmp_path / "genesis.json"
    other.write_text(json.dumps(genesis_doc(NodeKey(bytes(32)).public_hex)))
    bad = witness(url, tmp_path / "w.json", other)
    assert bad.returncode == 3 and "no valid signature by a trusted key" in bad.stderr
