"""API keys never reach the chain: the LevelDB files hold key hashes, never a raw key."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.support import ADMIN, ALL_KEYS, CLIENT_A, MINER_1, NodeProcess


def test_the_chain_data_holds_no_raw_api_key(tmp_path: Path) -> None:
    marker = f"prompt-{uuid.uuid4().hex}"
    node = NodeProcess(tmp_path / "data", api_keys=ALL_KEYS)
    with node:
        with (
            node.client(CLIENT_A["key"]) as client,
            node.client(MINER_1["key"]) as miner,
            node.client(ADMIN["key"]) as admin,
        ):
            job = client.post("/v1/jobs", json={"prompt": marker}).json()["job_id"]
            assert (
                miner.post("/v1/miners/register", json={"miner_id": "g", "capabilities": ["llama3.2"]}).status_code
                == 201
            )
            assert miner.post(f"/v1/jobs/{job}/claim", json={"miner_id": "g"}).status_code == 200
            assert miner.post(f"/v1/jobs/{job}/complete", json={"miner_id": "g", "result": "ok"}).status_code == 200
            created = admin.post("/v1/admin/accounts", json={"name": "later", "role": "client"}).json()["key"]
    admin_key = (node.data_dir / "admin_key").read_text().strip()
    chain_bytes = b"".join(p.read_bytes() for p in sorted((node.data_dir / "chain").rglob("*")) if p.is_file())
    assert marker.encode() in chain_bytes  # the search does see what the chain holds
    for key in [created, admin_key, *(k["key"] for k in ALL_KEYS)]:
        assert key.encode() not in chain_bytes, f"a raw API key reached the chain: {key[:10]}…"
    genesis = (node.data_dir / "genesis.json").read_text()
    assert admin_key not in genesis
