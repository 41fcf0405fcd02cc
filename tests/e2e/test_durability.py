"""Every acknowledgement that claims durability is made only after the syncs that make it true.

A kill -9 loses nothing the kernel already holds, so the crash tests cannot see a missing sync;
a power cut can. These tests run the node and its commands under strace and read, from the
syscalls, that each acknowledgement (a 2xx answer to a write, a height a follower reports, a
command's "done" line) leaves the process only after the fdatasync of the LevelDB write-ahead
log record it depends on, and after the fsync of each directory whose new entry it depends on.
See tests/e2e/syscall_trace.py for how the trace is read, and why its order is sound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from node.datadir import api_key_hash
from tests.e2e.replication import wait_until
from tests.e2e.syscall_trace import Call, Trace, TracedNode, run_traced_cli, strace_unavailable
from tests.support import ALL_KEYS, CLIENT_A, CLIENT_B, MINER_1, MINER_2, NodeProcess, run_cli

WORKERS = 4
JOBS_PER_WORKER = 4
WRITE_ID = "dur-w"
HEALTH_ID = "dur-h"
READ_ID = "dur-r"
FOLLOWER_TARGET_HEIGHT = 8


@pytest.fixture(scope="module", autouse=True)
def strace_can_trace() -> None:
    reason = strace_unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    # Paths in the trace are resolved ones (-yy reads them from /proc): compare like with like.
    return tmp_path.resolve()


def _report(problems: list[str], limit: int = 12) -> str:
    more = f"\n  … and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} acknowledgement(s) before their sync:\n  " + "\n  ".join(problems[:limit]) + more


def _block_synced_before(trace: Trace, height: int, ack: Call, what: str) -> str | None:
    """None when block `height`'s log record was synced before ack was sent; else why not."""
    record = trace.wal.blocks().get(height)
    if record is None:
        return f"{what}: claims height {height} at {ack.where()}, but block {height} was never written to a log"
    synced = trace.wal.durable_since(record)
    if synced is None:
        return (
            f"{what}: claims height {height} at {ack.where()}; block {height} was written to {record.path} "
            f"at {record.written.where()} and never synced"
        )
    if synced.exit > ack.entry:
        return (
            f"{what}: claims height {height} at {ack.where()}; block {height} was written to {record.path} "
            f"at {record.written.where()} but synced only at {synced.where()}"
        )
    return None


# -- the authority: a 2xx to a write leaves after its block's log sync ---------------------


async def _write_load(url: str) -> dict[str, int]:
    """Submits, claims and completes from several clients at once; every write carries an
    X-Request-Id of ours (echoed in the answer), so the trace tells which answer is which."""
    acknowledged: dict[str, int] = {}
    clients = [CLIENT_A, CLIENT_B]
    miners = [MINER_1, MINER_2]

    async def worker(i: int) -> None:
        client = {"X-Api-Key": clients[i % 2]["key"]}
        miner = {"X-Api-Key": miners[i % 2]["key"]}
        miner_id = f"dur-miner-{i}"
        n = 0

        async def write(path: str, body: dict[str, str | list[str]], headers: dict[str, str]) -> httpx.Response:
            nonlocal n
            n += 1
            rid = f"{WRITE_ID}-{i}-{n}"
            r = await http.post(path, json=body, headers={**headers, "X-Request-Id": rid})
            assert r.status_code < 300, f"{path}: {r.status_code} {r.text}"
            assert r.headers["x-request-id"] == rid
            acknowledged[rid] = r.status_code
            return r

        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await write("/v1/miners/register", {"miner_id": miner_id, "capabilities": ["llama3.2"]}, miner)
            for j in range(JOBS_PER_WORKER):
                job = (await write("/v1/jobs", {"prompt": f"durability {i} {j}"}, client)).json()["job_id"]
                await write(f"/v1/jobs/{job}/claim", {"miner_id": miner_id}, miner)
                await write(f"/v1/jobs/{job}/complete", {"miner_id": miner_id, "result": "done"}, miner)

    async with asyncio.timeout(120):
        await asyncio.gather(*(worker(i) for i in range(WORKERS)))
    return acknowledged


