"""SIGTERM and a fresh start on the same data dir keep every job and receipt."""

from __future__ import annotations

import signal
from typing import Any

from tests.e2e.conftest import Api
from tests.support import stats_at_any_minute


def test_restart_keeps_every_job_and_receipt(api: Api) -> None:
    pending = api.submit(prompt="stays pending")
    running = api.submit(prompt="stays running")
    cancelled = api.submit(prompt="gets cancelled")
    failed_once = api.submit(prompt="fails once")
    miner_id = api.register(capabilities=["llama3.2", "mistral-7b"], gpu_info={"name": "A100", "memory": "40GB"})
    done, receipt = api.run_job(miner_id=miner_id, result="kept across restarts")
    done_b, receipt_b = api.run_job(client=api.b, miner_id=miner_id, model="mistral-7b", result="b's result")
    api.claim(running["job_id"], miner_id)
    api.a.post(f"/v1/jobs/{cancelled['job_id']}/cancel")
    api.claim(failed_once["job_id"], miner_id)
    api.m1.post(f"/v1/jobs/{failed_once['job_id']}/fail", json={"miner_id": miner_id, "error": "oom"})
    extra = api.admin.post("/v1/admin/accounts", 201, json={"name": "made-before-restart", "role": "client"})

    def snapshot() -> dict[str, Any]:
        return {
            "a_jobs": api.a.get("/v1/jobs", params={"limit": 100}),
            "b_jobs": api.b.get("/v1/jobs", params={"limit": 100}),
            "all_jobs": api.admin.get("/v1/jobs", params={"limit": 100}),
            "receipts": api.a.get("/v1/receipts", params={"limit": 100}),
            "by_provider": api.a.get("/v1/receipts", params={"provider": miner_id}),
            "receipt": api.a.get(f"/v1/receipts/{receipt['receipt_id']}"),
            "verify": api.a.post("/v1/receipts/verify", json=receipt),
            "blocks": api.anon.get("/explorer/blocks", params={"limit": 100}),
            "explorer_receipts": api.anon.get("/explorer/receipts"),
            "stats": {
                k: v for k, v in stats_at_any_minute(api.anon.get("/explorer/stats")).items() if k != "active_miners"
            },
            "jobs": {
                j["job_id"]: api.admin.get(f"/v1/jobs/{j['job_id']}")
                for j in (pending, running, cancelled, failed_once, done, done_b)
            },
        }

    before = snapshot()
    assert before["verify"]["on_chain"] is True
    assert api.node.stop(signal.SIGTERM) == 0
    api.node.start()
    api.reconnect()
    after = snapshot()
    assert after == before

    statuses = {j["job_id"]: j["status"] for j in after["all_jobs"]}
    assert statuses[pending["job_id"]] == "pending"
    assert statuses[running["job_id"]] == "running"
    assert statuses[cancelled["job_id"]] == "cancelled"
    assert statuses[failed_once["job_id"]] == "pending"
    assert statuses[done["job_id"]] == "completed"
    assert statuses[done_b["job_id"]] == "completed"
    assert after["receipts"] == [receipt_b, receipt]

    # The node carries on where it stopped: keys, accounts, miners, claims.
    api.caller(extra["key"]).get("/v1/jobs")
    api.m1.post("/v1/miners/register", 201, json={"miner_id": miner_id, "capabilities": ["llama3.2"]})
    api.m2.post("/v1/miners/register", 409, json={"miner_id": miner_id, "capabilities": ["llama3.2"]})
    late = api.complete(running["job_id"], miner_id, "finished after restart")
    assert late["job_id"] == running["job_id"]
    # Oldest pending first: the job submitted first, then the requeued one.
    assert api.m1.get("/v1/jobs/available", params={"miner_id": miner_id})["job_id"] == pending["job_id"]
    api.a.post(f"/v1/jobs/{pending['job_id']}/cancel")
    assert api.m1.get("/v1/jobs/available", params={"miner_id": miner_id})["job_id"] == failed_once["job_id"]
    new = api.submit(prompt="after restart")
    assert api.a.get(f"/v1/jobs/{new['job_id']}")["status"] == "pending"
    assert api.anon.get("/explorer/stats")["total_receipts"] == 3
