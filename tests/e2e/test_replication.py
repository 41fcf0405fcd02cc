"""Followers replicate the authority's chain: convergence, read equality, forwarded writes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.replication import PEER, authority, converged, follower, health, wait_until
from tests.support import ADMIN, CLIENT_A, CLIENT_B, MINER_1, MINER_2, NodeProcess, stats_at_any_minute

JOBS = 200


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    base = tmp_path_factory.mktemp("cluster")
    auth = authority(base).start()
    genesis = auth.data_dir / "genesis.json"
    followers: list[NodeProcess] = []
    try:
        for name in ("follower-1", "follower-2"):
            followers.append(follower(base, name, auth.url, genesis).start())
        yield auth, followers[0], followers[1]
    finally:
        for node in [*followers, auth]:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
            else:
                node.kill9()


def _lifecycle(nodes: list[NodeProcess], i: int, miner_ids: list[str]) -> str:
    """Submit, claim and complete job i, spreading the calls over all nodes; return its receipt id."""

    def pick(step: int) -> NodeProcess:
        return nodes[(i + step) % len(nodes)]

    client_key = (CLIENT_A, CLIENT_B)[i % 2]["key"]
    miner_key, miner_id = ((MINER_1["key"], miner_ids[0]), (MINER_2["key"], miner_ids[1]))[i % 2]
    with pick(0).client(client_key) as c:
        resp = c.post("/v1/jobs", json={"prompt": f"job number {i}"})
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["job_id"]
    with pick(1).client(miner_key) as m:
        resp = m.post(f"/v1/jobs/{job_id}/claim", json={"miner_id": miner_id})
        assert resp.status_code == 200, resp.text
    with pick(2).client(miner_key) as m:
        resp = m.post(f"/v1/jobs/{job_id}/complete", json={"miner_id": miner_id, "result": f"result words {i}"})
        assert resp.status_code == 200, resp.text
        answer: str = resp.json()["receipt_id"]
        return answer


def test_authority_and_two_followers_converge_on_the_same_chain_and_answers(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    auth, f1, f2 = cluster
    nodes = [auth, f1, f2]
    miner_ids = []
    for key, miner_id, via in ((MINER_1["key"], "conv-gpu-1", f1), (MINER_2["key"], "conv-gpu-2", f2)):
        with via.client(key) as m:
            resp = m.post("/v1/miners/register", json={"miner_id": miner_id, "capabilities": ["llama3.2"]})
            assert resp.status_code == 201, resp.text
        miner_ids.append(miner_id)
    with ThreadPoolExecutor(max_workers=16) as pool:
        receipt_ids = list(pool.map(lambda i: _lifecycle(nodes, i, miner_ids), range(JOBS)))
    assert len(set(receipt_ids)) == JOBS

    wait_until(lambda: converged(nodes), "the three nodes to reach the same tip")

    def answers(node: NodeProcess) -> dict[str, Any]:
        with node.client(ADMIN["key"]) as http:
            return {
                "stats": stats_at_any_minute(http.get("/explorer/stats").json()),
                "blocks": http.get("/explorer/blocks", params={"limit": 100}).json(),
                "transactions": http.get("/explorer/transactions", params={"limit": 100}).json(),
                "receipts": [http.get(f"/v1/receipts/{rid}").json() for rid in receipt_ids],
            }

    on_authority = answers(auth)
    assert on_authority["stats"]["total_receipts"] >= JOBS
    assert all(r["receipt_id"] == rid for r, rid in zip(on_authority["receipts"], receipt_ids, strict=True))
    assert answers(f1) == on_authority
    assert answers(f2) == on_authority
    for f in (f1, f2):
        h = health(f)
        assert h["status"] == "ok" and h["role"] == "follower" and h["lag"] == 0


def test_a_write_through_a_follower_is_readable_on_that_follower_right_after(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    _, f1, _ = cluster
    with f1.client(CLIENT_A["key"]) as c:
        created = c.post("/v1/jobs", json={"prompt": "read your writes"})
        assert created.status_code == 201
        job_id = created.json()["job_id"]
        assert int(created.headers["x-aitbc-height"]) >= 1
        read = c.get(f"/v1/jobs/{job_id}")
        assert read.status_code == 200 and read.json() == created.json()


def test_errors_of_forwarded_writes_come_back_unchanged(cluster: tuple[NodeProcess, NodeProcess, NodeProcess]) -> None:
    auth, f1, _ = cluster
    for node in (auth, f1):
        with node.client(CLIENT_A["key"]) as c:
            unknown = c.post("/v1/jobs", json={"prompt": "x", "colour": "blue"})
            assert unknown.status_code == 400 and unknown.json()["error_code"] == "validation_error"
            missing = c.post("/v1/jobs/job_missing/cancel")
            assert missing.status_code == 404 and missing.json()["error_code"] == "job_not_found"
        with node.client() as anonymous:
            assert anonymous.post("/v1/jobs", json={"prompt": "x"}).status_code == 401


def test_full_blocks_need_the_peer_or_admin_role(cluster: tuple[NodeProcess, NodeProcess, NodeProcess]) -> None:
    auth, f1, _ = cluster
    for node in (auth, f1):
        with node.client(CLIENT_A["key"]) as c:
            forbidden = c.get("/v1/chain/blocks", params={"from": 1})
            assert forbidden.status_code == 403 and forbidden.json()["error_code"] == "forbidden"
            head = c.get("/v1/chain/head")
            assert head.status_code == 200 and head.json()["height"] >= 0
        for key in (PEER["key"], ADMIN["key"]):
            with node.client(key) as p:
                body = p.get("/v1/chain/blocks", params={"from": 0, "limit": 2}).json()
                assert [b["header"]["height"] for b in body["blocks"]] == [0, 1]
                assert body["head"]["genesis_hash"] == p.get("/v1/chain/head").json()["genesis_hash"]
        with httpx.Client(base_url=node.url, timeout=10) as anonymous:
            assert anonymous.get("/v1/chain/blocks").status_code == 401


def test_chain_websocket_refuses_a_client_key_and_streams_blocks_to_a_peer(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    import asyncio

    import websockets
    from websockets.asyncio.client import connect

    auth, _, _ = cluster
    url = auth.url.replace("http://", "ws://") + "/v1/chain/ws?from=0"

    async def scenario() -> list[int]:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(url, additional_headers={"X-Api-Key": CLIENT_A["key"]}, open_timeout=10):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url, additional_headers={"X-Api-Key": PEER["key"]}, open_timeout=10) as ws:
            heights = []
            for _ in range(3):
                message = await asyncio.wait_for(ws.recv(), timeout=10)
                import json

                heights.append(json.loads(message)["header"]["height"])
            return heights

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_effective_genesis_is_served_and_starts_a_follower(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    import json

    auth, _, _ = cluster
    with auth.client(PEER["key"]) as p:
        served = p.get("/v1/chain/genesis").json()
    assert served == json.loads((auth.data_dir / "genesis.json").read_text())
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(served))
    with follower(tmp_path, "f3", auth.url, genesis_file) as f3:
        wait_until(lambda: converged([auth, f3]), "the new follower to catch up")
        assert health(f3)["status"] == "ok"


def test_long_polls_and_claim_next_through_a_follower_reach_the_authority(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    """A follower forwards available and claim-next to the authority, which holds the offers."""
    auth, f1, _ = cluster
    with f1.client(MINER_1["key"]) as m:
        assert (
            m.post("/v1/miners/register", json={"miner_id": "poll-1", "capabilities": ["qwen2.5-7b"]}).status_code
            == 201
        )
        nothing = m.post("/v1/jobs/claim-next", json={"miner_id": "poll-1"})
        assert nothing.status_code == 204 and nothing.content == b""
        with ThreadPoolExecutor(max_workers=2) as pool:
            offered = pool.submit(m.get, "/v1/jobs/available", params={"miner_id": "poll-1", "wait": 20}, timeout=60)
            with auth.client(CLIENT_A["key"]) as c:
                job_id = c.post("/v1/jobs", json={"prompt": "for a waiting miner", "model": "qwen2.5-7b"}).json()[
                    "job_id"
                ]
            assert offered.result(timeout=60).json()["job_id"] == job_id
        claimed = m.post("/v1/jobs/claim-next", json={"miner_id": "poll-1", "wait": 5})
        assert claimed.status_code == 200 and claimed.json()["job_id"] == job_id
        assert m.get("/v1/jobs/available", params={"miner_id": "poll-1"}).json() is None


def test_a_long_poll_through_a_follower_may_outlast_its_usual_relay_timeout(
    cluster: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    """The follower relays a write's answer within 15 s of silence; a long poll's may take up to
    the poll's 30 s, so waiting 16 s for a job that never comes ends in null, not a 504."""
    _, f1, _ = cluster
    with f1.client(MINER_2["key"]) as m:
        assert m.post("/v1/miners/register", json={"miner_id": "poll-2", "capabilities": ["phi-3"]}).status_code == 201
        waited = m.get("/v1/jobs/available", params={"miner_id": "poll-2", "wait": 16}, timeout=60)
        assert waited.status_code == 200 and waited.json() is None
