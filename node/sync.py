"""The follower: pull blocks from an upstream node, verify each one, store it, serve it.

Catch-up runs in batches over `GET /v1/chain/blocks`; once level with the upstream the
follower stays live over `WebSocket /v1/chain/ws`, or long-polls `GET /v1/chain/blocks?wait=`
when the websocket is refused. Every block goes through chain.transition.apply_block (height,
link, timestamps, tx_root, proposer signature, every transaction including its receipt
signature, state_root) and is written with Store.write_block, one batch per block, before it
is published on the node's block feed.

A hostile upstream cannot crash, hang or flood the follower: every request has a timeout and
an overall deadline, every response and websocket message has a size cap, and a block that
fails any check is never stored; the follower reports it on /health and retries with a capped
backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect

from chain.blocks import Block
from chain.errors import LedgerError
from chain.genesis import Genesis
from node.catchup import BlockPipeline, BlockRejected, Equivocation, equivocation
from node.clock import Clock, now_ms
from node.events import BlockFeed
from node.offers import MAX_WAIT_S
from node.progress import Progress
from node.store import Store

log = logging.getLogger("aitbc.sync")

BATCH_BLOCKS = 100
"""Blocks asked for per catch-up request."""
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""Largest catch-up response or websocket message accepted; one block never exceeds it."""
MAX_FORWARD_BYTES = 16 * 1024 * 1024
"""Largest answer to a forwarded write accepted from the upstream."""
MAX_ERROR_BYTES = 64 * 1024
REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
"""Per-operation timeouts (connect, each read, each write)."""
REQUEST_DEADLINE_S = 60.0
"""Overall deadline of one catch-up or forwarded request, however slowly the bytes trickle in."""
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=REQUEST_DEADLINE_S, sock_connect=5.0, sock_read=15.0 + MAX_WAIT_S)
"""A forwarded request may be a long poll, whose answer comes up to MAX_WAIT_S later."""
LONG_POLL_S = 20
"""How long one long-poll waits upstream for a new block."""
LONG_POLL_ROUND_S = 300.0
"""After this long on long-polling, the websocket is tried again."""
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
WAIT_FOR_WRITE_S = 5.0
"""How long a forwarded write waits for its block to reach this follower."""


class UpstreamError(Exception):
    """The upstream cannot be reached or answered something unusable; nothing was stored."""


class PeerKeyRefused(UpstreamError):
    """The upstream refused this follower's --peer-key (401 or 403)."""


def display_url(url: str) -> str:
    """The upstream URL without any user:password part, for logs and /health."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def validate_upstream(url: str) -> str:
    """The upstream base URL, normalised; ValueError names what is wrong."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--follow must be an http:// or https:// URL of the upstream node, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("--follow must be the node's base URL, without a query or fragment")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def validate_upstreams(urls: str) -> list[str]:
    """`--follow URL[,URL…]`: the upstreams' base URLs, normalised, in order; ValueError names
    what is wrong."""
    found = [validate_upstream(url) for url in urls.split(",") if url.strip()]
    if not found:
        raise ValueError("--follow needs the URL of at least one upstream node")
    if len(set(found)) != len(found):
        raise ValueError("--follow lists the same upstream twice")
    return found


def decode_blocks(items: Any) -> list[Block]:
    """Blocks from a decoded JSON list; a malformed one is rejected naming its position."""
    if not isinstance(items, list):
        raise UpstreamError("the upstream's blocks are not a list")
    blocks = []
    for item in items:
        try:
            blocks.append(Block.from_dict(item))
        except LedgerError as exc:
            height = item.get("header", {}).get("height") if isinstance(item, dict) else None
            at = height if isinstance(height, int) else -1
            raise BlockRejected(at, exc.error_code, f"a block does not decode: {exc.detail}") from None
    return blocks


def parse_json_bytes(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"the upstream's {what} is not valid JSON: {str(exc)[:200]}") from None


@dataclass
class Forwarded:
    """The upstream's answer to a forwarded request."""

    status: int
    content: bytes
    content_type: str
    height: int | None
    """The chain height the upstream reported with its answer (X-Aitbc-Height)."""
    retry_after: str | None = None
    replayed: bool = False
    """The upstream answered an idempotent retry with the original answer (Idempotent-Replayed)."""


