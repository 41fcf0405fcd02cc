"""A group's blocks stay under etcd's default request limit (1.5 MiB): many large writes at once
are all acknowledged and none is lost, their transactions spread over several blocks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.blocks import Block
from tests.e2e.group import ETCD, EtcdCluster, RunningGroup, group_genesis, member, running_group, sequencer, tip_hash
from tests.e2e.replication import PEER, wait_until
from tests.support import CLIENT_A, NodeProcess, run_cli

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

PROMPT_BYTES = 800_000
"""Two such transactions take more than etcd's default request limit (1,572,864 bytes): without
the cap on a block's bytes, a block holding two would be refused by etcd, and so their writes."""
WRITERS = 16
ROUNDS = 3
MAX_BLOCK_BYTES = 1_400_000
"""--max-block-bytes by default."""


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RunningGroup]:
    with running_group(tmp_path, max_prompt_bytes=1024 * 1024) as g:  # etcd's default --max-request-bytes
        yield g


def blocks_of(node: NodeProcess, after: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    with node.client(PEER["key"]) as http:
        while True:
            answer = http.get("/v1/chain/blocks", params={"from": after + 1 + len(blocks), "limit": 4}).json()
            if not answer["blocks"]:
                return blocks
            blocks += answer["blocks"]


def deferred(blocks: list[dict[str, Any]]) -> int:
    """Transactions accepted before the block ahead of theirs was sealed, yet not in it: they were
    in the mempool as that block was built, and waited for the next (no block here is full by count)."""
    return sum(
        1
        for before, block in zip(blocks, blocks[1:], strict=False)
        for tx in block["transactions"]
        if tx["timestamp"] < before["header"]["timestamp"]
    )


def test_many_large_writes_at_once_are_all_acknowledged_in_blocks_under_etcds_limit(group: RunningGroup) -> None:
    lead = sequencer(group.members)
    start, _ = tip_hash(lead)
    acknowledged: dict[str, str] = {}

    def write(i: int) -> None:
        prompt = f"{i:04d}-{uuid.uuid4()}-" + "p" * PROMPT_BYTES
        target = group.members[i % len(group.members)]  # standbys forward to the sequencer
        r = httpx.post(
            target.url + "/v1/jobs", json={"prompt": prompt}, headers={"X-Api-Key": CLIENT_A["key"]}, timeout=60
        )
        assert r.status_code == 201, r.text[:500]
        acknowledged[prompt[:41]] = r.json()["job_id"]

    blocks: list[dict[str, Any]] = []
    sent = 0
    for _ in range(ROUNDS):  # until writes arriving together had to wait for a next block
        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(write, range(sent, sent + WRITERS)))
        sent += WRITERS
        blocks = blocks_of(lead, start)
        if deferred(blocks):
            break

    assert len(acknowledged) == sent  # every write acknowledged
    sizes = [len(Block.from_dict(b).encode()) for b in blocks]
    print(
        f"\n{len(acknowledged)} writes of {PROMPT_BYTES} bytes; {len(blocks)} blocks, largest {max(sizes)} bytes; "
        f"{deferred(blocks)} transactions waited for the next block"
    )
    assert max(sizes) <= MAX_BLOCK_BYTES
    assert deferred(blocks) > 0
    prompts_on_chain = [tx["payload"]["prompt"][:41] for b in blocks for tx in b["transactions"]]
    assert sorted(prompts_on_chain) == sorted(acknowledged)  # none lost, none twice
    wait_until(lambda: len({tip_hash(m) for m in group.members}) == 1, "every member to hold the same tip")
    with group.members[1].client(CLIENT_A["key"]) as http:
        assert all(http.get(f"/v1/jobs/{job_id}").status_code == 200 for job_id in acknowledged.values())


def test_a_group_member_whose_body_limit_would_let_a_write_outgrow_a_block_is_refused_at_start(tmp_path: Path) -> None:
    genesis, keys = group_genesis(tmp_path)
    node = member(tmp_path, 0, genesis, keys[0], EtcdCluster(tmp_path, 1), "--max-body-bytes", "2097152")
    result = run_cli(*node.args()[3:], timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--max-body-bytes 2097152" in result.stderr and "--max-block-bytes 1400000" in result.stderr
