"""Typed configuration. Config only stores; Node does the side effects."""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LogLevel = Literal["debug", "info", "warning", "error"]

BODY_BYTES = 2 * 1024 * 1024
"""--max-body-bytes outside a group."""
BLOCK_FRAME_BYTES = 1024
"""A block's encoding besides its transactions and the commas between them (header, signature,
brackets) stays under this, whatever its heights and hashes."""
TX_ROOM_BYTES = 64 * 1024
"""What a write's transaction may hold beyond its request body: the fields the node fills in (ids,
times, a completion's receipt and signatures, the idempotency record, a claim's skipped offers).
A field taken from the body is no longer in canonical form than in the body's JSON (UTF-8 is
kept, the escapes are the same), except a number spelled short (`1e15`); a transaction that still
does not fit in a block is refused (node.producer)."""


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path(".aitbc")
    host: str = "127.0.0.1"
    port: int = 8001
    genesis: Path | None = None
    """A genesis file to initialise from (or check against); default: the bundled devnet."""
    api_keys: Path | None = None
    """JSON list of {key, role, name} provisioned as accounts at start."""
    node_key: Path | None = None
    """A file holding the node's Ed25519 seed (hex), for an authority named in the genesis."""
    log_level: LogLevel = "info"
    follow: str | None = None
    """Base URL of the upstream node to replicate (or several, comma-separated: it replicates from
    one and moves to the next when that one fails); set, this node is a follower."""
    peer_key: str | None = None
    """An API key with the role peer (or admin) on the upstream, for its sync endpoints."""
    log_format: Literal["text", "json"] = "text"
    """Log lines as human-readable text, or one JSON object per line."""
    metrics: str = "api"
    """Where /metrics is served: 'api' (on the API port), 'off', or 'HOST:PORT' (its own listener)."""
    max_page_size: int = 100
    """The largest `limit` a listing accepts (400 beyond)."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open."""
    max_body_bytes: int | None = None
    """Largest request body accepted, in bytes (413 beyond). Default: 2097152 (2 MiB); in a group
    (--etcd), --max-block-bytes less 66560, so that the transaction any write makes fits in a block."""
    max_block_bytes: int = 1_400_000
    """Largest encoded block the sequencer seals, in bytes: transactions beyond it wait for the next
    block. The default keeps a block's etcd transaction under etcd's default request limit (1.5 MiB)."""
    rate_limit: float = 100.0
    """Requests per second each API key may make, sustained (0 turns the limit off; 429 beyond)."""
    rate_burst: int = 200
    """Requests an API key may make at once before the sustained rate applies."""
    unauth_rate_limit: float = 20.0
    """Requests per second one client address may make without a valid API key, sustained (0
    turns the limit off; 429 beyond)."""
    unauth_rate_burst: int = 100
    """Requests without a valid key one address may make at once before that rate applies."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the JSON API from a browser; none by default (CORS closed)."""
    request_timeout: float = 30.0
    """Seconds a client has to send a whole request (headers and body); slow senders are cut off."""
    header_timeout: float = 10.0
    """Seconds a client has to send a request's line and headers (at most --request-timeout)."""
    max_header_bytes: int = 64 * 1024
    """Largest request line and headers, in bytes (431 beyond)."""
    max_pending_per_ip: int = 256
    """Most connections one client address may have receiving a request at once (more are
    closed at once); clients with keys mostly hold few, as a request is in within milliseconds."""
    ws_per_ip: int = 32
    """Most live WebSocket connections (explorer and chain feeds) from one client address."""
    ws_max: int = 1024
    """Most live WebSocket connections in total."""
    ws_max_message_bytes: int = 4096
    """Largest WebSocket message a client may send (the feeds take a few bytes); closed with
    1009 beyond."""
    ws_messages_per_s: float = 5.0
    """Messages a client may send per second on one WebSocket, sustained (0 turns the limit off);
    closed with 1008 beyond."""
    max_connections: int = 2048
    """Most concurrent HTTP connections; beyond it new requests get 503."""
    explorer_ws_queue: int = 64
    """Messages each explorer live-feed client may fall behind by before it is dropped."""
    offer_ms: int = 2000
    """Milliseconds a pending job shown to one polling miner (GET /v1/jobs/available) is held
    for it before it may be shown to another."""
    etcd: str | None = None
    """Comma-separated etcd client URLs: run as a member of an authority group, elected through
    etcd (one sequencer, the others hot standbys). Needs --node-key."""
    lease_ttl: int = 3
    """Seconds of the etcd lease that holds a sequencer's leadership: a sequencer that stops
    renewing it is replaced after about this long."""
    etcd_tail_blocks: int = 1000
    """With --etcd: blocks the group keeps in etcd (older ones are deleted as blocks are appended).
    A member further behind catches up over HTTP from the others, with --peer-key."""
    advertise_url: str | None = None
    """The URL the other group members forward writes to while this node is the sequencer
    (default http://HOST:PORT)."""
    demo: bool = False
    """Also run an in-process echo miner and submit a sample job every few seconds."""

    @property
    def body_limit(self) -> int:
        """The largest request body accepted: --max-body-bytes, or its default (see the field)."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        if self.etcd is None:
            return BODY_BYTES
        return self.max_block_bytes - BLOCK_FRAME_BYTES - TX_ROOM_BYTES

    def block_room_problem(self) -> str | None:
        """In a group, why a write could make a transaction too large for a block (None: none can).
        Outside a group a block has no hard limit: such a transaction is sealed alone."""
        largest = self.max_block_bytes - BLOCK_FRAME_BYTES - TX_ROOM_BYTES
        if self.etcd is None or self.body_limit <= largest:
            return None
        return (
            f"--max-body-bytes {self.body_limit} would let one write make a transaction of up to "
            f"{self.body_limit + TX_ROOM_BYTES} bytes, over what a block of --max-block-bytes {self.max_block_bytes} "
            f"holds ({self.max_block_bytes - BLOCK_FRAME_BYTES}): lower --max-body-bytes to at most {largest} (or "
            "leave it out), or raise --max-block-bytes (and etcd's --max-request-bytes above it)"
        )


def _field_docs() -> dict[str, str]:
    """Each Config field's docstring (the string under it), for the CLI's --help."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config").body
    docs: dict[str, str] = {}
    for field, doc in itertools.pairwise(body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
        ):
            docs[field.target.id] = " ".join(str(doc.value.value).split())
    return docs


CONFIG_DOCS = _field_docs()
