"""An Idempotency-Key is the client's own string: the chain records only a hash of it (with its
account), and no block, explorer page or JSON, proof bundle, log line or file of the data dir
holds the key itself. The explorer says a write was sent with one, and nothing more."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

import httpx

from chain.idempotency import key_hash
from tests.support import ADMIN, CLIENT_A, MINER_1, NodeProcess

PEER = {"key": "idem-peer-key-0000000000000000", "role": "peer", "name": "idem-peer"}
NOTE = {"field": "idempotency", "what": "the Idempotency-Key this write was sent with"}


def keyed_post(http: httpx.Client, path: str, body: Mapping[str, object], idem_key: str) -> httpx.Response:
    return http.post(path, json=body, headers={"Idempotency-Key": idem_key})


def test_an_idempotency_key_is_on_no_block_page_json_bundle_log_or_file(tmp_path: Path) -> None:
    keys = {step: f"IDEM-SECRET-{step}-{secrets.token_hex(8)}" for step in ("submit", "register", "claim", "complete")}
    log = tmp_path / "node.log"
    node = NodeProcess(
        tmp_path / "data",
        api_keys=[CLIENT_A, MINER_1, ADMIN, PEER],
        extra_args=("--log-level", "debug"),
        stderr_file=log,
    )
    seen: dict[str, str] = {}
    with node, node.client(CLIENT_A["key"]) as a, node.client(MINER_1["key"]) as m, node.client() as anon:
        submitted = keyed_post(a, "/v1/jobs", {"prompt": "say hi", "model": "llama3.2"}, keys["submit"])
        assert submitted.status_code == 201
        again = keyed_post(a, "/v1/jobs", {"prompt": "say hi", "model": "llama3.2"}, keys["submit"])
        assert (again.status_code, again.json()) == (201, submitted.json())
        assert again.headers["idempotent-replayed"] == "true"
        job_id = submitted.json()["job_id"]
        register = {"miner_id": "gpu-idem", "capabilities": ["llama3.2"]}
        assert keyed_post(m, "/v1/miners/register", register, keys["register"]).status_code == 201
        assert keyed_post(m, f"/v1/jobs/{job_id}/claim", {"miner_id": "gpu-idem"}, keys["claim"]).status_code == 200
        done = keyed_post(m, f"/v1/jobs/{job_id}/complete", {"miner_id": "gpu-idem", "result": "hi"}, keys["complete"])
        assert done.status_code == 200
        receipt_id = done.json()["receipt_id"]

        # The chain itself (full blocks, as followers get them) holds the hash, scoped to the account.
        with node.client(PEER["key"]) as peer:
            chain = peer.get("/v1/chain/blocks", params={"from": 0, "limit": 1000})
        assert chain.status_code == 200
        seen["/v1/chain/blocks"] = chain.text
        records = [
            tx["payload"]["idempotency"]
            for block in chain.json()["blocks"]
            for tx in block["transactions"]
            if "idempotency" in tx["payload"]
        ]
        assert {r["account"] for r in records} == {CLIENT_A["name"], MINER_1["name"]}
        assert key_hash(CLIENT_A["name"], keys["submit"]) in {r["key_hash"] for r in records}
        assert all(set(r) == {"account", "key_hash", "request"} for r in records)

        paths = [
            "/explorer",
            "/explorer/transactions?limit=100",
            f"/explorer/jobs/{job_id}",
            f"/explorer/receipts/{receipt_id}",
            f"/explorer/receipts/{receipt_id}/proof",
            "/",
            "/transactions",
            f"/jobs/{job_id}",
            f"/receipts/{receipt_id}",
        ]
        txs = anon.get("/explorer/transactions", params={"limit": 100}).json()
        for t in txs:
            paths += [f"/explorer/transactions/{t['hash']}", f"/transactions/{t['hash']}"]
        for height in {t["block_height"] for t in txs}:
            paths += [f"/explorer/blocks/{height}", f"/blocks/{height}"]
        for path in paths:
            resp = anon.get(path, headers={"Accept": "text/html" if not path.startswith("/explorer") else "*/*"})
            assert resp.status_code == 200, path
            seen[path] = resp.text
        for path in (f"/v1/jobs/{job_id}", f"/v1/receipts/{receipt_id}", f"/v1/receipts/{receipt_id}/proof"):
            resp = a.get(path)
            assert resp.status_code == 200, path
            seen[path] = resp.text

        # The explorer says the write was sent with a key, and shows nothing of it.
        submit_tx = next(t for t in txs if t["type"] == "job.submit")
        assert NOTE in anon.get(f"/explorer/transactions/{submit_tx['hash']}").json()["withheld"]
        assert "the Idempotency-Key this write was sent with is not shown" in seen[f"/transactions/{submit_tx['hash']}"]
    seen["log"] = log.read_text() + "".join(node.output)
    for file in sorted(node.data_dir.rglob("*")):
        if file.is_file():
            seen[str(file)] = file.read_bytes().decode("latin-1")

    leaks = [(where, step) for where, text in seen.items() for step, k in keys.items() if k in text]
    assert leaks == []
    assert "GET /explorer" in seen["log"]  # the access log was on: a leak would have been there
