"""The reference miner: register, poll with backoff, claim, run, complete (or /fail).

`aitbc-node mine` runs it against any node; `aitbc-node start --demo` runs it in-process
with the echo backend. A first stop request lets the jobs in hand finish; a second fails
them through /fail so they go straight back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from chain.crypto import NodeKey
from chain.receipts import sign_completion
from node.client import ApiCallFailed, Client

Say = Callable[[str], None]


class BackendFailed(Exception):
    """The backend could not produce a result for a job; the message goes to /fail."""


class Backend(Protocol):
    name: str

    async def run(self, job: dict[str, Any]) -> str: ...


class EchoBackend:
    """Deterministic: the result is the prompt itself. For tests and demos."""

    name = "echo"

    async def run(self, job: dict[str, Any]) -> str:
        return str(job["prompt"])


class OllamaBackend:
    """A local Ollama server's HTTP API (POST /api/generate, not streamed)."""

    name = "ollama"

    def __init__(self, url: str = "http://127.0.0.1:11434", timeout: float = 600) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def run(self, job: dict[str, Any]) -> str:
        params = job.get("params") or {}
        options = {
            "num_predict": params.get("max_tokens"),
            "temperature": params.get("temperature"),
            "top_p": params.get("top_p"),
        }
        body = {
            "model": job["model"],
            "prompt": job["prompt"],
            "stream": False,
            "options": {k: v for k, v in options.items() if v is not None},
        }
        try:
            response = await self._http.post("/api/generate", json=body)
        except httpx.HTTPError as exc:
            raise BackendFailed(f"ollama at {self.url} is unreachable: {exc}") from None
        if response.status_code != 200:
            raise BackendFailed(f"ollama answered {response.status_code}: {response.text[:300]}")
        try:
            text = response.json()["response"]
        except (ValueError, KeyError, TypeError):
            raise BackendFailed("ollama's answer has no 'response' text") from None
        if not isinstance(text, str):
            raise BackendFailed("ollama's 'response' is not text")
        return text

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass
class MinerStats:
    completed: int = 0
    failed: int = 0
    units: int = 0
    started: float = field(default_factory=time.monotonic)

    def throughput(self) -> str:
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        return (
            f"{self.completed} done, {self.failed} failed, "
            f"{self.completed / minutes:.1f} jobs/min, {self.units / minutes:.0f} units/min"
        )


CLAIM_WAIT_S = 5.0
"""How long one claim-next waits on the node for a job: a new job reaches an idle miner as soon
as its block is durable, and a stop is noticed within this."""


@dataclass(frozen=True)
class MinerSettings:
    miner_id: str
    models: tuple[str, ...]
    concurrency: int = 1
    poll_min: float = 0.2
    """First wait after finding no job; it doubles up to poll_max, and resets when work appears."""
    poll_max: float = 5.0
    signing_key: NodeKey | None = None
    """Set: the miner registers its public key and co-signs every completion."""


