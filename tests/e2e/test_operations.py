"""Operations against real node processes: metrics, logs, status, backup and restore."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from node.datadir import DataDir
from node.store import Store
from tests.support import ADMIN, ALL_KEYS, CLIENT_A, MINER_1, NodeProcess, free_port, run_cli


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run_job(url: str, prompt: str, result: str, miner_id: str = "gpu-ops") -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        client = {"X-Api-Key": CLIENT_A["key"]}
        miner = {"X-Api-Key": MINER_1["key"]}
        r = c.post("/v1/miners/register", headers=miner, json={"miner_id": miner_id, "capabilities": ["llama3.2"]})
        assert r.status_code in (200, 201), r.text
        job = c.post("/v1/jobs", headers=client, json={"prompt": prompt})
        assert job.status_code == 201, job.text
        job_id: str = job.json()["job_id"]
        assert c.post(f"/v1/jobs/{job_id}/claim", headers=miner, json={"miner_id": miner_id}).status_code == 200
        done = c.post(f"/v1/jobs/{job_id}/complete", headers=miner, json={"miner_id": miner_id, "result": result})
        assert done.status_code == 200, done.text
        return job_id


def test_metrics_scrape_shows_counters_moving_after_jobs_run(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", api_keys=ALL_KEYS) as node, node.client() as c:
        before = scrape(c.get("/metrics").text)
        run_job(node.url, "count me", "one two three")
        response = c.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = scrape(response.text)
        height = c.get("/health").json()["height"]

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("aitbc_transactions_sealed_total", type="job.submit") == 1
    assert moved("aitbc_transactions_sealed_total", type="job.claim") == 1
    assert moved("aitbc_transactions_sealed_total", type="job.complete") == 1
    assert moved("aitbc_blocks_sealed_total") >= 3
    assert moved("aitbc_group_commit_duration_seconds_count") >= 3
    assert moved("aitbc_block_fill_ratio_count") >= 3
    assert moved("aitbc_http_requests_total", method="POST", route="/v1/jobs/{job_id}/claim", status="200") == 1
    assert moved("aitbc_http_requests_total", method="POST", route="/v1/jobs", status="201") == 1
    assert (
        moved(
            "aitbc_http_request_duration_seconds_count", method="POST", route="/v1/jobs/{job_id}/complete", status="200"
        )
        == 1
    )
    assert sample(after, "aitbc_chain_height") == height
    assert sample(after, "aitbc_jobs", status="completed") == 1
    assert sample(after, "aitbc_active_miners") == 1
    assert sample(after, "aitbc_receipts") == 1
    assert sample(after, "aitbc_mempool_size") == 0
    assert sample(after, "aitbc_store_size_bytes") > 0
    assert 0 <= sample(after, "aitbc_chain_tip_age_seconds") < 600
    assert ("aitbc_websocket_subscribers", ()) in after
    # Defined now, fed by followers' sync.
    assert ("aitbc_sync_lag_blocks", ()) in after and ("aitbc_sync_lag_seconds", ()) in after


def test_unmatched_paths_share_one_metrics_label(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data") as node, node.client() as c:
        for i in range(3):
            assert c.get(f"/no/such/{i}").status_code == 404
        samples = scrape(c.get("/metrics").text)
    assert sample(samples, "aitbc_http_requests_total", method="GET", route="<unmatched>", status="404") == 3
    assert not any("/no/such" in str(labels) for _, labels in samples)


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", extra_args=("--metrics", "off")) as node, node.client() as c:
        r = c.get("/metrics")
        assert r.status_code == 404
        assert r.json()["error_code"] == "not_found"


def test_metrics_can_be_served_on_their_own_address(tmp_path: Path) -> None:
    port = free_port()
    with NodeProcess(tmp_path / "data", extra_args=("--metrics", f"127.0.0.1:{port}")) as node, node.client() as c:
        assert c.get("/metrics").status_code == 404
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200
        assert sample(scrape(r.text), "aitbc_chain_height") == 0


def test_json_logs_parse_line_by_line_and_carry_request_ids(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    with (
        NodeProcess(
            tmp_path / "data",
            api_keys=ALL_KEYS,
            stderr_file=log_file,
            extra_args=("--log-level", "info", "--log-format", "json"),
        ) as node,
        node.client() as c,
    ):
        mine = c.get("/health", headers={"X-Request-Id": "trace-abc.123"})
        assert mine.headers["x-request-id"] == "trace-abc.123"
        fresh = c.get("/v1/jobs", headers={"X-Api-Key": CLIENT_A["key"]})
        generated = fresh.headers["x-request-id"]
        assert len(generated) >= 16
        bogus = c.get("/health", headers={"X-Request-Id": "bad id with spaces"})
        assert bogus.headers["x-request-id"] != "bad id with spaces"
        assert c.get("/nope").headers["x-request-id"]
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "aitbc.access"]
    assert all(r.get("request_id") for r in access)
    by_id = {r["request_id"]: r for r in access}
    assert by_id["trace-abc.123"]["http"]["path"] == "/health"
    assert by_id[generated]["http"] == {**by_id[generated]["http"], "method": "GET", "path": "/v1/jobs", "status": 200}


def test_text_logs_carry_request_ids(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    with (
        NodeProcess(tmp_path / "data", stderr_file=log_file, extra_args=("--log-level", "info")) as node,
        node.client() as c,
    ):
        rid = c.get("/health").headers["x-request-id"]
    line = next(x for x in log_file.read_text(encoding="utf-8").splitlines() if "GET /health" in x)
    assert f"request_id={rid}" in line
    assert not line.startswith("{")


def test_logs_never_contain_prompts_results_or_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli("init", "--data-dir", str(data)).returncode == 0
    admin_key = DataDir(data).admin_key_path.read_text().strip()
    secret_prompt = f"prompt-{uuid.uuid4().hex}"
    secret_result = f"result-{uuid.uuid4().hex}"
    secret_key = f"key-{uuid.uuid4().hex}"
    logs: dict[str, list[str]] = {}
    new_keys: list[str] = []
    for fmt in ("text", "json"):
        log_file = tmp_path / f"{fmt}.log"
        with NodeProcess(
            data, api_keys=ALL_KEYS, stderr_file=log_file, extra_args=("--log-level", "debug", "--log-format", fmt)
        ) as node:
            run_job(node.url, f"{secret_prompt} {fmt}", f"{secret_result} {fmt}", miner_id=f"gpu-{fmt}")
            with node.client() as c:
                assert c.get("/v1/jobs", headers={"X-Api-Key": secret_key}).status_code == 401
                assert (
                    c.get(f"/v1/jobs?status=x&k={secret_key}", headers={"X-Api-Key": CLIENT_A["key"]}).status_code
                    == 400
                )
                bad = c.post(
                    "/v1/jobs", headers={"X-Api-Key": CLIENT_A["key"]}, content=f'{{"prompt": "{secret_prompt}", '
                )
                assert bad.status_code == 400
                created = c.post(
                    "/v1/admin/accounts",
                    headers={"X-Api-Key": ADMIN["key"]},
                    json={"name": f"new-{fmt}", "role": "client"},
                )
                assert created.status_code == 201
                new_keys.append(created.json()["key"])
        logs[fmt] = node.output + [log_file.read_text(encoding="utf-8")]
    everything = "\n".join(line for out in logs.values() for line in out)
    assert "aitbc.access" in everything  # the logs were really captured at the most verbose level
    for secret in [secret_prompt, secret_result, secret_key, admin_key, *new_keys, *(k["key"] for k in ALL_KEYS)]:
        assert secret not in everything, f"a secret reached the logs: {secret[:12]}…"


def test_status_reports_a_running_node_in_text_and_json(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "data", api_keys=ALL_KEYS) as node:
        run_job(node.url, "status please", "fine")
        text = run_cli("status", "--node", node.url)
        as_json = run_cli("status", "--node", node.url, "--json")
        with node.client() as c:
            height = c.get("/health").json()["height"]
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert lines["role"] == "authority"
    assert lines["chain"].startswith("aitbc-devnet")
    assert lines["height"].startswith(f"{height} ")
    assert lines["mempool"] == "0 transactions"
    assert "1 completed" in lines["jobs"]
    assert lines["miners"] == "1 active"
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["role"] == "authority" and status["height"] == height
    assert status["jobs"]["completed"] == 1 and status["active_miners"] == 1
    assert status["sync"] is None and status["tip_age_s"] >= 0


def test_status_of_an_unreachable_node_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("status", "--node", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("aitbc-node: cannot reach")
    assert "Traceback" not in result.stderr


def test_backup_under_load_restores_to_a_verified_node_at_the_backups_tip(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stop = threading.Event()
    acked: list[float] = []
    errors: list[str] = []

    def submit(url: str, n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-Api-Key": CLIENT_A["key"]}, timeout=30) as c:
            for i in range(200):  # bounded
                if stop.is_set():
                    return
                r = c.post("/v1/jobs", json={"prompt": f"load {n}-{i}"})
                if r.status_code == 201:
                    acked.append(time.monotonic())
                else:
                    errors.append(r.text)

    with NodeProcess(data, api_keys=ALL_KEYS, extra_args=("--rate-limit", "0")) as node:  # four writers, one key
        run_job(node.url, "before the backup", "done")
        threads = [threading.Thread(target=submit, args=(node.url, n)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 30
            while len(acked) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)  # polling a condition with a deadline
            started = time.monotonic()
            result = run_cli("backup", "--data-dir", str(data), "--to", str(tmp_path / "b.gz"))
            finished = time.monotonic()
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert errors == []
    assert any(started <= t <= finished for t in acked), "no write was acknowledged while the backup ran"
    words = result.stdout.split()
    height = int(words[words.index("height") + 1])
    tip = words[words.index("(tip") + 1].rstrip("):")
    datadir = DataDir(data)
    store = Store(datadir.chain_path, datadir.genesis(), create=False)
    try:
        block = store.block(height)
        assert block is not None and block.hash == tip
        assert store.tip().height > height  # the load went on after the snapshot
    finally:
        store.close()

    restored = tmp_path / "restored"
    r = run_cli("restore", str(tmp_path / "b.gz"), "--data-dir", str(restored), "--node-key", str(data / "node_key"))
    assert r.returncode == 0, r.stderr
    v = run_cli("verify", "--data-dir", str(restored))
    assert v.returncode == 0, v.stderr
    assert tip in v.stdout
    with NodeProcess(restored) as node2, node2.client() as c:
        status = c.get("/status").json()
        assert (status["height"], status["tip_hash"]) == (height, tip)
        # The restored authority keeps sealing on top of the restored tip.
        assert c.post("/v1/jobs", headers={"X-Api-Key": CLIENT_A["key"]}, json={"prompt": "after"}).status_code == 201


def test_backup_of_a_stopped_node_and_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli("init", "--data-dir", str(data)).returncode == 0
    ok = run_cli("backup", "--data-dir", str(data), "--to", str(tmp_path / "b.gz"))
    assert ok.returncode == 0, ok.stderr
    assert "at height 0" in ok.stdout
    # A data dir that holds a chain is never overwritten.
    again = run_cli("restore", str(tmp_path / "b.gz"), "--data-dir", str(data))
    assert again.returncode == 1 and "already holds a chain" in again.stderr
    # A truncated backup is refused and leaves nothing behind.
    raw = (tmp_path / "b.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    cut = run_cli("restore", str(tmp_path / "cut.gz"), "--data-dir", str(tmp_path / "new"))
    assert cut.returncode == 1 and "damaged" in cut.stderr
    assert not (tmp_path / "new").exists()
    # The admin endpoint needs an admin key.
    with NodeProcess(data, api_keys=ALL_KEYS) as node, node.client(CLIENT_A["key"]) as c:
        assert c.get("/v1/admin/backup").status_code == 403
        denied = run_cli(
            "backup", "--data-dir", str(data), "--to", str(tmp_path / "x.gz"), "--admin-key", CLIENT_A["key"]
        )
    assert denied.returncode == 1 and "403" in denied.stderr
    assert not (tmp_path / "x.gz").exists()
