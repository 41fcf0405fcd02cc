"""The reference miner (`aitbc-node mine`) against a real node, with the echo backend and
with the ollama backend talking to a fake Ollama server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from node.client import Client
from tests.support import ALL_KEYS, CLIENT_A, MINER_1, NodeProcess, aitbc_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("miner") / "data", api_keys=ALL_KEYS) as n:
        yield n


class FakeOllama(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOllama.seen.append({"path": self.path, **body})
        if "boom" in body["prompt"]:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        answer = json.dumps(
            {"model": body["model"], "response": f"ollama says: {body['prompt']}", "done": True}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ollama() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class MinerProcess:
    def __init__(self, node: NodeProcess, *args: str) -> None:
        self.proc = subprocess.Popen(
            aitbc_node("mine", "--node", node.url, "--api-key", MINER_1["key"], *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out


async def submit_and_wait(node: NodeProcess, prompts: list[str], model: str | None = None) -> list[dict[str, Any]]:
    async with Client(node.url, CLIENT_A["key"]) as client:
        jobs = [await client.submit(p, model=model) for p in prompts]
        return [await client.wait_for_result(j["job_id"], timeout=60) for j in jobs]


def drain(node: NodeProcess) -> None:
    """Cancel leftover pending jobs so that each test's miner sees only its own."""
    from tests.support import ADMIN

    with node.client(ADMIN["key"]) as http:
        for job in http.get("/v1/jobs", params={"status": "pending", "limit": 100}).json():
            http.post(f"/v1/jobs/{job['job_id']}/cancel")


def test_mine_with_the_echo_backend_completes_jobs_and_stops_on_sigint(node: NodeProcess, tmp_path: Path) -> None:
    drain(node)
    key_file = tmp_path / "miner.key"
    miner = MinerProcess(
        node, "--miner-id", "echo-1", "--backend", "echo", "--concurrency", "2", "--signing-key", str(key_file)
    )
    try:
        done = asyncio.run(submit_and_wait(node, ["one two", "three four five", "six"]))
    finally:
        code, out = miner.interrupt()
    assert [j["status"] for j in done] == ["completed"] * 3
    assert [j["result"] for j in done] == ["one two", "three four five", "six"]
    assert code == 0, out
    assert "registered miner echo-1" in out and "co-signing" in out
    assert out.count("completed job_") == 3 and "jobs/min" in out
    assert "miner echo-1 stopped: 3 done, 0 failed" in out
    assert key_file.stat().st_mode & 0o777 == 0o600
    with node.client(CLIENT_A["key"]) as http:
        receipt = http.get(f"/v1/receipts/{done[0]['receipt_id']}").json()
    assert "miner_signature" in receipt


def test_mine_with_the_ollama_backend_asks_ollama_and_reports_its_failures(node: NodeProcess, ollama: str) -> None:
    drain(node)
    FakeOllama.seen.clear()
    miner = MinerProcess(
        node,
        "--miner-id",
        "ollama-1",
        "--backend",
        "ollama",
        "--ollama-url",
        ollama,
        "--model",
        "llama3.2",
        "--poll-max",
        "0.5",
    )
    try:
        (ok,) = asyncio.run(submit_and_wait(node, ["Say hello"]))

        async def failing() -> dict[str, Any]:
            async with Client(node.url, CLIENT_A["key"]) as client:
                job = await client.submit("boom please")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    current = await client.job(job["job_id"])
                    if current.get("error"):
                        return current
                    await asyncio.sleep(0.1)
                raise AssertionError("the failure was never reported")

        failed = asyncio.run(failing())
    finally:
        code, out = miner.interrupt()
    assert ok["status"] == "completed" and ok["result"] == "ollama says: Say hello"
    assert FakeOllama.seen[0]["path"] == "/api/generate" and FakeOllama.seen[0]["model"] == "llama3.2"
    assert FakeOllama.seen[0]["stream"] is False and FakeOllama.seen[0]["options"]["num_predict"] == 256
    assert "ollama answered 500" in failed["error"]
    assert code == 0, out
    assert "failed job_" in out


def test_mine_refused_by_the_node_exits_1_with_its_reason(node: NodeProcess) -> None:
    done = subprocess.run(
        aitbc_node("mine", "--node", node.url, "--api-key", CLIENT_A["key"], "--miner-id", "x"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "the node refused: 403 forbidden" in done.stderr
