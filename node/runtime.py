"""The running node: data dir, store, feed, metrics and role, opened and closed together."""

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
from node.backup import holder_of
from node.clock import Clock, now_ms
from node.compaction import IndexCompactor
from node.config import Config
from node.datadir import DataDir, DataDirError, InitResult, ProvisionedKey, load_api_keys
from node.events import BlockFeed
from node.metrics import NodeMetrics
from node.producer import BlockLog, Producer, seal_now
from node.roles import AuthorityRole, FollowerRole, Role, SequencerRole, StandbyRole
from node.store import Store, StoreLocked
from node.sync import Follower, validate_upstreams

if TYPE_CHECKING:
    from node.group import Group

log = logging.getLogger("aitbc.node")


class Node:
    """A running node: its data dir and store, its block feed and metrics, and its role
    (node.roles: an authority sealing blocks, or a follower replicating an upstream), which
    promote() and demote() change while the process runs.

    Node(config) stores the settings; open() does the side effects (data dir, store, role),
    synchronously, so that errors surface before any server starts; start() and stop() run
    inside the server's event loop."""

    version = __version__
    store: Store
    """The chain and its state; set by open()."""
    init: InitResult
    """What opening the data dir found or made (the effective genesis); set by open()."""
    role: Role
    """What this node does with its chain; set by open(), changed by promote() and demote()."""

    def __init__(self, config: Config, clock: Clock = now_ms) -> None:
        self.config = config
        self.clock = clock
        """Unix milliseconds, for block times and lease decisions; tests pass a fake."""
        self.datadir = DataDir(config.data_dir)
        self.compactor: IndexCompactor | None = None
        """Compacts the index ranges a busy chain churns; runs from start() to stop()."""
        self.feed = BlockFeed()
        """Every block made durable on this node is published here (explorer and sync feeds)."""
        self.metrics = NodeMetrics()
        """Prometheus metrics in a registry of this node's own (api/operations.py serves them)."""
        self.background: set[asyncio.Task[None]] = set()
        """Fire-and-forget tasks (miner heartbeats, the explorer's warm-up), kept referenced until done."""
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        """Awaited first when the node stops, while it can still take writes (the --demo miner)."""
        self.failure: str | None = None
        """Why the node cannot go on (a follower whose peer key the upstream refuses); set, the
        failure hooks are called and the process exits non-zero once stopped."""
        self.failure_hooks: list[Callable[[], None]] = []
        """Called when a failure is set (the server stops on it)."""
        self._started = False
        self._group: Group | None = None
        """This node's membership of an authority group (--etcd); None outside one."""
        self.url = f"http://{config.host}:{config.port}"
        """Where this node's API is reached (the server sets it once bound); a group member
        advertises it to the others while it is the sequencer."""

    # -- synchronous opening: errors surface before any server starts ---------------
    def open(self) -> InitResult:
        if self.config.follow is not None:
            if self.config.etcd is not None:
                raise DataDirError("--follow and --etcd exclude each other: a group member follows etcd's log")
            return self._open_follower(self.config.follow)
        if self.config.peer_key and self.config.etcd is None:
            raise DataDirError(
                "--peer-key (or AITBC_PEER_KEY) is for a follower (with --follow URL) or a group member (with "
                "--etcd); this node would be an authority: drop it, or add --follow"
            )
        # Read before the data dir is touched: a bad file leaves a fresh data dir as it was.
        provisioned = load_api_keys(self.config.api_keys) if self.config.api_keys else []
        init = self.datadir.initialise(self.config.genesis, self.config.node_key)
        key = self.datadir.node_key()
        if key is None or key.public_hex not in init.genesis.authorities:
            raise DataDirError(
                f"this node holds no authority key for its chain (expected {self.datadir.node_key_path}); "
                "to replicate the chain instead, start it with --follow URL --peer-key KEY"
            )
        if self.config.etcd is not None:
            return self._open_member(init, key)
        if len(init.genesis.authorities) > 1:
            raise DataDirError(
                f"the genesis lists {len(init.genesis.authorities)} authorities: sealing needs an election, or two "
                "sealers would fork the chain; start every authority with --etcd URL[,URL…]"
            )
        self._open_store(init)
        if self.store.lower_compaction_priority() is None:
            log.debug("LevelDB's compaction thread keeps the node's CPU priority")
        self.init = init
        try:
            self._provision(key, provisioned)
        except BaseException:
            self.close()
            raise
        self.role = AuthorityRole(key, self._sequencer(key))
        return init

    def _open_member(self, init: InitResult, key: NodeKey) -> InitResult:
        """A member of an authority group: a standby until etcd elects it (node.group)."""
        from node.etcd import EtcdClient
        from node.group import Group

        assert self.config.etcd is not None
        urls = [u.strip().rstrip("/") for u in self.config.etcd.split(",") if u.strip()]
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if not urls or bad:
            raise DataDirError(
                f"--etcd takes http:// URLs of etcd's client endpoints, comma-separated, got {bad or urls}"
            )
        if self.config.api_keys is not None:
            raise DataDirError(
                "--api-keys is for a single authority; in a group, create accounts through the sequencer "
                "(aitbc-node keys create --node URL) or list them in the genesis"
            )
        problem = self.config.block_room_problem()
        if problem is not None:
            raise DataDirError(problem)
        self._open_store(init)
        self.init = init
        self._group = Group(self, key, EtcdClient(urls), self.config.lease_ttl)
        self.role = StandbyRole(key, self._group.relay, self._group)
        return init

    def _open_follower(self, upstream: str) -> InitResult:
        """A follower: no key, no sequencer; a sync task replicates the upstream's chain (from
        one of the upstreams, when `upstream` lists several, comma-separated)."""
        try:
            upstream = ",".join(validate_upstreams(upstream))
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
        self.init = init
        self.role = FollowerRole(self._replica(upstream, self.config.peer_key))
        return init

    def _sequencer(self, key: NodeKey, log: BlockLog | None = None) -> Producer:
        return Producer(
            self.store,
            key,
            feed=self.feed,
            clock=self.clock,
            metrics=self.metrics,
            offer_ms=self.config.offer_ms,
            log=log,
            max_block_bytes=self.config.max_block_bytes,
            refuse_oversize=self._group is not None,
        )

    def _replica(self, upstream: str, peer_key: str) -> Follower:
        replica = Follower(self.store, self.feed, upstream, peer_key, clock=self.clock, metrics=self.metrics)
        replica.on_refused = self.fail
        return replica

    def fail(self, reason: str) -> None:
        """Stop the node for a reason it cannot recover from by itself."""
        if self.failure is None:
            self.failure = reason
            for hook in self.failure_hooks:
                hook()

    def _open_store(self, init: InitResult) -> None:
        try:
            self.store = Store(self.datadir.chain_path, init.genesis)
        except StoreLocked as exc:
            raise DataDirError(f"{exc}: {holder_of(self.datadir)}") from None
        if self.store.reindex_pending is not None:
            self.close()
            raise DataDirError(
                f"an interrupted reindex left the state of {self.datadir.path} incomplete; "
                f"run 'aitbc-node reindex --data-dir {self.datadir.path}' again"
            )

    def _provision(self, key: NodeKey, keys: list[ProvisionedKey]) -> None:
        """Turn --api-keys entries that are not on chain yet into accounts, in one block."""
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
            commit_offline(self.store, key, txs, self.clock)
            log.info("provisioned %d account(s) from %s", len(txs), self.config.api_keys)

    # -- the async part, inside the server's event loop ------------------------------
    async def start(self) -> None:
        self.compactor = IndexCompactor(self.store)
        self.feed.subscribe(self.compactor.on_block)
        self.compactor.maybe_start()
        self._start_role(self.role)
        self._started = True
        if self._group is not None:
            self._group.start()

    async def stop(self) -> None:
        for hook in self.stop_hooks:
            await hook()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        if self._group is not None:
            await self._group.stop()  # a sequencer steps down and hands its lease back
        if self._started:
            await self._stop_role(self.role)
            self._started = False
        if self.compactor is not None:
            await self.compactor.stop()
        self.close()

    @staticmethod
    def _start_role(role: Role) -> None:
        if isinstance(role, AuthorityRole | SequencerRole):
            role.sequencer.start()
        elif isinstance(role, FollowerRole):
            role.replica.start()
        # A standby's relay opens its connections with its first forwarded request.

    @staticmethod
    async def _stop_role(role: Role) -> None:
        if isinstance(role, AuthorityRole | SequencerRole):
            await role.sequencer.stop()
        elif isinstance(role, StandbyRole):
            pass  # its relay serves the next standby role too; the group closes it
        else:
            await role.replica.stop()

    # -- changing role while running --------------------------------------------------
    async def promote(self, key: NodeKey) -> None:
        """Become an authority sealing with key: stop replicating, then start the sequencer on
        this node's tip. Writes sent meanwhile get 503 (the sequencer is not yet running)."""
        if key.public_hex not in self.store.genesis.authorities:
            raise DataDirError(f"key {key.public_hex} is not an authority of chain '{self.store.genesis.chain_id}'")
        if self._group is not None or len(self.store.genesis.authorities) > 1:
            raise DataDirError("a chain with several authorities changes its sealer only by election (--etcd)")
        if isinstance(self.role, AuthorityRole):
            return
        await self._change_role(AuthorityRole(key, self._sequencer(key)))
        log.info("promoted to authority at height %d", self.store.tip().height)

    async def demote(self, upstream: str, peer_key: str) -> None:
        """Become a follower of upstream: finish the block being written, refuse what is still
        queued, then replicate from this node's tip."""
        try:
            upstream = ",".join(validate_upstreams(upstream))
        except ValueError as exc:
            raise DataDirError(str(exc)) from None
        await self._change_role(FollowerRole(self._replica(upstream, peer_key)))
        log.info("demoted to follower of %s at height %d", upstream, self.store.tip().height)

    async def become_sequencer(self, key: NodeKey, log: BlockLog) -> None:
        """In a group, once etcd elected this node: seal from this node's tip (which holds every
        block in etcd), committing each block through `log` (node.group.EtcdLog)."""
        assert self._group is not None
        await self._change_role(SequencerRole(key, self._sequencer(key, log), self._group))

    async def become_standby(self, key: NodeKey) -> None:
        """In a group, after losing (or giving up) the election: finish the block being
        committed, refuse what is still queued (503), forward writes to the next sequencer."""
        assert self._group is not None
        await self._change_role(StandbyRole(key, self._group.relay, self._group))

    async def _change_role(self, new: Role) -> None:
        old, self.role = self.role, new
        if self._started:
            await self._stop_role(old)
            self._start_role(new)

    def close(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    def maintenance(self) -> list[str]:
        """Background work in progress (index compaction, loading the explorer's last hour)."""
        work = [task.get_name() for task in self.background if not task.done()]
        if self.compactor is not None and self.compactor.running:
            work.append("index compaction")
        return work

    def sync_status(self) -> dict[str, Any] | None:
        """Replication as `aitbc-node status` shows it; None on an authority."""
        return self.role.replica.status() if isinstance(self.role, FollowerRole) else None

    def mempool_size(self) -> int:
        """Writes waiting for a block (always 0 on a follower, which seals none)."""
        return self.role.sequencer.mempool_size if isinstance(self.role, AuthorityRole | SequencerRole) else 0

    def health(self) -> dict[str, Any]:
        tip = self.store.tip()
        health = {
            "status": "ok",
            "version": self.version,
            "chain_id": self.store.genesis.chain_id,
            "height": tip.height,
            "role": self.role.name,
        }
        if isinstance(self.role, FollowerRole):
            replica = self.role.replica
            health.update(replica.health())
            if replica.degraded:
                health["status"] = "degraded"
        if isinstance(self.role, SequencerRole | StandbyRole):
            group = self.role.group.health()
            health["group"] = group
            if "halted" in group or group["etcd"] != "ok":
                health["status"] = "degraded"
        return health


def commit_offline(store: Store, key: NodeKey, txs: list[Transaction], clock: Clock = now_ms) -> list[dict[str, Any]]:
    """Seal txs into one block with no server running; all are accepted, or none is written.
    clock: the block's time, as the node that commits reads it."""
    from chain.context import ApplyContext
    from chain.state import WorkingState
    from chain.transition import apply_tx

    if len(store.genesis.authorities) > 1:
        raise DataDirError(
            "the chain has several authorities: blocks are sealed only by the group's elected sequencer; "
            "ask it with --node URL"
        )
    dry_run = WorkingState(store)
    ctx = ApplyContext(time_ms=max(tx.timestamp for tx in txs), genesis=store.genesis)
    for tx in txs:
        try:
            apply_tx(dry_run, tx, ctx)
        except LedgerError as exc:
            raise DataDirError(exc.detail) from None
    outcomes, _ = seal_now(store, key, txs, clock)
    accepted = []
    for outcome in outcomes:
        if isinstance(outcome, LedgerError):
            raise DataDirError(outcome.detail)
        accepted.append(outcome)
    return accepted
