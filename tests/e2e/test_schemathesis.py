"""schemathesis fuzzes the node's own /openapi.json: no 5xx, no response that breaks the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ADMIN, ALL_KEYS, CLIENT_A, MINER_1, NodeProcess

EXAMPLES = 15
PEER = {"key": "fuzz-peer-key-000000000000000", "role": "peer", "name": "fuzz-peer"}
ROLES = {"admin": ADMIN["key"], "client": CLIENT_A["key"], "miner": MINER_1["key"], "peer": PEER["key"], "no key": None}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, Path]]:
    """A node with a job, a miner and a receipt, so that fuzzing reaches past the 404s."""
    workdir = tmp_path_factory.mktemp("fuzz")
    node = NodeProcess(
        workdir / "data", api_keys=[*ALL_KEYS, PEER], extra_args=("--rate-limit", "0", "--unauth-rate-limit", "0")
    )
    with node:
        with node.client(CLIENT_A["key"]) as client, node.client(MINER_1["key"]) as miner:
            done = client.post("/v1/jobs", json={"prompt": "fuzz me"}).json()["job_id"]
            pending = client.post("/v1/jobs", json={"prompt": "fuzz me too"}).json()["job_id"]
            miner.post("/v1/miners/register", json={"miner_id": "fuzz-miner", "capabilities": ["llama3.2"]})
            miner.post(f"/v1/jobs/{done}/claim", json={"miner_id": "fuzz-miner"})
            receipt = miner.post(f"/v1/jobs/{done}/complete", json={"miner_id": "fuzz-miner", "result": "ok"}).json()
        config = workdir / "schemathesis.toml"
        config.write_text(
            "[parameters]\n"
            f'"path.job_id" = "{pending}"\n'
            f'"path.receipt_id" = "{receipt["receipt_id"]}"\n'
            '"query.miner_id" = "fuzz-miner"\n'
            '"path.height_or_hash" = "1"\n'
        )
        yield node, config


@pytest.mark.parametrize("role", list(ROLES))
def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_schema_violation(
    seeded: tuple[NodeProcess, Path], role: str
) -> None:
    node, config = seeded
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is installed with the test extras"
    args = [
        cli,
        "--config-file",
        str(config),
        "run",
        f"{node.url}/openapi.json",
        "--url",
        node.url,
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--generation-with-security-parameters",
        "false",
        "--request-timeout",
        "30",
        "--phases",
        "coverage,fuzzing,stateful",
    ]
    if ROLES[role] is not None:
        args += ["--header", f"X-Api-Key: {ROLES[role]}"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    assert "Stateful (in" in run.stdout and "Scenarios:" in run.stdout, run.stdout[-3000:]  # the phase ran
