"""Followers, the explorer, checkpoints and receipts across a sequencer change in an authority
group (a real 3-member etcd and 3 members on 127.0.0.1), and the equivocation alarm: a follower
refuses another block at a height it holds, sealed by another genesis authority."""

from __future__ import annotations

import functools
import json
import re
import signal
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chain.blocks import Block, seal_header, tx_root
from chain.crypto import NodeKey
from chain.merkle import consistency_proof, merkle_root
from chain.proofs import sign_checkpoint
from tests.e2e.group import ETCD, EtcdCluster, group_genesis, member, role_of, sequencer, stop_all, tip_hash
from tests.e2e.replication import PEER, follower, health, send_json, wait_until
from tests.support import CLIENT_A, MINER_1, NodeProcess, run_cli

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")


@dataclass
class Group:
    base: Path
    genesis: Path
    keys: list[NodeKey]
    members: list[NodeProcess]
    followers: list[NodeProcess] = field(default_factory=list)

    def follower(self, name: str, *upstreams: NodeProcess | str) -> NodeProcess:
        urls = ",".join(u if isinstance(u, str) else u.url for u in upstreams)
        node = follower(self.base, name, urls, self.genesis)
        self.followers.append(node)
        return node.start()

    def label(self, key: str) -> str:
        return f"authority {[k.public_hex for k in self.keys].index(key) + 1} of {len(self.keys)}"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    etcd = EtcdCluster(tmp_path).start()
    genesis, key_files = group_genesis(tmp_path)
    keys = [NodeKey(bytes.fromhex(k.read_text())) for k in key_files]
    g = Group(tmp_path, genesis, keys, [member(tmp_path, i, genesis, key_files[i], etcd) for i in range(3)])
    try:
        for m in g.members:
            m.start()
        yield g
    finally:
        stop_all([*g.followers, *g.members])
        etcd.stop()


def write(node: NodeProcess, prompt: str, key: str = CLIENT_A["key"], path: str = "/v1/jobs", **body: Any) -> Any:
    """A write retried with one Idempotency-Key until it is acknowledged (through a failover)."""
    idempotency = str(uuid.uuid4())

    def attempt() -> Any:
        try:
            r = httpx.post(
                node.url + path,
                json=body or {"prompt": prompt},
                headers={"X-Api-Key": key, "Idempotency-Key": idempotency},
                timeout=10,
            )
        except httpx.HTTPError:
            return None
        if r.status_code in (502, 503, 504):
            return None
        assert r.status_code in (200, 201), r.text
        return r.json()

    return wait_until(attempt, f"{path} to be acknowledged by {node.url}", 60)


def holds(node: NodeProcess, height: int) -> bool:
    try:
        return bool(health(node)["height"] >= height)
    except (httpx.HTTPError, ValueError):
        return False


def proposers(node: NodeProcess) -> list[str]:
    """The sealer of every block the node holds above 0 (as the explorer lists them)."""
    with node.client() as http:
        top = http.get("/health").json()["height"]
        blocks = http.get("/explorer/blocks", params={"limit": min(top, 100)}).json()
    return [b["proposer"] for b in blocks if b["height"] > 0]


class ExplorerFeed:
    """A WebSocket client of a node's /explorer/ws, collecting every block announced."""

    def __init__(self, node: NodeProcess) -> None:
        self.url = f"ws://127.0.0.1:{node.port}/explorer/ws"
        self.seen: list[dict[str, Any]] = []
        self.closed = False
        self.ws: ClientConnection | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), f"cannot connect to {self.url}"

    def _read(self) -> None:
        with connect(self.url) as ws:
            self.ws = ws
            try:
                for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "snapshot":
                        self.ready.set()
                    elif message["type"] == "block":
                        self.seen.append(message["block"])
            except ConnectionClosed:
                pass
        self.closed = True

    def announced(self, sealers: set[str]) -> bool:
        """Whether blocks sealed by each of these keys were announced."""
        return sealers <= {b["proposer"] for b in self.seen}

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.thread.join(timeout=10)


def witness(url: str, state: Path, genesis: Path | None) -> Any:
    extra = ("--genesis", str(genesis)) if genesis is not None else ()
    return run_cli("witness", url, "--api-key", CLIENT_A["key"], "--state", str(state), "--once", "-v", *extra)