class Miner:
    def __init__(self, client: Client, settings: MinerSettings, backend: Backend, say: Say = print) -> None:
        self.client = client
        self.settings = settings
        self.backend = backend
        self.say = say
        self.stats = MinerStats()
        self.stopping = asyncio.Event()
        """Set: take no new job, finish the ones in hand."""
        self.aborting = asyncio.Event()
        """Set: fail the jobs in hand now."""
        self.in_hand: set[str] = set()

    def stop(self) -> None:
        """First call: finish what is in hand. Second call: fail it."""
        if self.stopping.is_set():
            self.aborting.set()
            if self.in_hand:
                self.say(f"stopping now: failing {len(self.in_hand)} job(s) in hand")
            return
        self.stopping.set()
        if self.in_hand:
            self.say(f"stopping: finishing {len(self.in_hand)} job(s) in hand (interrupt again to fail them)")

    async def run(self) -> MinerStats:
        if not await self._register():
            return self.stats
        self.stats = MinerStats()
        workers = [asyncio.create_task(self._work(i)) for i in range(self.settings.concurrency)]
        await asyncio.gather(*workers)
        self.say(f"miner {self.settings.miner_id} stopped: {self.stats.throughput()}")
        return self.stats

    async def _register(self) -> bool:
        s = self.settings
        pubkey = None if s.signing_key is None else s.signing_key.public_hex
        delay = s.poll_min
        while not self.stopping.is_set():
            try:
                await self.client.register(s.miner_id, list(s.models), miner_pubkey=pubkey)
            except ApiCallFailed as exc:
                if exc.status >= 500 or exc.status == 429:
                    self.say(f"registering: the node answered {exc}; retrying in {delay:.1f} s")
                else:
                    self.say(f"cannot register miner {s.miner_id}: {exc}")
                    raise
            except httpx.HTTPError as exc:
                self.say(f"registering: node unreachable ({exc.__class__.__name__}); retrying in {delay:.1f} s")
            else:
                signed = ", co-signing with key " + pubkey[:16] + "…" if pubkey else ""
                self.say(
                    f"registered miner {s.miner_id} for {', '.join(s.models)} ({self.backend.name} backend, "
                    f"{s.concurrency} at a time{signed})"
                )
                return True
            await self._pause(delay)
            delay = min(delay * 2, s.poll_max)
        return False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _work(self, worker: int) -> None:
        delay = self.settings.poll_min
        while not self.stopping.is_set():
            try:
                # One request picks and claims the oldest fitting job, waiting for one if none is pending.
                job = await self.client.claim_next(self.settings.miner_id, wait=CLAIM_WAIT_S)
            except ApiCallFailed as exc:
                self.say(f"polling: {exc}; retrying in {delay:.1f} s")
                job = None
            except httpx.HTTPError as exc:
                self.say(f"polling: node unreachable ({exc.__class__.__name__}); retrying in {delay:.1f} s")
                job = None
            if job is None:
                await self._pause(delay)
                delay = min(delay * 2, self.settings.poll_max)
                continue
            delay = self.settings.poll_min
            await self._do(job)

    async def _do(self, job: dict[str, Any]) -> None:
        job_id = job["job_id"]
        self.in_hand.add(job_id)
        started = time.monotonic()
        self.say(f"claimed {job_id} ({job['model']})")
        try:
            running = asyncio.create_task(self.backend.run(job))
            aborted = asyncio.create_task(self.aborting.wait())
            await asyncio.wait({running, aborted}, return_when=asyncio.FIRST_COMPLETED)
            aborted.cancel()
            if not running.done():
                running.cancel()
                await self._fail(job_id, "the miner was stopped before the job finished")
                return
            try:
                result = running.result()
            except BackendFailed as exc:
                await self._fail(job_id, str(exc))
                return
            except Exception as exc:  # a backend bug must not take the miner down with the job
                await self._fail(job_id, f"backend error: {exc.__class__.__name__}: {exc}")
                return
            await self._complete(job_id, result, started)
        finally:
            self.in_hand.discard(job_id)

    async def _complete(self, job_id: str, result: str, started: float) -> None:
        key = self.settings.signing_key
        signature = None if key is None else sign_completion(key, job_id, result)
        try:
            receipt = await self.client.complete(job_id, self.settings.miner_id, result, signature)
        except (ApiCallFailed, httpx.HTTPError) as exc:
            self.stats.failed += 1
            self.say(f"completing {job_id} failed: {exc}")
            return
        self.stats.completed += 1
        self.stats.units += int(receipt["units"])
        self.say(
            f"completed {job_id} in {time.monotonic() - started:.2f} s: {receipt['units']} units, "
            f"price {receipt['price']}, receipt {receipt['receipt_id']} | {self.stats.throughput()}"
        )

    async def _fail(self, job_id: str, error: str) -> None:
        self.stats.failed += 1
        try:
            await self.client.fail(job_id, self.settings.miner_id, error)
            self.say(f"failed {job_id}: {error}")
        except (ApiCallFailed, httpx.HTTPError) as exc:
            self.say(f"reporting the failure of {job_id} failed too ({exc}); its lease will expire")


def load_or_create_signing_key(path: Any) -> tuple[NodeKey, bool]:
    """The miner's Ed25519 key from a hex seed file, created (mode 0600) when missing."""
    import os
    import secrets
    from pathlib import Path

    path = Path(path)
    if path.exists():
        return NodeKey.from_seed_hex(path.read_text(encoding="ascii")), False
    key = NodeKey(secrets.token_bytes(32))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.seed.hex() + "\n")
    return key, True