def forwarded_answer(status: int, headers: Mapping[str, str], content: bytes) -> Forwarded:
    """The answer to a forwarded request, as relayed: its status, body and the headers that matter
    (headers: a case-insensitive mapping, as httpx and aiohttp give)."""
    height_header = headers.get("x-aitbc-height", "")
    return Forwarded(
        status,
        content,
        headers.get("content-type", "application/json"),
        int(height_header) if height_header.isdigit() else None,
        headers.get("retry-after"),
        headers.get("idempotent-replayed") == "true",
    )


class Forwarder:
    """Sends requests forwarded to an upstream (a follower's authority, a standby's sequencer)
    with the caller's own headers, over aiohttp, whose connection pool stays cheap in CPU with
    tens of requests in flight (docs/performance.md).

    Answers are read raw (never decompressed: a compressed answer could expand past the cap) and
    capped at MAX_FORWARD_BYTES; redirects are not followed."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, upstream: str, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Forwarded:
        """The upstream's answer. ForwardUnavailable: it could not be reached, nothing was sent;
        ForwardTimeout: sent, but no whole answer came (it may have been applied);
        ForwardBadAnswer: the answer is over the cap."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                timeout=FORWARD_TIMEOUT,
                headers={"Accept-Encoding": "identity"},
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        url = upstream + path + (f"?{query}" if query else "")
        try:
            async with self._session.request(method, url, headers=headers, data=body, allow_redirects=False) as resp:
                content = await _read_all_capped(resp.content, MAX_FORWARD_BYTES)
                answer = forwarded_answer(resp.status, resp.headers, content)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ForwardUnavailable(
                f"{display_url(upstream)} cannot be reached ({type(exc).__name__}); nothing was sent"
            ) from None
        except (aiohttp.ClientError, TimeoutError):
            raise ForwardTimeout() from None
        if len(content) > MAX_FORWARD_BYTES:
            raise ForwardBadAnswer(f"the upstream's answer is over the {MAX_FORWARD_BYTES}-byte cap")
        return answer


async def _read_all_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body, or its first cap + 1 bytes when it is longer (StreamReader.read(n) returns
    what has arrived so far, not n bytes)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(chunks)[: cap + 1]