def test_a_follower_the_explorer_feed_and_a_witness_carry_on_across_a_kill_of_the_sequencer(group: Group) -> None:
    lead = sequencer(group.members)
    standby, other = [m for m in group.members if m is not lead]
    # The follower's first upstream is the sequencer, which is about to die.
    f = group.follower("follower", lead, standby, other)
    job = write(f, "before the failover")  # forwarded to the sequencer
    wait_until(lambda: holds(f, tip_hash(lead)[0]), "the follower to hold the first write")
    feeds = [ExplorerFeed(standby), ExplorerFeed(f)]
    witnessed, trusted_on_first_use = group.base / "witness.json", group.base / "witness-tofu.json"
    for state, genesis in ((witnessed, group.genesis), (trusted_on_first_use, None)):
        first = witness(standby.url, state, genesis)
        assert first.returncode == 0, first.stderr
    write(f, "still before")

    lead.kill9()
    after = write(f, "after the failover")  # the follower forwards it to a live member
    new_lead = sequencer([standby, other])
    write(f, "after, again")
    both = {key_of(group, lead), key_of(group, new_lead)}
    try:
        for feed in feeds:
            wait_until(functools.partial(feed.announced, both), "the explorer feed to announce both sequencers' blocks")
            assert not feed.closed
            heights = [b["height"] for b in feed.seen]
            assert heights == sorted(heights) and len(set(heights)) == len(heights)
    finally:
        for feed in feeds:
            feed.close()

    # The follower follows a live member now, level with the group, and says so.
    wait_until(lambda: tip_hash(f) == tip_hash(new_lead), "the follower to hold the new sequencer's tip")
    h = health(f)
    assert h["status"] == "ok" and h["sync"] == "live" and h["upstream"] != lead.url and "alarm" not in h, h
    assert h["upstreams"] == [lead.url, standby.url, other.url]
    with f.client(CLIENT_A["key"]) as http:
        mine = {j["job_id"] for j in http.get("/v1/jobs", params={"limit": 100}).json()}
    assert {job["job_id"], after["job_id"]} <= mine

    # Checkpoints: each member signs with its own key; any genesis authority's checkpoint that
    # extends the last one seen is accepted (with --genesis, or the authorities trusted on first use).
    for state, genesis, url in (
        (witnessed, group.genesis, standby.url),
        (trusted_on_first_use, None, standby.url),
        (witnessed, group.genesis, new_lead.url),
        (trusted_on_first_use, None, new_lead.url),
        (witnessed, group.genesis, other.url),
    ):
        again = witness(url, state, genesis)
        assert again.returncode == 0 and "ALARM" not in again.stderr, again.stderr
    assert json.loads(witnessed.read_text())["size"] > 2

    # Every block shows who sealed it: the key and its place in the genesis list.
    sealed = {key_of(group, lead): 0, key_of(group, new_lead): 0}
    with f.client() as http:
        for height in range(1, health(f)["height"] + 1):
            block = http.get(f"/explorer/blocks/{height}").json()
            assert block["sealer"] == group.label(block["proposer"]) and block["seal_valid"] is True
            if block["proposer"] in sealed:
                sealed[block["proposer"]] = height
        assert all(sealed.values()), sealed
        for key, height in sealed.items():
            page = http.get(f"/blocks/{height}").text
            assert group.label(key) in page and key in page
        assert http.get("/explorer/blocks/0").json()["sealer"] is None


def key_of(group: Group, node: NodeProcess) -> str:
    """The authority key a member seals with (member i holds key i)."""
    return group.keys[group.members.index(node)].public_hex


def complete_a_job(node: NodeProcess, miner_id: str, prompt: str) -> dict[str, Any]:
    job = write(node, prompt)
    write(node, "", key=MINER_1["key"], path=f"/v1/jobs/{job['job_id']}/claim", miner_id=miner_id)
    receipt: dict[str, Any] = write(
        node, "", key=MINER_1["key"], path=f"/v1/jobs/{job['job_id']}/complete", miner_id=miner_id, result="done"
    )
    return receipt


