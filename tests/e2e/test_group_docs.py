"""The manual's 3-member group on one machine (docs/operate/group.md), run as written: group-init,
one etcd member, three members, a client key made through one member, a job sent to another."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.group import ETCD
from tests.e2e.replication import wait_until
from tests.support import free_port

pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd is not installed (apt-get install etcd-server)")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operate" / "group.md"
AITBC_NODE = Path(sys.executable).parent / "aitbc-node"


def one_machine_block() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("A 3-member group on one machine") :]
    found = re.search(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert found is not None
    return found.group(1)


def consecutive_free_ports(n: int) -> int:
    """The first of n consecutive free ports on 127.0.0.1."""

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def find() -> int | None:
        base = free_port()
        return base if base + n < 65536 and all(free(base + i) for i in range(n)) else None

    found: int = wait_until(find, "consecutive free ports", 10)
    return found


def test_the_one_machine_group_runs_as_written(tmp_path: Path) -> None:
    script = one_machine_block()
    assert script.startswith("python3 -m venv .venv && .venv/bin/pip install -e .\n")
    script = script.split("\n", 1)[1]  # this test runs in the installed environment already
    base, etcd_port = consecutive_free_ports(3), free_port()
    script = script.replace(".venv/bin/aitbc-node", str(AITBC_NODE)).replace(":2379", f":{etcd_port}")
    script = script.replace("$((8001 + n))", f"$(({base} + n))")
    for i in range(3):
        script = script.replace(f"127.0.0.1:{8001 + i}", f"127.0.0.1:{base + i}")
    # etcd's peer port is left at its default (2380), as the page has it. The client key the
    # page made is printed last, for the checks below.
    script += "printf '\\n%s\\n' \"$CLIENT_KEY\"\n"
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PATH": f"{AITBC_NODE.parent}:{os.environ['PATH']}"},
    )
    try:
        out, err = shell.communicate(timeout=120)
        assert shell.returncode == 0, err + "".join(
            p.read_text(errors="replace")[-3000:] for p in (tmp_path / "grp").glob("*.log")
        )
        assert '"role":"sequencer"' in out.replace(" ", "") or '"role":"standby"' in out.replace(" ", "")
        assert "etcd" in out and "ok" in out  # the status text of a member
        *_, answer, client_key = out.strip().splitlines()
        job = json.loads(answer)
        assert job["status"] == "pending" and job["job_id"]

        def served(url: str) -> bool:
            return httpx.get(url, headers={"X-Api-Key": client_key}).status_code == 200

        for m in range(3):  # every member serves the job (a standby applies the block moments later)
            url = f"http://127.0.0.1:{base + m}/v1/jobs/{job['job_id']}"
            wait_until(functools.partial(served, url), url)
        for key_file in ["admin.key", "peer.key", "member-0.key"]:
            assert (tmp_path / "grp" / key_file).stat().st_mode & 0o077 == 0
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=30)

        def stopped() -> bool:
            try:
                os.killpg(shell.pid, 0)
            except ProcessLookupError:
                return True
            return False

        try:
            wait_until(stopped, "the group started by the page to stop", 30)
        except AssertionError:
            os.killpg(shell.pid, signal.SIGKILL)
