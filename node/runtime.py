"""The running node: data dir, store, key and producer, opened and closed together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chain.accounts import account_for_key_hash, get_account
from chain.crypto import NodeKey
from chain.errors import LedgerError
from chain.state import WorkingState
from chain.transactions import Transaction
from node import __version__
from node.compaction import IndexCompactor
from node.config import Config
from node.datadir import DataDir, DataDirError, InitResult, ProvisionedKey, load_api_keys
from node.events import BlockFeed
from node.metrics import NodeMetrics
from node.producer import Producer, now_ms, seal_now
from node.store import Store

if TYPE_CHECKING:
    from node.sync import Follower

log = logging.getLogger("aitbc.node")


class Node:
    """Everything the API needs: the store to read from and the producer to write through."""

    version = __version__

    def __init__(self, config: Config, clock: Callable[[], int] = now_ms) -> None:
        self.config = config
        self.clock = clock
        """Unix milliseconds, for block times and lease decisions; tests pass a fake."""
        self.datadir = DataDir(config.data_dir)
        self.init: InitResult | None = None
        self.store: Store | None = None
        self.key: NodeKey | None = None
        self.producer: Producer | None = None
        self.sync: Follower | None = None
        """On a follower (--follow): the task that replicates and verifies the upstream's chain."""
        self.compactor: IndexCompactor | None = None
        self.feed = BlockFeed()
        self.metrics = NodeMetrics(self)
        """Prometheus metrics in a registry of this node's own (api/operations.py serves them)."""
        """Every block made durable on this node is published here (explorer and sync feeds)."""
        self.background: set[asyncio.Task[None]] = set()
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        """Awaited first when the node stops, while it can still take writes (the --demo miner)."""
        """Fire-and-forget tasks (miner heartbeats), kept referenced until done."""

    # -- synchronous opening: errors surface before any server starts ---------------
    def open(self) -> InitResult:
        if self.config.follow is not None:
            return self._open_follower(self.config.follow)
        init = self.datadir.initialise(self.config.genesis, self.config.node_key)
        key = self.datadir.node_key()
        if key is None or key.public_hex not in init.genesis.authorities:
            raise DataDirError(
                f"this node holds no authority key for its chain (expected {self.datadir.node_key_path}); "
                "to replicate the chain instead, start it with --follow URL --peer-key KEY"
            )
        provisioned = load_api_keys(self.config.api_keys) if self.config.api_keys else []
        self._open_store(init)
        assert self.store is not None
        if self.store.lower_compaction_priority() is None:
            log.debug("LevelDB's compaction thread keeps the node's CPU priority")
        self.key = key
        self.init = init
        try:
            self._provision(provisioned)
        except BaseException:
            self.close()
            raise
        self.producer = Producer(self.store, key, feed=self.feed, clock=self.clock, metrics=self.metrics)
        return init

    def _open_follower(self, upstream: str) -> InitResult:
        """A follower: no key, no producer; a sync task replicates the upstream's chain."""
        from node.sync import Follower, validate_upstream

        try:
            upstream = validate_upstream(upstream)
        except ValueError as exc:
            raise DataDirError(str(exc)) from None
        if not self.config.peer_key:
            raise DataDirError(
                "--follow needs --peer-key KEY (or AITBC_PEER_KEY): an API key with the role peer on the upstream"
            )
        if self.config.api_keys is not None:
            raise DataDirError(
                "--api-keys is for the authority; a follower replicates the accounts of the chain it follows"
            )
        init = self.datadir.initialise(self.config.genesis, None, follower=True)
        key = self.datadir.node_key()
        if key is not None and key.public_hex in init.genesis.authorities:
            raise DataDirError(f"{self.datadir.path} holds the authority key of its chain; start it without --follow")
        self._open_store(init)
        assert self.store is not None
        self.init = init
        self.sync = Follower(
            self.store, self.feed, upstream, self.config.peer_key, clock=self.clock, metrics=self.metrics
        )
        return init

    def _open_store(self, init: InitResult) -> None:
        self.store = Store(self.datadir.chain_path, init.genesis)
        if self.store.reindex_pending is not None:
            self.close()
            raise DataDirError(
                f"an interrupted reindex left the state of {self.datadir.path} incomplete; "
                f"run 'aitbc-node reindex --data-dir {self.datadir.path}' again"
            )

    def _provision(self, keys: list[ProvisionedKey]) -> None:
        """Turn --api-keys entries that are not on chain yet into accounts, in one block."""
        assert self.store is not None and self.key is not None
        view = WorkingState(self.store)
        txs = []
        for k in keys:
            by_name = get_account(view, k.name)
            if by_name is not None:
                if by_name["key_hash"] != k.key_hash:
                    raise DataDirError(f"account '{k.name}' already exists on chain with a different key")
                if by_name["role"] != k.role:
                    raise DataDirError(f"account '{k.name}' already exists on chain with role '{by_name['role']}'")
                continue
            holder = account_for_key_hash(view, k.key_hash)
            if holder is not None:
                raise DataDirError(f"the key given for '{k.name}' already belongs to account '{holder['name']}'")
            payload = {"name": k.name, "role": k.role, "key_hash": k.key_hash}
            txs.append(Transaction("account.create", payload, max(self.clock(), self.store.tip().timestamp)))
        if txs:
            commit_offline(self.store, self.key, txs)
            log.info("provisioned %d account(s) from %s", len(txs), self.config.api_keys)

    # -- the async part, inside the server's event loop ------------------------------
    async def start(self) -> None:
        assert self.store is not None
        self.compactor = IndexCompactor(self.store)
        self.feed.subscribe(self.compactor.on_block)
        self.compactor.maybe_start()
        if self.sync is not None:
            self.sync.start()
            return
        assert self.producer is not None
        self.producer.start()

    async def stop(self) -> None:
        for hook in self.stop_hooks:
            await hook()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()
        if self.sync is not None:
            await self.sync.stop()
        if self.compactor is not None:
            await self.compactor.stop()
        self.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    @property
    def role(self) -> str:
        return "follower" if self.config.follow is not None else "authority"

    def maintenance(self) -> list[str]:
        """Background work in progress (index compaction, loading the explorer's last hour)."""
        work = [task.get_name() for task in self.background if not task.done()]
        if self.compactor is not None and self.compactor.running:
            work.append("index compaction")
        return work

    def sync_status(self) -> dict[str, Any] | None:
        """Replication as `aitbc-node status` shows it; None on the authority."""
        return None if self.sync is None else self.sync.status()

    def health(self) -> dict[str, Any]:
        assert self.store is not None
        tip = self.store.tip()
        health = {
            "status": "ok",
            "version": self.version,
            "chain_id": self.store.genesis.chain_id,
            "height": tip.height,
            "role": self.role,
        }
        if self.sync is not None:
            health.update(self.sync.health())
            if self.sync.degraded:
                health["status"] = "degraded"
        return health


def commit_offline(store: Store, key: NodeKey, txs: list[Transaction]) -> list[dict[str, Any]]:
    """Seal txs into one block with no server running; all are accepted, or none is written."""
    from chain.context import ApplyContext
    from chain.state import WorkingState
    from chain.transition import apply_tx

    dry_run = WorkingState(store)
    ctx = ApplyContext(time_ms=max(tx.timestamp for tx in txs), genesis=store.genesis)
    for tx in txs:
        try:
            apply_tx(dry_run, tx, ctx)
        except LedgerError as exc:
            raise DataDirError(exc.detail) from None
    outcomes, _ = seal_now(store, key, txs)
    for outcome in outcomes:
        if isinstance(outcome, LedgerError):
            raise DataDirError(outcome.detail)
    return outcomes  # type: ignore[return-value]