def test_followers_of_any_member_keep_following_and_what_two_sealers_signed_verifies(group: Group) -> None:
    lead = sequencer(group.members)
    a, b = [m for m in group.members if m is not lead]
    # One follower per member, each with that member as its only upstream: the sequencer's
    # becomes a standby's, one standby's becomes the new sequencer's, the other stays a standby's.
    followers = {m.url: group.follower(f"follower-of-{group.members.index(m)}", m) for m in group.members}
    miner = write(lead, "", key=MINER_1["key"], path="/v1/miners/register", miner_id="gpu-g", capabilities=["llama3.2"])
    first = complete_a_job(lead, miner["miner_id"], "sealed by the first sequencer")

    assert lead.proc is not None
    lead.proc.send_signal(signal.SIGSTOP)  # past its lease: another member is elected
    new_lead = sequencer([a, b])
    second = complete_a_job(new_lead, miner["miner_id"], "sealed by the second sequencer")
    lead.proc.send_signal(signal.SIGCONT)  # it wakes up deposed and applies what it missed
    wait_until(lambda: role_of(lead) == "standby", "the paused sequencer to step down")
    write(lead, "through the old sequencer, now a standby")

    nodes = [*group.members, *followers.values()]
    wait_until(lambda: len({tip_hash(n) for n in nodes}) == 1, "every member and follower to hold the same tip")
    for f in followers.values():
        h = health(f)
        assert h["status"] == "ok" and h["sync"] == "live", h
    assert {key_of(group, lead), key_of(group, new_lead)} <= set(proposers(followers[a.url]))

    # verify-receipt accepts receipts signed by either authority, each in a block it sealed.
    signers = []
    for receipt in (first, second):
        with followers[b.url].client(CLIENT_A["key"]) as http:
            bundle = http.get(f"/v1/receipts/{receipt['receipt_id']}/proof")
        assert bundle.status_code == 200, bundle.text
        path = group.base / f"{receipt['receipt_id']}.proof.json"
        path.write_bytes(bundle.content)
        done = run_cli("verify-receipt", str(path), "--genesis", str(group.genesis))
        assert done.returncode == 0, done.stderr
        signed = re.search(r"receipt signed by authority ([0-9a-f]{64}); block sealed by ([0-9a-f]{64})", done.stdout)
        assert signed is not None, done.stdout
        signers.append(signed.groups())
    assert signers == [(key_of(group, lead),) * 2, (key_of(group, new_lead),) * 2]

    # verify re-derives the whole chain, sealed by two authorities, on a follower and a member.
    for node in (followers[lead.url], a):
        node.stop()
        checked = run_cli("verify", "--data-dir", str(node.data_dir), timeout=120)
        assert checked.returncode == 0, checked.stderr


