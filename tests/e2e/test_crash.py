"""Kill -9 under a mixed load, many times: no acknowledged write may ever be lost."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import ADMIN, CLIENT_A, MINER_1, NodeProcess, run_cli

KILLS = 20
WORKERS = 8
MINER_ID = "crash-miner"


@dataclass
class Acknowledged:
    """Every write the node answered 2xx, with the effect it promised."""

    submitted: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)  # job_id -> receipt
    cancelled: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.submitted) + len(self.claimed) + len(self.receipts) + len(self.cancelled)


async def _load(node: NodeProcess, acked: Acknowledged, kill_after: int, rng: random.Random) -> None:
    """Run the mixed load until `kill_after` more writes are acknowledged, then kill -9 mid-flight."""
    target = acked.count + kill_after
    killed = asyncio.Event()

    async def worker(i: int) -> None:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            client = {"X-Api-Key": CLIENT_A["key"]}
            miner = {"X-Api-Key": MINER_1["key"]}
            while not killed.is_set():
                try:
                    r = await http.post("/v1/jobs", json={"prompt": f"crash {i} {rng.random()}"}, headers=client)
                    if r.status_code != 201:
                        continue
                    job = r.json()["job_id"]
                    acked.submitted.add(job)
                    if rng.random() < 0.2:
                        if (await http.post(f"/v1/jobs/{job}/cancel", headers=client)).status_code == 200:
                            acked.cancelled.add(job)
                        continue
                    r = await http.post(f"/v1/jobs/{job}/claim", json={"miner_id": MINER_ID}, headers=miner)
                    if r.status_code != 200:
                        continue
                    acked.claimed.add(job)
                    r = await http.post(
                        f"/v1/jobs/{job}/complete", json={"miner_id": MINER_ID, "result": "done"}, headers=miner
                    )
                    if r.status_code == 200:
                        acked.receipts[job] = r.json()
                except httpx.TransportError:
                    return
                if acked.count >= target and not killed.is_set():
                    killed.set()
                    node.kill9()

    await asyncio.gather(*(worker(i) for i in range(WORKERS)))


def _lost(node: NodeProcess, acked: Acknowledged) -> list[str]:
    lost: list[str] = []
    with node.client(ADMIN["key"]) as http:
        for job in sorted(acked.submitted):
            r = http.get(f"/v1/jobs/{job}")
            if r.status_code != 200:
                lost.append(f"submit {job}")
                continue
            state = r.json()
            if job in acked.cancelled and state["status"] != "cancelled":
                lost.append(f"cancel {job}")
            if job in acked.claimed and state.get("attempts", 0) < 1:
                lost.append(f"claim {job}")
            if job in acked.receipts:
                receipt = acked.receipts[job]
                if (
                    state["status"] != "completed"
                    or http.get(f"/v1/receipts/{receipt['receipt_id']}").json() != receipt
                ):
                    lost.append(f"complete {job}")
    return lost


def test_kill_9_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    node = NodeProcess(tmp_path / "data", api_keys=[CLIENT_A, MINER_1, ADMIN], extra_args=("--rate-limit", "0"))
    node.start()
    with node.client(MINER_1["key"]) as http:
        assert (
            http.post("/v1/miners/register", json={"miner_id": MINER_ID, "capabilities": ["llama3.2"]}).status_code
            == 201
        )
    acked = Acknowledged()
    kills = 0
    try:
        for _ in range(KILLS):
            asyncio.run(_load(node, acked, rng.randint(3, 40), rng))
            kills += 1
            verify = run_cli("verify", "--data-dir", str(node.data_dir))
            assert verify.returncode == 0, f"after kill {kills}: {verify.stdout}{verify.stderr}"
            node.start()
            lost = _lost(node, acked)
            assert lost == [], f"after kill {kills}: lost {lost}"
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()
    print(f"\ncrash test: {kills} kills, {acked.count} writes acknowledged, 0 writes lost")
    assert kills == KILLS and acked.count > KILLS
