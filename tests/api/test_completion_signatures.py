"""A completion's signatures are checked once: the authority signs the receipt and checks the
miner's co-signature while answering the request, and applying the transaction takes those
outcomes (noted under its hash) instead of checking again. A follower applying the same
block still checks both (tests/e2e replication and chain tests cover that path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import chain.crypto
import chain.receipts
from chain.crypto import NodeKey
from chain.receipts import sign_completion
from node.composition import create_app
from node.config import Config
from node.runtime import Node
from tests.support import CLIENT_A, MINER_1

MINER_KEY = NodeKey(bytes(range(40, 72)))
RESULT = "four words of output"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "keys.json").write_text(json.dumps([CLIENT_A, MINER_1]))
    node = Node(Config(data_dir=tmp_path / "data", api_keys=tmp_path / "keys.json", rate_limit=0))
    node.open()
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def run_job(client: TestClient, miner_id: str, **register: Any) -> tuple[str, Any]:
    miner = {"X-Api-Key": MINER_1["key"]}
    body = {"miner_id": miner_id, "capabilities": ["llama3.2"], **register}
    assert client.post("/v1/miners/register", json=body, headers=miner).status_code == 201
    job_id = client.post("/v1/jobs", json={"prompt": "p"}, headers={"X-Api-Key": CLIENT_A["key"]}).json()["job_id"]
    assert client.post(f"/v1/jobs/{job_id}/claim", json={"miner_id": miner_id}, headers=miner).status_code == 200
    return job_id, miner


def test_a_completion_is_applied_without_checking_its_signatures_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[bytes] = []
    real = chain.crypto.verify_signature  # what chain.receipts calls by that name

    def counted(public_key: bytes, message: bytes, signature: bytes) -> bool:
        checks.append(public_key)
        return real(public_key, message, signature)

    monkeypatch.setattr(chain.receipts, "verify_signature", counted)

    job_id, miner = run_job(client, "plain")
    done = client.post(f"/v1/jobs/{job_id}/complete", json={"miner_id": "plain", "result": RESULT}, headers=miner)
    assert done.status_code == 200, done.text
    assert checks == []  # the receipt was signed here: nothing to check

    job_id, miner = run_job(client, "cosigning", miner_pubkey=MINER_KEY.public_hex)
    body = {"miner_id": "cosigning", "result": RESULT, "miner_signature": sign_completion(MINER_KEY, job_id, RESULT)}
    done = client.post(f"/v1/jobs/{job_id}/complete", json=body, headers=miner)
    assert done.status_code == 200, done.text
    assert checks == [MINER_KEY.public_key]  # the co-signature, once, by the request; not again when applied
    receipt = done.json()
    assert receipt["miner_signature"]["sig"] == body["miner_signature"]
    assert client.get(f"/v1/receipts/{receipt['receipt_id']}", headers={"X-Api-Key": CLIENT_A["key"]}).json() == receipt