class ForgingUpstream:
    """A fake upstream in front of a real member: it relays GET /v1/chain/blocks (without waiting:
    the follower polls it), until told to fork. From then on it serves another block at the fork
    height, and one on top of it, both sealed by another genesis authority, and a checkpoint of
    that history signed by that authority."""

    def __init__(self, real: NodeProcess) -> None:
        self.real = real
        self.forged: dict[int, Block] = {}
        self.leaves: list[bytes] = []
        self.key: NodeKey | None = None
        self.served_forged = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                if url.path == "/v1/chain/blocks":
                    body = upstream.blocks(int(query.get("from", "1")), int(query.get("limit", "100")))
                elif url.path == "/v1/chain/checkpoint" and upstream.key is not None:
                    body = upstream.checkpoint()
                elif url.path == "/v1/chain/consistency" and upstream.key is not None:
                    proof = consistency_proof(upstream.leaves[: int(query["to"])], int(query["from"]))
                    body = json.dumps({"proof": [h.hex() for h in proof]}).encode()
                else:
                    self.send_error(404)
                    return
                send_json(self, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def real_blocks(self, start: int, limit: int) -> dict[str, Any]:
        with self.real.client(PEER["key"]) as http:
            answer: dict[str, Any] = http.get("/v1/chain/blocks", params={"from": start, "limit": limit}).json()
        return answer

    def blocks(self, start: int, limit: int) -> bytes:
        answer = self.real_blocks(start, limit)
        if self.forged and start >= min(self.forged):
            block = self.forged[min(start, max(self.forged))]
            self.served_forged += 1
            answer["blocks"] = [block.to_dict()]
            answer["head"]["height"] = max(self.forged)
        return json.dumps(answer).encode()

    def fork(self, height: int, keys: list[NodeKey]) -> tuple[Block, Block]:
        """Forge blocks `height` and `height + 1`, sealed by an authority that did not seal the real
        block at `height`."""
        chain = [Block.from_dict(b) for b in self.real_blocks(0, height + 1)["blocks"]]
        real = chain[height]
        key = next(k for k in keys if k.public_hex != real.header.proposer)
        header = replace(real.header, timestamp=real.header.timestamp + 1, proposer=key.public_hex)
        at = Block(header, seal_header(header, key), real.transactions)
        on_top = replace(
            header,
            height=height + 1,
            prev_hash=at.hash,
            timestamp=header.timestamp + 1,
            tx_root=tx_root(()),
            tx_count=0,
        )
        above = Block(on_top, seal_header(on_top, key), ())
        self.leaves = [b.header.hash_bytes for b in chain[:height]] + [at.header.hash_bytes, above.header.hash_bytes]
        self.key = key
        self.forged = {height: at, height + 1: above}
        return at, above

    def checkpoint(self) -> bytes:
        assert self.key is not None
        chain_id = self.real_blocks(0, 1)["head"]["chain_id"]
        note = sign_checkpoint(chain_id, len(self.leaves), merkle_root(self.leaves), self.key)
        return json.dumps({"note": note, "signer": self.key.public_hex, "size": len(self.leaves)}).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_a_follower_refuses_an_equivocation_with_an_alarm_and_keeps_the_chain(group: Group) -> None:
    sequencer(group.members)
    x = group.members[0]
    write(x, "one")
    write(x, "two")
    fake = ForgingUpstream(x)
    try:
        # It follows the fake first, then the real member.
        f = group.follower("follower", fake.url, x)
        wait_until(lambda: tip_hash(f) == tip_hash(x), "the follower to hold the member's chain")
        witnessed, trusted_on_first_use = group.base / "witness.json", group.base / "witness-tofu.json"
        assert witness(x.url, witnessed, group.genesis).returncode == 0
        assert witness(x.url, trusted_on_first_use, None).returncode == 0
        height, ours = tip_hash(f)
        at, _ = fake.fork(height, group.keys)
        ours_sealer = Block.from_dict(fake.real_blocks(height, 1)["blocks"][0]).header.proposer

        h = wait_until(lambda: (lambda h: h if "alarm" in h else None)(health(f)), "the equivocation alarm")
        alarm = h["alarm"]
        assert h["status"] == "degraded" and alarm["kind"] == "equivocation" and alarm["height"] == height
        assert alarm["ours"] == {"hash": ours, "sealer": ours_sealer, "authority": group.label(ours_sealer)}
        assert alarm["theirs"] == {
            "hash": at.hash,
            "sealer": at.header.proposer,
            "authority": group.label(at.header.proposer),
        }
        assert alarm["upstream"] == fake.url
        # Refused: the follower's block at that height is its own, and it moved on to the member.
        assert fake.served_forged >= 2
        write(x, "three")
        wait_until(lambda: tip_hash(f) == tip_hash(x), "the follower to follow the real member again")
        with f.client(PEER["key"]) as http:
            kept = http.get("/v1/chain/blocks", params={"from": height, "limit": 1}).json()["blocks"][0]
        assert Block.from_dict(kept).hash == ours
        with f.client() as http:
            metrics = http.get("/metrics").text
            status = http.get("/status").json()
        assert re.search(r"^aitbc_equivocations_total 1\.0$", metrics, re.M), metrics
        assert status["sync"]["alarm"]["theirs"]["hash"] == at.hash
        assert health(f)["alarm"] == alarm  # it stays for an operator to see
        text = run_cli("status", "--node", f.url)
        assert "ALARM" in text.stdout and "equivocation" in text.stdout

        # The witness accepts any genesis authority's checkpoint, yet alarms on this rewritten history.
        for state, genesis in ((witnessed, group.genesis), (trusted_on_first_use, None)):
            alarmed = witness(fake.url, state, genesis)
            assert alarmed.returncode == 3 and "ALARM" in alarmed.stderr and "not consistent" in alarmed.stderr
    finally:
        fake.close()
    f.stop()
    log = "".join(f.output)
    line = next(line for line in log.splitlines() if "EQUIVOCATION" in line)
    assert "ERROR" in line or "error" in line
    for needed in (ours, at.hash, ours_sealer, at.header.proposer):
        assert needed in line
    checked = run_cli("verify", "--data-dir", str(f.data_dir), timeout=120)
    assert checked.returncode == 0, checked.stderr


def test_a_follower_keeps_its_chain_when_its_only_upstream_equivocates(group: Group) -> None:
    """With one upstream, the follower stays at its height, alarmed, retrying; it applies nothing."""
    sequencer(group.members)
    x = group.members[1]
    write(x, "one")
    fake = ForgingUpstream(x)
    try:
        f = group.follower("follower", fake.url)
        wait_until(lambda: tip_hash(f) == tip_hash(x), "the follower to hold the member's chain")
        held = tip_hash(f)
        fake.fork(held[0], group.keys)
        wait_until(lambda: "alarm" in health(f), "the equivocation alarm")
        served = fake.served_forged
        wait_until(lambda: fake.served_forged > served + 1, "the follower to retry")
        assert tip_hash(f) == held and health(f)["check"] == "equivocation"
        with f.client() as http:
            assert re.search(r"^aitbc_equivocations_total 1\.0$", http.get("/metrics").text, re.M)
    finally:
        fake.close()