def test_a_2xx_to_a_write_is_sent_after_its_block_is_synced(base: Path) -> None:
    trace_file = base / "authority.trace"
    node = TracedNode(base / "data", trace_file, api_keys=ALL_KEYS)
    with node:
        acknowledged = asyncio.run(_write_load(node.url))
    assert len(acknowledged) == WORKERS * (1 + 3 * JOBS_PER_WORKER)

    trace = Trace(trace_file)
    answers = {r.headers.get("x-request-id"): r for r in trace.http_responses()}
    problems = []
    for rid, status in sorted(acknowledged.items()):
        answer = answers.get(rid)
        assert answer is not None, f"the client got {status} for {rid}, but the trace shows no such answer"
        assert answer.status == status
        height = answer.headers.get("x-aitbc-height")
        assert height is not None and height.isdigit(), f"{rid}: a write's answer without X-Aitbc-Height"
        # The height an answer carries is the tip when it was sent: at least its write's block.
        problem = _block_synced_before(trace, int(height), answer.first_write, f"{rid} ({status})")
        if problem is not None:
            problems.append(problem)
    assert not problems, _report(problems)


# -- a follower: a height it reports is a height it holds durably ------------------------


PEER = {"key": "peer-3f9c1a7e5b2d8f4c6a0e9b7d1c5f3a8e", "role": "peer", "name": "durability-follower"}


@pytest.fixture
def upstream(base: Path) -> Iterator[NodeProcess]:
    with NodeProcess(base / "authority", api_keys=[*ALL_KEYS, PEER]) as node:
        yield node


def test_a_follower_reports_only_heights_it_has_synced(base: Path, upstream: NodeProcess) -> None:
    trace_file = base / "follower.trace"
    genesis = upstream.data_dir / "genesis.json"
    node = TracedNode(
        base / "follower",
        trace_file,
        extra_args=("--follow", upstream.url, "--genesis", str(genesis), "--peer-key", PEER["key"]),
    )
    polls = 0
    with node, httpx.Client(timeout=30) as http:

        def poll() -> bool:
            """One /health and one /v1 read on the follower, tagged; True once it is at the target."""
            nonlocal polls
            polls += 1
            h = http.get(f"{node.url}/health", headers={"X-Request-Id": f"{HEALTH_ID}-{polls}"})
            r = http.get(
                f"{node.url}/v1/chain/head", headers={"X-Api-Key": PEER["key"], "X-Request-Id": f"{READ_ID}-{polls}"}
            )
            return h.json()["height"] >= FOLLOWER_TARGET_HEIGHT and r.status_code == 200

        with upstream.client(CLIENT_A["key"]) as client:
            for i in range(FOLLOWER_TARGET_HEIGHT):
                assert client.post("/v1/jobs", json={"prompt": f"follow {i}"}).status_code == 201
                poll()
        wait_until(poll, f"the follower to reach height {FOLLOWER_TARGET_HEIGHT}")

    trace = Trace(trace_file)
    problems = []
    checked: set[int] = set()
    for answer in trace.http_responses():
        rid = answer.headers.get("x-request-id", "")
        if answer.status != 200 or not rid.startswith((HEALTH_ID, READ_ID)):
            continue
        if rid.startswith(HEALTH_ID):
            height = json.loads(answer.body)["height"]
        else:
            height = int(answer.headers["x-aitbc-height"])
        checked.add(height)
        problem = _block_synced_before(trace, height, answer.first_write, rid)
        if problem is not None:
            problems.append(problem)
    assert not problems, _report(problems)
    assert max(checked) >= FOLLOWER_TARGET_HEIGHT, f"the follower's answers covered only heights {sorted(checked)}"


# -- commands: what they report done is on disk ------------------------------------------


