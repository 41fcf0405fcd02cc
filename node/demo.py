"""`aitbc-node start --demo`: an in-process echo miner, and a sample job every few seconds,
so that a newcomer opening the explorer sees blocks, jobs and receipts move.

Both talk to the node's own app through httpx's ASGI transport (no socket, same code path
as any client), using the data dir's admin key (an admin may act as client and miner).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from typing import TYPE_CHECKING, Any

import httpx

from chain.crypto import NodeKey
from chain.jobs import DEFAULT_MODEL
from node.client import ApiCallFailed, Client
from node.miner import EchoBackend, Miner, MinerSettings

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("aitbc.demo")

DEMO_MINER = "demo-echo-miner"
SAMPLE_PROMPTS = (
    "Say hello to the AITBC network",
    "Name three uses of a verifiable compute receipt",
    "Summarise what a Merkle inclusion proof shows",
    "Write a haiku about blocks being sealed",
)


class Demo:
    def __init__(self, app: Any, admin_key: str, models: list[str], interval: float = 3.0) -> None:
        self.client = Client("http://demo.local", admin_key, transport=httpx.ASGITransport(app=app))
        model = DEFAULT_MODEL if DEFAULT_MODEL in models else sorted(models)[0]
        self.model = model
        self.interval = interval
        settings = MinerSettings(
            DEMO_MINER, (model,), concurrency=1, poll_max=1.0, signing_key=NodeKey(secrets.token_bytes(32))
        )
        self.miner = Miner(self.client, settings, EchoBackend(), say=lambda line: log.info("demo miner: %s", line))
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.miner.run()), asyncio.create_task(self._submit_samples())]

    async def _submit_samples(self) -> None:
        for n, prompt in enumerate(itertools.cycle(SAMPLE_PROMPTS), start=1):
            try:
                job = await self.client.submit(f"{prompt} (#{n})", model=self.model)
                log.info("demo: submitted sample job %s", job["job_id"])
            except (ApiCallFailed, httpx.HTTPError) as exc:
                log.info("demo: could not submit a sample job: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.miner.stopping.wait(), timeout=self.interval)
            if self.miner.stopping.is_set():
                return

    async def stop(self) -> None:
        """Finish the job in hand (echo is instant), then close the client."""
        self.miner.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()


def demo_admin_key(node: Node) -> str:
    """The admin key the demo acts with: the one the data dir saved at initialisation."""
    from chain.accounts import account_for_key_hash
    from node.datadir import DataDirError, api_key_hash

    if node.role.name != "authority":
        raise DataDirError("--demo runs a miner on the authority; it cannot be used with --follow")
    path = node.datadir.admin_key_path
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise DataDirError(f"--demo needs the admin key saved at initialisation ({path}), which is missing") from None
    account = account_for_key_hash(node.store, api_key_hash(key))
    if account is None or account["revoked"] or account["role"] != "admin":
        raise DataDirError(f"--demo needs an active admin account; the key in {path} is not one")
    return key


def start_demo(node: Node, app: Any, admin_key: str) -> Demo:
    """Start the demo inside the running event loop; the node stops it before its producer."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the access log already shows each request
    demo = Demo(app, admin_key, list(node.store.genesis.params.prices))
    demo.start()
    node.stop_hooks.append(demo.stop)
    log.info("demo: an echo miner and a sample job every %.0f s (model %s)", demo.interval, demo.model)
    return demo
