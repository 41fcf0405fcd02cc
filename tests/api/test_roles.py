"""A node's role is a typed object that changes while it runs: a follower promoted to authority
seals the writes it used to forward, and demoted again forwards them. The routes pick their
handler per request, so the same app serves each role right."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from chain.receipts import receipt_signer
from node.composition import create_app
from node.config import Config
from node.datadir import DataDirError
from node.roles import AuthorityRole, FollowerRole
from node.runtime import Node
from tests.chain.devchain import AUTHORITY, OUTSIDER, genesis_doc

ADMIN = {"X-Api-Key": "ops-key"}
UNREACHABLE = "http://127.0.0.1:9"
PEER_KEY = "peer-key-0000000000000000"


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[Node, TestClient]]:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(genesis_doc()))
    node = Node(Config(data_dir=tmp_path / "data", genesis=genesis, follow=UNREACHABLE, peer_key=PEER_KEY))
    node.open()
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        yield node, client


def submit(client: TestClient) -> tuple[int, dict[str, str]]:
    r = client.post("/v1/jobs", json={"prompt": "hello"}, headers=ADMIN)
    return r.status_code, r.json()


def test_a_follower_promoted_to_authority_seals_writes_and_demoted_forwards_them_again(
    follower: tuple[Node, TestClient],
) -> None:
    node, client = follower
    assert client.get("/health").json()["role"] == "follower"
    status, body = submit(client)  # forwarded to an upstream that is not there
    assert status == 503 and body["error_code"] == "unavailable"

    client.portal.call(node.promote, AUTHORITY)  # type: ignore[union-attr]  # TestClient.portal is set inside its with block
    assert isinstance(node.role, AuthorityRole)
    assert client.get("/health").json()["role"] == "authority"
    status, job = submit(client)
    assert status == 201 and job["status"] == "pending"
    block = client.get("/explorer/blocks/1").json()
    assert block["proposer"] == AUTHORITY.public_hex and block["seal_valid"] is True

    # It signs receipts as the authority it became.
    miner = client.post("/v1/miners/register", json={"miner_id": "m1", "capabilities": ["llama3.2"]}, headers=ADMIN)
    assert miner.status_code == 201
    claim = client.post(f"/v1/jobs/{job['job_id']}/claim", json={"miner_id": "m1"}, headers=ADMIN)
    assert claim.status_code == 200
    done = client.post(f"/v1/jobs/{job['job_id']}/complete", json={"miner_id": "m1", "result": "hi"}, headers=ADMIN)
    assert done.status_code == 200 and receipt_signer(done.json()) == AUTHORITY.public_key

    client.portal.call(node.demote, UNREACHABLE, PEER_KEY)  # type: ignore[union-attr]  # TestClient.portal is set inside its with block
    assert isinstance(node.role, FollowerRole)
    assert client.get("/health").json()["role"] == "follower"
    status, body = submit(client)
    assert status == 503 and body["error_code"] == "unavailable"
    # What it sealed while it led stays readable.
    assert client.get(f"/v1/jobs/{job['job_id']}", headers=ADMIN).json()["status"] == "completed"


def test_promotion_needs_a_key_the_genesis_names(follower: tuple[Node, TestClient]) -> None:
    node, client = follower
    with pytest.raises(DataDirError, match="not an authority"):
        client.portal.call(node.promote, OUTSIDER)  # type: ignore[union-attr]  # TestClient.portal is set inside its with block
    assert isinstance(node.role, FollowerRole)