def _init(data_dir: Path) -> None:
    done = run_cli("init", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr


def test_init_makes_its_files_and_directories_durable_before_it_prints_the_admin_key(base: Path) -> None:
    data_dir = base / "new" / "data"  # two directories to create
    trace = base / "init.trace"
    done = run_traced_cli(trace, "init", "--data-dir", str(data_dir))
    admin_key = (data_dir / "admin_key").read_text().strip()
    assert admin_key in done.stdout
    t = Trace(trace)
    ack = t.first_write("pipe:", admin_key.encode())
    problems = []
    for name in ("node_key", "admin_key", "genesis.json"):
        problems += t.file_synced_before_rename(data_dir / name, data_dir / f"{name}.tmp", ack)
    for made in (base / "new", data_dir, data_dir / "chain"):
        problems += t.dir_created_durably(made, ack)
    # genesis.json marks the data dir as initialised: the keys it depends on are durable first.
    marked = t.renames_to(data_dir / "genesis.json")[0]
    for name in ("node_key", "admin_key"):
        problems += t.dir_synced_between(
            t.renames_to(data_dir / name)[0], data_dir / name, marked, "genesis.json's rename"
        )
    problems += t.wal.not_durable_at(ack)
    assert not problems, _report(problems)


def test_offline_keys_create_prints_the_key_after_its_block_is_synced(base: Path) -> None:
    data_dir = base / "data"
    _init(data_dir)
    trace = base / "keys.trace"
    done = run_traced_cli(trace, "keys", "create", "--role", "client", "--name", "durable", "--data-dir", str(data_dir))
    key = done.stdout.strip()
    t = Trace(trace)
    ack = t.first_write("pipe:", key.encode())
    holding = [r for r in t.wal.records if any(v and api_key_hash(key).encode() in v for _, v in r.entries)]
    assert holding, "no log record holds the new account's key hash"
    problems = []
    for record in holding:
        for height in record.block_heights():
            problem = _block_synced_before(t, height, ack, "keys create")
            if problem is not None:
                problems.append(problem)
    problems += t.wal.not_durable_at(ack)
    assert not problems, _report(problems)


def test_reindex_reports_done_after_its_last_batch_is_synced(base: Path) -> None:
    data_dir = base / "data"
    _init(data_dir)
    for i in range(3):
        created = run_cli("keys", "create", "--role", "client", "--name", f"c{i}", "--data-dir", str(data_dir))
        assert created.returncode == 0, created.stderr
    trace = base / "reindex.trace"
    run_traced_cli(trace, "reindex", "--data-dir", str(data_dir))
    t = Trace(trace)
    ack = t.first_write("pipe:", b"ok: state and indexes rebuilt")
    cleared = [r for r in t.wal.records if (b"mreindex", None) in r.entries]
    assert cleared, "no log record removes the reindex mark"
    problems = t.wal.not_durable_at(ack)
    if all(r.written.exit > ack.entry for r in cleared):
        problems.append(f"the reindex mark was removed only after the acknowledgement at {ack.where()}")
    assert not problems, _report(problems)


def _chain_with_an_account(data_dir: Path) -> None:
    _init(data_dir)
    created = run_cli("keys", "create", "--role", "client", "--name", "c", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr


def test_backup_reports_done_after_its_file_and_directory_are_synced(base: Path) -> None:
    data_dir = base / "data"
    _chain_with_an_account(data_dir)
    target = base / "out" / "chain.backup.gz"
    target.parent.mkdir()
    trace = base / "backup.trace"
    run_traced_cli(trace, "backup", "--data-dir", str(data_dir), "--to", str(target))
    t = Trace(trace)
    ack = t.first_write("pipe:", b"backup of chain")
    problems = t.file_synced_before_rename(target, target.with_name(target.name + ".part"), ack)
    assert not problems, _report(problems)


@pytest.mark.parametrize("with_node_key", [False, True], ids=["follower-bootstrap", "authority"])
def test_restore_reports_done_after_its_chain_files_and_directories_are_synced(base: Path, with_node_key: bool) -> None:
    data_dir = base / "data"
    _chain_with_an_account(data_dir)
    backup = base / "chain.backup.gz"
    made = run_cli("backup", "--data-dir", str(data_dir), "--to", str(backup))
    assert made.returncode == 0, made.stderr
    restored = base / "restored"
    trace = base / "restore.trace"
    key_args = ("--node-key", str(data_dir / "node_key")) if with_node_key else ()
    run_traced_cli(trace, "restore", str(backup), "--data-dir", str(restored), *key_args)
    t = Trace(trace)
    ack = t.first_write("pipe:", b"restored chain")
    problems = t.dir_created_durably(restored, ack)
    names = ["chain", "node_key", "genesis.json"] if with_node_key else ["chain", "genesis.json"]
    for name in names[1:]:
        problems += t.file_synced_before_rename(restored / name, restored / f"{name}.tmp", ack)
    # genesis.json marks a data dir as initialised: what it depends on (the chain, the node key)
    # is durable before that mark can be, or a power cut could leave an "initialised" dir without them.
    marked = t.renames_to(restored / "genesis.json")
    assert marked, "restore never renamed genesis.json into place"
    for name in names[:-1]:
        moved = t.renames_to(restored / name)
        assert moved, f"restore never renamed {name} into place"
        problems += t.dir_synced_between(moved[-1], restored / name, marked[0], "genesis.json's rename")
    if not t.wal.records:
        problems.append("restore wrote no log record")
    problems += t.wal.not_durable_at(ack)
    assert not problems, _report(problems)
