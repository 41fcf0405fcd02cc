"""A write sent with an Idempotency-Key, and each retry of it, counts once against its key's rate
(and, without a valid key, once against its address's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from node.composition import create_app
from node.config import Config
from node.runtime import Node
from tests.support import ADMIN, CLIENT_A

BURST = 4
UNAUTH_BURST = 3
SLOW = 0.001
"""Tokens per second: none comes back while a test runs, so the burst is all a test has."""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([CLIENT_A, ADMIN]))
    config = Config(
        data_dir=tmp_path / "data",
        api_keys=keys,
        rate_limit=SLOW,
        rate_burst=BURST,
        unauth_rate_limit=SLOW,
        unauth_rate_burst=UNAUTH_BURST,
    )
    node = Node(config)
    node.open()
    with TestClient(create_app(node), raise_server_exceptions=False) as http:
        yield http


def submit(http: TestClient, idem_key: str | None, api_key: str = CLIENT_A["key"]) -> tuple[int, dict[str, str], str]:
    headers = {"X-Api-Key": api_key, **({"Idempotency-Key": idem_key} if idem_key is not None else {})}
    r = http.post("/v1/jobs", json={"prompt": "hello"}, headers=headers)
    return r.status_code, r.json(), r.headers.get("idempotent-replayed", "")


def test_each_keyed_write_counts_once_against_its_keys_rate(client: TestClient) -> None:
    statuses = [submit(client, f"write-{i}")[0] for i in range(BURST)]
    assert statuses == [201] * BURST
    status, body, _ = submit(client, "one-too-many")
    assert status == 429 and body["error_code"] == "rate_limited"


def test_retries_of_a_keyed_write_each_count_once_and_get_the_original_answer(client: TestClient) -> None:
    status, first, _ = submit(client, "retried")
    assert status == 201
    retries = [submit(client, "retried") for _ in range(BURST - 1)]
    assert retries == [(201, first, "true")] * (BURST - 1)
    status, body, _ = submit(client, "retried")
    assert status == 429 and body["error_code"] == "rate_limited"


def test_a_keyed_write_without_a_valid_api_key_counts_once_against_its_address(client: TestClient) -> None:
    statuses = [submit(client, f"guess-{i}", api_key="not-a-key-of-this-node")[0] for i in range(UNAUTH_BURST)]
    assert statuses == [401] * UNAUTH_BURST
    status, body, _ = submit(client, "guess-more", api_key="not-a-key-of-this-node")
    assert status == 429 and body["error_code"] == "rate_limited"
    assert submit(client, "from-a-client")[0] == 201  # a valid key is not limited by its address


def test_a_malformed_idempotency_key_without_an_api_key_is_401_before_anything_else(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={"prompt": "hello"}, headers={"Idempotency-Key": "bad\tkey"})
    assert r.status_code == 401 and r.json()["error_code"] == "unauthorized"
    keyed = {"X-Api-Key": CLIENT_A["key"], "Idempotency-Key": "bad\tkey"}
    r = client.post("/v1/jobs", json={"prompt": "hello"}, headers=keyed)
    assert r.status_code == 400 and r.json()["error_code"] == "validation_error"