class Follower:
    def __init__(
        self,
        store: Store,
        feed: BlockFeed,
        upstream: str,
        peer_key: str,
        *,
        clock: Clock = now_ms,
        metrics: Any = None,
        pipeline: BlockPipeline | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        """node.metrics.NodeMetrics, fed with lag and rejected blocks (None: not measured)."""
        self.genesis: Genesis = store.genesis
        self.feed = feed
        self.upstreams = validate_upstreams(upstream)
        """The nodes this follower may replicate from (--follow URL[,URL…]): it uses one at a
        time and moves to the next when that one fails (cannot be reached, or sends a block it
        refuses). Any member of an authority group will do: each serves the same chain."""
        self._current = 0
        self._peer_key = peer_key
        self.clock = clock
        self.state = "starting"
        """starting, catching_up, live or degraded."""
        self.transport: str | None = None
        """How blocks arrive while live: websocket or long-poll."""
        self.upstream_height: int | None = None
        self.reason: str | None = None
        self.check: str | None = None
        """When degraded by a bad block: the verification check that failed (e.g. bad_state_root)."""
        self.degraded_since: int | None = None
        self.last_contact: int | None = None
        self.blocks_stored = 0
        self.alarm: dict[str, Any] | None = None
        """Set when an upstream served an equivocation (node.catchup.Equivocation): it stays until
        the node restarts, for an operator to look into."""
        self._alarmed: set[str] = set()
        """Hashes of the conflicting blocks already counted."""
        self.reached = False
        """The upstream has answered one of this follower's requests since it started."""
        self.on_refused: Callable[[str], None] | None = None
        """Called, and replication ends, when the upstream refuses the peer key before ever
        answering: a wrong --peer-key, which retrying will not fix. (Refused later, as when
        the key is revoked, the follower keeps retrying and says why in /health.)"""
        self._http: httpx.AsyncClient | None = None
        self._forwarder = Forwarder()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        self._backoff = BACKOFF_FIRST_S
        self._owns_pipeline = pipeline is None
        """A pipeline passed in is the caller's (a group member's): it starts and closes it."""
        self._pipeline = pipeline or BlockPipeline(store, self.genesis)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        # httpx logs every request at INFO; a follower long-polls and forwards all day.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self._stopping = False
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        if self._owns_pipeline:
            if self._pipeline.closed:  # started again after stop()
                self._pipeline = BlockPipeline(self.store, self.genesis)
            self._pipeline.start()
        self._open_http()
        self._task = asyncio.create_task(self._run(), name="aitbc-sync")

    def _open_http(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT,
            # Raw bytes only: a compressed answer could expand past every cap.
            headers={"X-Api-Key": self._peer_key, "Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=False,
        )

    async def catch_up_once(self) -> None:
        """Fetch, verify and store the upstream's blocks until level with its head, then return,
        without staying live. Raises UpstreamError (PeerKeyRefused) or BlockRejected; stop()
        closes the connections."""
        if self._http is None:
            self._open_http()
        await self._catch_up()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._forwarder.close()
        if self._owns_pipeline:
            self._pipeline.close()

    # -- upstreams ---------------------------------------------------------------------
    @property
    def upstream(self) -> str:
        """The upstream this follower replicates from now."""
        return self.upstreams[self._current]

    @property
    def upstream_display(self) -> str:
        return display_url(self.upstream)

    def _next_upstream(self) -> None:
        """After a failure: replicate from the next upstream listed (if several are)."""
        if len(self.upstreams) > 1:
            self._current = (self._current + 1) % len(self.upstreams)
            log.info("replicating from %s now", self.upstream_display)

    # -- health ----------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self.reason is not None or self.alarm is not None

    def health(self) -> dict[str, Any]:
        height = self.store.tip().height
        out: dict[str, Any] = {
            "upstream": self.upstream_display,
            "upstreams": [display_url(u) for u in self.upstreams],
            "upstream_height": self.upstream_height,
            "lag": None if self.upstream_height is None else max(0, self.upstream_height - height),
            "sync": self.state,
            "transport": self.transport,
        }
        if self.reason is not None:
            out["reason"] = self.reason
            out["check"] = self.check
            if self.degraded_since is not None:
                out["degraded_since"] = _iso(self.degraded_since)
        if self.alarm is not None:
            out["alarm"] = self.alarm
        return out

    def lag(self) -> tuple[int | None, float | None]:
        """Blocks behind the upstream, and how old this follower's tip is while behind (seconds)."""
        if self.upstream_height is None:
            return None, None
        tip = self.store.tip()
        blocks = max(0, self.upstream_height - tip.height)
        seconds = 0.0 if blocks == 0 else max(0, self.clock() - tip.timestamp) / 1000
        if self.metrics is not None:
            self.metrics.sync_lag_blocks.set(blocks)
            self.metrics.sync_lag_seconds.set(seconds)
        return blocks, seconds

    def status(self) -> dict[str, Any]:
        """What `aitbc-node status` shows of replication."""
        blocks, seconds = self.lag()
        status: dict[str, Any] = {
            "upstream": self.upstream_display,
            "lag_blocks": blocks,
            "lag_seconds": seconds,
            "peers": [],
        }
        if self.alarm is not None:
            status["alarm"] = self.alarm
        return status

    def _degrade(self, reason: str, check: str | None = None) -> None:
        if self.reason is None:
            self.degraded_since = self.clock()
        self.state = "degraded"
        self.reason = reason
        self.check = check

    def _healthy(self, state: str) -> None:
        self.state = state
        self.reason = None
        self.check = None
        self.degraded_since = None

    # -- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._catch_up()
                await self._live()
            except asyncio.CancelledError:
                raise
            except BlockRejected as exc:
                found = await self._equivocation(exc) if exc.check == "bad_link" else None
                check = exc.check if found is None else "equivocation"
                if self.metrics is not None:
                    self.metrics.sync_rejected_blocks.labels(check).inc()
                if found is not None:
                    self._raise_alarm(found)
                else:
                    self._degrade(f"rejected block {exc.height} from the upstream: {exc.detail}", exc.check)
                    log.error(
                        "rejected block %d from %s: %s [check: %s]",
                        exc.height,
                        self.upstream_display,
                        exc.detail,
                        exc.check,
                    )
                self._next_upstream()
            except PeerKeyRefused as exc:
                self._degrade(str(exc), "upstream")
                if not self.reached and self.on_refused is not None:
                    log.error("upstream %s: %s; check --peer-key", self.upstream_display, exc)
                    self.on_refused(f"the upstream {self.upstream_display} refused --peer-key: {exc}")
                    return
                log.warning("upstream %s: %s", self.upstream_display, exc)
                self._next_upstream()
            except UpstreamError as exc:
                self._degrade(str(exc), "upstream")
                log.warning("upstream %s: %s", self.upstream_display, exc)
                self._next_upstream()
            except Exception as exc:  # never let one bad answer end replication
                self._degrade(f"sync failed: {type(exc).__name__}: {exc}", "internal")
                log.exception("sync from %s failed", self.upstream_display)
            await self._pause()

    # -- equivocation ----------------------------------------------------------------
    async def _equivocation(self, exc: BlockRejected) -> Equivocation | None:
        """After a block that does not link to this follower's chain: the equivocation it
        reveals, if any. A block at a height this follower holds is compared directly; a block
        beyond its tip that does not link to it means the upstream holds another block at the
        tip's height, which is fetched and compared."""
        block = exc.block
        tip = self.store.tip().height
        if block is None or block.height > tip:
            height = min(exc.height - 1, tip)
            if height < 1:
                return None
            try:
                body = await self._get_json("/v1/chain/blocks", {"from": height, "limit": 1})
                served = decode_blocks(body.get("blocks") if isinstance(body, dict) else None)
            except (UpstreamError, BlockRejected) as failure:
                log.warning("cannot fetch block %d from %s to compare: %s", height, self.upstream_display, failure)
                return None
            block = served[0] if served and served[0].height == height else None
        return None if block is None else equivocation(self.store, block)

    def _raise_alarm(self, found: Equivocation) -> None:
        """Refuse the conflicting block loudly: an ERROR line naming both blocks and sealers,
        aitbc_equivocations_total (once per conflicting block), and `alarm` on /health."""
        if found.theirs.hash not in self._alarmed:
            self._alarmed.add(found.theirs.hash)
            if self.metrics is not None:
                self.metrics.equivocations.inc()
        self.alarm = {**found.to_dict(), "upstream": self.upstream_display, "since": _iso(self.clock())}
        self._degrade(f"refused block {found.height} from the upstream: {found.describe()}", "equivocation")
        log.error(
            "EQUIVOCATION: %s; served by %s; refused (this follower keeps its chain)",
            found.describe(),
            self.upstream_display,
        )

    async def _pause(self) -> None:
        delay = self._backoff * (0.75 + random.random() / 2)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            pass

    def _made_progress(self) -> None:
        self._backoff = BACKOFF_FIRST_S

    async def _catch_up(self) -> None:
        """Fetch and store batches until level with the upstream's head, showing progress
        (a bar on a terminal, progress lines in the log otherwise) while behind. The next
        batch is fetched while this one is verified and stored."""
        progress: Progress | None = None
        upcoming: tuple[int, asyncio.Future[Any]] | None = None
        try:
            while not self._stopping:
                tip = self.store.tip().height
                if upcoming is not None and upcoming[0] == tip + 1:
                    body = await upcoming[1]
                else:
                    body = await self._get_json("/v1/chain/blocks", {"from": tip + 1, "limit": BATCH_BLOCKS})
                upcoming = None
                head, blocks = self._read_blocks_answer(body, tip)
                if not blocks:
                    if head > tip:
                        raise UpstreamError(f"the upstream claims height {head} but sent no block after {tip}")
                    self._healthy("live")
                    self._made_progress()  # level with a working upstream: a later failure retries soon
                    return
                if progress is None:
                    progress = Progress("catch-up", total=head)
                after = blocks[-1].height + 1
                if after <= head:
                    upcoming = (
                        after,
                        asyncio.ensure_future(
                            self._get_json("/v1/chain/blocks", {"from": after, "limit": BATCH_BLOCKS})
                        ),
                    )
                await self._store(blocks)
                progress.update(self.store.tip().height, head)
                if self.store.tip().height >= head:
                    self._healthy("live")
                    return
                self._healthy("catching_up")
        except BaseException:
            if progress is not None:
                progress.close(failed=True)
            raise
        finally:
            if upcoming is not None:
                upcoming[1].cancel()
                upcoming[1].add_done_callback(_retrieve)  # its outcome is not wanted any more
            if progress is not None:
                progress.close()  # after a failure it is closed already, and this does nothing

    def _read_blocks_answer(self, body: Any, tip: int) -> tuple[int, list[Block]]:
        """The upstream's head height and the blocks of a /v1/chain/blocks answer, checked."""
        if not isinstance(body, dict):
            raise UpstreamError("the upstream's blocks answer is not an object")
        head = self._read_head(body.get("head"))
        blocks = decode_blocks(body.get("blocks"))
        if head < tip:
            raise UpstreamError(f"the upstream is behind this follower (its height {head}, ours {tip})")
        return head, blocks

    def _read_head(self, head: Any) -> int:
        if not isinstance(head, dict):
            raise UpstreamError("the upstream's answer has no head")
        if head.get("genesis_hash") != self.genesis.hash:
            raise UpstreamError(
                "the upstream serves another chain "
                f"(genesis {str(head.get('genesis_hash'))[:16]}…, ours {self.genesis.hash[:16]}…)"
            )
        height = head.get("height")
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise UpstreamError("the upstream's head height is not a non-negative integer")
        self.upstream_height = height
        self.last_contact = self.clock()
        self.lag()
        return height

    async def _live(self) -> None:
        """Stay level with the upstream: websocket first, long-polling when it is refused."""
        try:
            await self._live_websocket()
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise PeerKeyRefused(f"the upstream refused the peer key on its websocket ({status})") from None
            log.info("websocket refused by %s (%d); long-polling instead", self.upstream_display, status)
            await self._live_long_poll()
        except (websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            log.info("no websocket at %s (%s); long-polling instead", self.upstream_display, exc)
            await self._live_long_poll()
        except websockets.ConnectionClosed as exc:
            raise UpstreamError(f"the upstream closed the websocket: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot reach the upstream's websocket: {exc or type(exc).__name__}") from None

    def _ws_url(self, start: int) -> str:
        parts = urllib.parse.urlsplit(self.upstream)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urllib.parse.urlencode({"from": start})
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/v1/chain/ws", query, ""))

    async def _live_websocket(self) -> None:
        url = self._ws_url(self.store.tip().height + 1)
        async with ws_connect(
            url,
            additional_headers={"X-Api-Key": self._peer_key},
            max_size=MAX_RESPONSE_BYTES,
            max_queue=4,
            compression=None,
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
        ) as ws:
            self.transport = "websocket"
            self.last_contact = self.clock()
            if self.upstream_height is not None and self.upstream_height <= self.store.tip().height:
                self._healthy("live")
            async for message in ws:
                if self._stopping:
                    return
                raw = message.encode("utf-8") if isinstance(message, str) else message
                blocks = decode_blocks([parse_json_bytes(raw, "websocket message")])
                self.last_contact = self.clock()
                self.upstream_height = max(self.upstream_height or 0, blocks[0].height)
                await self._store(blocks)
                self._healthy("live")

    async def _live_long_poll(self) -> None:
        self.transport = "long-poll"
        deadline = time.monotonic() + LONG_POLL_ROUND_S
        while not self._stopping and time.monotonic() < deadline:
            tip = self.store.tip().height
            started = time.monotonic()
            body = await self._get_json(
                "/v1/chain/blocks",
                {"from": tip + 1, "limit": BATCH_BLOCKS, "wait": LONG_POLL_S},
                deadline=REQUEST_DEADLINE_S + LONG_POLL_S,
            )
            head, blocks = self._read_blocks_answer(body, tip)
            if blocks:
                await self._store(blocks)
            elif head > tip:
                raise UpstreamError(f"the upstream claims height {head} but sent no block after {tip}")
            if self.store.tip().height >= head:
                self._healthy("live")
            if not blocks and time.monotonic() - started < 1.0:
                await asyncio.sleep(1.0)  # an upstream that ignores `wait` must not make us spin

    # -- requests --------------------------------------------------------------------
    async def _get_json(self, path: str, params: dict[str, Any], deadline: float = REQUEST_DEADLINE_S) -> Any:
        raw = await self._fetch("GET", path, params, MAX_RESPONSE_BYTES, deadline)
        return parse_json_bytes(raw, "answer")

    async def _fetch(self, method: str, path: str, params: dict[str, Any], cap: int, deadline: float) -> bytes:
        assert self._http is not None
        try:
            async with asyncio.timeout(deadline):
                async with self._http.stream(method, self.upstream + path, params=params) as resp:
                    if resp.status_code != 200:
                        detail = (await _read_capped(resp, MAX_ERROR_BYTES, allow_truncate=True)).decode(
                            "utf-8", "replace"
                        )
                        try:
                            detail = json.loads(detail).get("detail", detail)
                        except (ValueError, AttributeError):
                            pass
                        refused = PeerKeyRefused if resp.status_code in (401, 403) else UpstreamError
                        raise refused(f"the upstream answered {resp.status_code} to {path}: {str(detail)[:200]}")
                    self.reached = True
                    return await _read_capped(resp, cap)
        except TimeoutError:
            raise UpstreamError(f"the upstream did not answer {path} within {deadline:.0f} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach the upstream: {type(exc).__name__}: {exc}") from None

    # -- verification and storage ---------------------------------------------------
    async def _store(self, blocks: list[Block]) -> None:
        """Verify and write blocks (in a worker thread), then publish the stored ones."""
        job = asyncio.ensure_future(asyncio.to_thread(self._verify_and_write, blocks))
        try:
            stored, rejected = await asyncio.shield(job)
        except asyncio.CancelledError:
            # The worker finishes the block it is writing before the store may close.
            await asyncio.wait([job])
            raise
        for block in stored:
            self.feed.publish(block)
        if stored:
            self.lag()
            self.blocks_stored += len(stored)
            self._made_progress()
            self._advanced.set()
            self._advanced = asyncio.Event()
        if rejected is not None:
            raise rejected

    def _verify_and_write(self, blocks: list[Block]) -> tuple[list[Block], BlockRejected | None]:
        return self._pipeline.run(blocks, lambda: self._stopping)

    # -- writes sent to this follower ------------------------------------------------
    async def forward(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Forwarded:
        """Send a request to the upstream and return its answer (see api/forward.py). When the
        upstream cannot be reached (nothing was sent), the other upstreams are tried in turn."""
        n = len(self.upstreams)
        for i in range(n):
            upstream = self.upstreams[(self._current + i) % n]
            try:
                return await self._forward_to(upstream, method, path, query, headers, body)
            except ForwardUnavailable:
                if i == n - 1:
                    raise
        raise AssertionError("unreachable: there is at least one upstream")

    async def _forward_to(
        self, upstream: str, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Forwarded:
        # The caller's key (in headers), not the peer key, authenticates a forwarded request.
        try:
            return await self._forwarder.send(upstream, method, path, query, headers, body)
        except ForwardUnavailable as exc:
            raise ForwardUnavailable(f"the authority at {exc}") from None

    async def wait_for_height(self, height: int, timeout: float = WAIT_FOR_WRITE_S) -> bool:
        """Wait until this follower has stored block `height` (a forwarded write's block)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.store.tip().height < height:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._wake.set()  # if the loop is sleeping off a backoff, try now
            try:
                await asyncio.wait_for(self._advanced.wait(), timeout=remaining)
            except TimeoutError:
                return self.store.tip().height >= height
        return True


async def catch_up_from(
    store: Store, feed: BlockFeed, upstreams: list[str], peer_key: str, pipeline: BlockPipeline
) -> str:
    """Catch up over HTTP, as a follower does (every block verified, then stored and published on
    feed), from the first of upstreams that brings this store level with its head; the one that
    did. UpstreamError says why each failed."""
    failures = []
    for upstream in upstreams:
        try:
            replica = Follower(store, feed, upstream, peer_key, pipeline=pipeline)
        except ValueError as exc:
            failures.append(str(exc))
            continue
        try:
            await replica.catch_up_once()
            return replica.upstream_display
        except (UpstreamError, BlockRejected) as exc:
            failures.append(f"{replica.upstream_display}: {exc}")
        finally:
            await replica.stop()
    raise UpstreamError("; ".join(failures) or "no upstream to catch up from")


def _iso(ms: int) -> str:
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ForwardUnavailable(Exception):
    """The authority could not be reached; the request was not sent."""


class ForwardTimeout(Exception):
    """The request was sent but no answer came in time; it may or may not have been applied."""


class ForwardBadAnswer(Exception):
    """The authority's answer was unusable (too large or cut off)."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a dropped future's failure as seen (asyncio would otherwise log it)."""
    if not future.cancelled():
        future.exception()


async def _read_capped(resp: httpx.Response, cap: int, *, allow_truncate: bool = False) -> bytes:
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap and not allow_truncate:
        raise UpstreamError(f"the upstream's answer is {int(declared)} bytes, over the {cap}-byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_raw():
        size += len(chunk)
        if size > cap:
            if allow_truncate:
                chunks.append(chunk[: cap - (size - len(chunk))])
                break
            raise UpstreamError(f"the upstream's answer is over the {cap}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)
