"""The LevelDB store: the only module that imports plyvel.

Key prefixes (heights are 8 bytes big-endian, so they sort numerically):
  b<height>            -> block (canonical JSON: header, seal, transactions)
  H<height>            -> block header (canonical JSON), read without the transactions
  h<block hash:32>     -> height
  t<tx hash:32>        -> height, then the transaction's index in the block (4 bytes)
  s<state key>         -> state value: records, counters and secondary indexes (chain.state,
                          chain.indexes); a block's state changes go here
  mgenesis             -> hash of the genesis the store was created with
  mtip                 -> tip header (canonical JSON)
  mtxcount             -> transactions stored (decimal)
  mreindex             -> present only while `aitbc-node reindex` is rebuilding what blocks derive
  M<level:1><index:8>  -> hash of a perfect subtree of the Merkle tree over block hashes
                          (checkpoints; see chain.merkle.perfect_nodes_for_append)
  Dh<hour:4><miner>    -> receipts and units of a miner in one UTC hour (8 + 8 bytes)
  Dd<day:4><miner>     -> the same per UTC day
  Dn<hour:4>           -> blocks, transactions, jobs submitted, receipts in one UTC hour
  mactivityfrom        -> the first height the D counters count (decimal)
  (The D counters are the explorer's activity aggregate: derived node-side data, never
  state, so state roots and old chains are untouched. See Store._activity_counts.)

Each block is written in one WriteBatch(sync=True) with its state changes, indexes and
the new tip, so after a crash the store ends at some block boundary, never inside one.
"""

from __future__ import annotations

import bisect
import itertools
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, overload

import plyvel

from chain.blocks import Block, BlockHeader
from chain.encoding import canonical, decode
from chain.genesis import Genesis
from chain.indexes import INDEXES, PENDING_QUEUES
from chain.merkle import consistency_path, inclusion_path, leaf_hash, perfect_nodes_for_append, range_hash, tree_root
from chain.state import SEP, EmptyState
from chain.transition import genesis_block
from node.datadir import fsync_dir

BLOCK = b"b"
HEADER = b"H"
HASH = b"h"
TX = b"t"
STATE = b"s"
META = b"m"
META_GENESIS = META + b"genesis"
META_TIP = META + b"tip"
META_TXS = META + b"txcount"
BLOCK_TREE = b"M"
META_REINDEX = META + b"reindex"
ACTIVITY = b"D"
MINER_HOURS = ACTIVITY + b"h"
MINER_DAYS = ACTIVITY + b"d"
NETWORK_HOURS = ACTIVITY + b"n"
META_ACTIVITY_FROM = META + b"activityfrom"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class StoreError(Exception):
    """The store cannot be opened or used; the message is meant for an operator."""


class StoreLocked(StoreError):
    """Another process has the data dir open."""


class ChainMismatch(StoreError):
    """The data dir holds another chain (a different genesis)."""


def _height(height: int) -> bytes:
    return struct.pack(">Q", height)


LEVELDB_OPTIONS: dict[str, Any] = {
    # LevelDB's background compaction runs in this process and competes with it for CPU (on
    # the authority, with the one event loop). The first two settings cut its CPU per synced
    # transaction from ~80 µs to ~30 µs (`python -m bench bench_sync`), for about twice the
    # disk. Stores written either way read the same.
    "compression": None,
    "write_buffer_size": 16 * 1024 * 1024,  # 4 MiB by default: fewer, larger level-0 files
    # LevelDB maps each open table file into memory; open files (1,000 by default, about 2 MiB
    # each) bound what a node's resident memory can hold of them.
    "max_open_files": 100,
}

Changes = list[tuple[bytes, bytes | None]]
"""A block's net state changes, sorted by key; None means deleted (WorkingState.changes)."""


# plyvel ships no type hints: what this module uses of it, typed.
class _WriteBatch(Protocol):
    """plyvel.WriteBatch: written by write() or on leaving a `with` block without an error."""

    def put(self, key: bytes, value: bytes, /) -> None: ...
    def delete(self, key: bytes, /) -> None: ...
    def write(self) -> None: ...
    def __enter__(self) -> _WriteBatch: ...
    def __exit__(self, *exc_info: object) -> None: ...


class _Items(Protocol):
    """A plyvel iterator over keys and values."""

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]: ...
    def __enter__(self) -> _Items: ...
    def __exit__(self, *exc_info: object) -> None: ...


class _Reader(Protocol):
    """What plyvel.DB and its snapshots read with."""

    def get(self, key: bytes, /) -> bytes | None: ...
    @overload
    def iterator(
        self,
        *,
        reverse: bool = ...,
        start: bytes | None = ...,
        stop: bytes | None = ...,
        prefix: bytes | None = ...,
        include_value: Literal[True] = ...,
    ) -> _Items: ...
    @overload
    def iterator(
        self,
        *,
        reverse: bool = ...,
        start: bytes | None = ...,
        stop: bytes | None = ...,
        prefix: bytes | None = ...,
        include_value: Literal[False],
    ) -> Iterator[bytes]: ...


class _Snapshot(_Reader, Protocol):
    """plyvel.Snapshot."""

    def close(self) -> None: ...


class _LevelDB(_Reader, Protocol):
    """plyvel.DB."""

    @property
    def closed(self) -> bool: ...
    def put(self, key: bytes, value: bytes, /, *, sync: bool = ...) -> None: ...
    def delete(self, key: bytes, /, *, sync: bool = ...) -> None: ...
    def write_batch(self, *, transaction: bool = ..., sync: bool = ...) -> _WriteBatch: ...
    def snapshot(self) -> _Snapshot: ...
    def compact_range(self, *, start: bytes | None = ..., stop: bytes | None = ...) -> None: ...
    def close(self) -> None: ...


COMPACTION_NICENESS = 10
"""How far below the node's own priority LevelDB's background compaction thread runs on the
authority (Linux; at most 19). Its flushes then take the CPU the event loop leaves instead of
half of it, so a memtable flush does not stall the answers in flight; LevelDB's own write
throttling still hands it the core if it falls behind. Submit p99 under load:
`python -m bench load --workload submit`."""
COMPACTION_THREAD_NAME = "leveldb-compact"
"""The name the compaction thread gets (top -H, ps -L), once its priority is lowered."""

_compaction_lock = threading.Lock()
_compaction_thread: int | None = None
"""LevelDB's one background thread (per process, shared by every store), once identified."""
_PAST_EVERY_KEY = b"\xff" * 8
"""Above every key the store writes (all start with an ASCII letter)."""


def _thread_ids() -> set[int] | None:
    """This process's thread ids, or None where /proc does not list them (not Linux)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return None


@dataclass(frozen=True)
class PreparedBlock:
    """A block's write batch, built and not yet written (Store.prepare_block, Store.commit)."""

    header: BlockHeader
    batch: _WriteBatch
    changes: Changes
    """The block's state changes, for the read cache once the batch is durable."""
    index_deletions: int
    """How many secondary-index entries the batch deletes (each leaves a LevelDB tombstone)."""


class StateCache:
    """Recently read state values, by key, bounded.

    Reads come from the event loop while a writer thread commits blocks, so an entry read
    from LevelDB is kept only if no commit finished between the read and keeping it (the
    epoch, moved under the lock by every commit after its batch is durable, tells); a commit
    replaces or drops the entries of the cached keys it changed. So an entry never outlives the
    value it caches. Full, it is emptied: a hostile reader cannot make it grow."""

    MAX_ENTRIES = 32_768

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.epoch = 0
        self._lock = threading.Lock()

    def keep(self, key: bytes, value: bytes, epoch: int) -> None:
        with self._lock:
            if epoch == self.epoch:
                values = self.values
                if len(values) >= self.MAX_ENTRIES:
                    values.clear()
                values[key] = value

    def committed(self, changes: Changes) -> None:
        """After a batch is durable: the cached keys it changed now read as it wrote them. (Keys
        not cached stay so: filling the cache from every write would cost a follower catching up
        more than its reads gain.)"""
        with self._lock:
            values = self.values
            if values:
                for k, v in changes:
                    if k in values:
                        if v is None:
                            del values[k]
                        else:
                            values[k] = v
            self.epoch += 1

    def clear(self) -> None:
        with self._lock:
            self.values.clear()
            self.epoch += 1


class QueueHeads:
    """The first few entries of index queues, cached: the oldest pending job of each model.

    A queue is every state entry under `family + name + NUL` (a miner asks for the head of the
    queue of each model it serves). For each queue asked for, this holds up to DEPTH of its
    first entries in key order and whether they are all of it. A commit applies its changes
    to the queues held, under the lock, and moves the epoch; a queue read from LevelDB is kept
    only if no commit finished meanwhile, and applying a change twice changes nothing, so a
    read that saw a batch before its commit got here is still right afterwards. Without this,
    each poll opened a LevelDB iterator, which also had to step over the tombstones of every
    claimed job since the last compaction."""

    DEPTH = 128
    """Entries held per queue: enough to step over the jobs concurrent miners are offered or
    have just claimed in the blocks not yet written (node.offers, job.claim_next)."""
    MAX_QUEUES = 4096

    def __init__(self, family: bytes) -> None:
        self.family = family
        self.queues: dict[bytes, tuple[list[tuple[bytes, bytes]], bool]] = {}
        """Queue prefix -> (its first entries, key suffix and value, in order; whether that is all of it)."""
        self.epoch = 0
        self._lock = threading.Lock()

    def keep(self, prefix: bytes, entries: list[tuple[bytes, bytes]], whole: bool, epoch: int) -> None:
        with self._lock:
            if epoch == self.epoch:
                if len(self.queues) >= self.MAX_QUEUES:
                    self.queues.clear()
                self.queues[prefix] = (entries, whole)

    def committed(self, changes: Changes) -> None:
        with self._lock:
            if self.queues:
                family = self.family
                at = bisect.bisect_left(changes, (family,))
                for k, v in itertools.islice(changes, at, None):
                    if not k.startswith(family):
                        break
                    cut = k.find(b"\x00", len(family)) + 1
                    if not cut:
                        continue  # not a queue entry (the chain never writes one so)
                    held = self.queues.get(k[:cut])
                    if held is not None:
                        self._apply(k[:cut], held, k[cut:], v)
            self.epoch += 1

    def _apply(
        self, prefix: bytes, held: tuple[list[tuple[bytes, bytes]], bool], suffix: bytes, value: bytes | None
    ) -> None:
        entries, whole = held
        i = bisect.bisect_left(entries, (suffix,))
        present = i < len(entries) and entries[i][0] == suffix
        if value is None:
            if present:
                del entries[i]
                if not entries and not whole:
                    del self.queues[prefix]  # what comes next is not held: read it afresh
        elif present:
            entries[i] = (suffix, value)
        elif whole or i < len(entries):  # beyond the last entry held of a partial queue: not held
            entries.insert(i, (suffix, value))
            if len(entries) > self.DEPTH:
                entries.pop()
                self.queues[prefix] = (entries, False)

    def held(self, prefix: bytes, limit: int | None = None) -> tuple[list[tuple[bytes, bytes]] | None, bool, int]:
        """(a copy of the queue's first entries, at most `limit` of them, if it is held; whether
        they are all of it; the epoch to keep a fresh read at)"""
        with self._lock:
            held = self.queues.get(prefix)
            if held is None:
                return None, False, self.epoch
            entries, whole = held
            copied = entries if limit is None else entries[:limit]
            return list(copied), whole and len(copied) == len(entries), self.epoch

    def clear(self) -> None:
        with self._lock:
            self.queues.clear()
            self.epoch += 1


class Store:
    def __init__(self, path: Path | str, genesis: Genesis, *, create: bool = True) -> None:
        self.path = Path(path)
        self._tip: BlockHeader | None = None
        """The tip header, cached; replaced only once a block's batch is durable."""
        self._cache = StateCache()
        self._queues = QueueHeads(PENDING_QUEUES)
        self.index_deletions = 0
        """Secondary-index entries deleted by the blocks written since the store was opened: the
        tombstones node.compaction.IndexCompactor is there to clear."""
        if not create and not self.path.is_dir():
            raise StoreError(f"the store at {self.path} holds no chain")
        self._threads_before_open = None if _compaction_thread is not None else _thread_ids()
        creating = create and not self.path.exists()
        try:
            self._db: _LevelDB = plyvel.DB(str(self.path), create_if_missing=create, **LEVELDB_OPTIONS)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"the data dir {self.path.parent} is already in use by another aitbc-node process"
                ) from None
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from None
        except plyvel.Error as exc:
            raise StoreError(f"the store at {self.path} is corrupt: {exc}") from None
        self.genesis = genesis
        try:
            if creating:
                # LevelDB syncs the files inside the chain dir, not the chain dir's own entry in
                # the data dir: without this, a power cut could lose the whole new store.
                fsync_dir(self.path.parent)
            self._adopt_genesis(genesis, create)
            self._complete_block_tree()
            if self._db.get(META_ACTIVITY_FROM) is None:
                # A store written before the activity counters existed: they count from the
                # next block on (`aitbc-node reindex` counts every block).
                self._db.put(META_ACTIVITY_FROM, str(self.tip().height + 1).encode(), sync=True)
        except BaseException:
            self.close()
            raise

    def _adopt_genesis(self, genesis: Genesis, create: bool) -> None:
        stored = self._db.get(META_GENESIS)
        if stored is None and not create:
            raise StoreError(f"the store at {self.path} holds no chain")
        if stored is None:
            block, state = genesis_block(genesis, EmptyState())
            extra = {META_GENESIS: genesis.hash.encode(), META_ACTIVITY_FROM: b"0"}
            self.write_block(block, state.changes(), extra=extra)
        elif stored.decode() != genesis.hash:
            raise ChainMismatch(
                f"the data dir {self.path.parent} belongs to another chain: its genesis hash is {stored.decode()}, "
                f"the genesis given is {genesis.hash}; start it without --genesis (it keeps its own "
                f"{self.path.parent / 'genesis.json'}), or give this genesis another --data-dir"
            )

    def close(self) -> None:
        """Close the store (again: nothing). Its reads and writes raise RuntimeError from then on."""
        db: _LevelDB | None = getattr(self, "_db", None)  # None: __init__ could not open it
        if db is not None:
            db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed

    # -- state view (read side of chain.state.StateView) ---------------------------
    def get(self, key: bytes) -> bytes | None:
        cache = self._cache
        value = cache.values.get(key)
        if value is None:
            epoch = cache.epoch
            value = self._db.get(STATE + key)
            if value is not None:  # absent keys are not kept: guessed ids must not grow the cache
                cache.keep(key, value, epoch)
        return value

    def get_record(self, key: bytes) -> Any:
        raw = self.get(key)
        return None if raw is None else decode(raw)

    def get_int(self, key: bytes) -> int:
        raw = self.get(key)
        return 0 if raw is None else int(raw)

    def iter_state(
        self,
        prefix: bytes,
        *,
        reverse: bool = False,
        start: bytes | None = None,
        stop: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """State entries under prefix (keys returned without the prefix), optionally bounded."""
        full = STATE + prefix
        if start is None and stop is None:
            entries = self._db.iterator(reverse=reverse, prefix=full)
        else:
            entries = self._db.iterator(
                reverse=reverse,
                start=full + (start or b""),
                stop=full + stop if stop is not None else _prefix_end(full),
            )
        cut = len(full)
        for k, v in entries:
            yield k[cut:], v

    def queue_head(self, name: str) -> tuple[bytes, bytes] | None:
        """The first entry (its key after the queue's prefix, its value) of the queue `name` of
        chain.indexes.PENDING_QUEUES (the oldest pending job of model `name`), or None if it is empty."""
        return next(self._queue(self._queues.family + name.encode("utf-8") + SEP, limit=1), None)

    def queue(self, name: str) -> Iterator[tuple[bytes, bytes]]:
        """The entries of the queue `name` of chain.indexes.PENDING_QUEUES in order (the pending
        jobs of model `name`, oldest first): those held in memory, then on from LevelDB."""
        return self._queue(self._queues.family + name.encode("utf-8") + SEP)

    def _queue(self, prefix: bytes, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The queue's entries; `limit`: how many a caller takes at most (the head alone copies one)."""
        heads = self._queues
        entries, whole, epoch = heads.held(prefix, limit)
        if entries is None:
            entries = list(itertools.islice(self.iter_state(prefix), heads.DEPTH + 1))
            whole = len(entries) <= heads.DEPTH
            del entries[heads.DEPTH :]
            heads.keep(prefix, list(entries), whole, epoch)
        yield from entries
        if not whole:
            yield from self.iter_state(prefix, start=entries[-1][0] + SEP if entries else None)

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """State entries under prefix in key order (keys without the prefix), from start; a
        pending queue's come from memory (Store.queue), as the transition reads them for
        job.claim_next."""
        if start:
            return self.iter_state(prefix, start=start)
        family = self._queues.family
        if prefix.startswith(family) and prefix.find(SEP, len(family)) == len(prefix) - 1:
            return self._queue(prefix)
        return self.iter_state(prefix)

    def iter_all_state(self) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self._db.iterator(prefix=STATE):
            yield k[1:], v

    def snapshot(self) -> StoreSnapshot:
        """A consistent point-in-time view (always at a block boundary); close it when done."""
        return StoreSnapshot(self._db.snapshot())

    # -- blocks --------------------------------------------------------------------
    def tip(self) -> BlockHeader:
        if self._tip is None:
            raw = self._db.get(META_TIP)
            assert raw is not None, "an adopted store always has a tip"
            self._tip = BlockHeader.from_dict(decode(raw))
        return self._tip

    def tx_count(self) -> int:
        raw = self._db.get(META_TXS)
        return 0 if raw is None else int(raw)

    def block_bytes(self, height: int) -> bytes | None:
        return self._db.get(BLOCK + _height(height))

    def header(self, height: int) -> BlockHeader | None:
        """A block's header alone: a small read, where the block may hold megabytes."""
        raw = self._db.get(HEADER + _height(height))
        if raw is not None:
            return BlockHeader.from_dict(decode(raw))
        block = self.block(height)  # a data dir written before headers were kept apart
        return None if block is None else block.header

    def block(self, height: int) -> Block | None:
        raw = self.block_bytes(height)
        return None if raw is None else Block.decode(raw)

    def iter_block_bytes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        for k, v in self._db.iterator(start=BLOCK + _height(start), stop=_prefix_end(BLOCK)):
            yield struct.unpack(">Q", k[1:])[0], v

    def height_of(self, block_hash: str) -> int | None:
        try:
            raw = self._db.get(HASH + bytes.fromhex(block_hash))
        except ValueError:
            return None
        return None if raw is None else struct.unpack(">Q", raw)[0]

    def tx_location(self, tx_hash: str) -> tuple[int, int] | None:
        try:
            raw = self._db.get(TX + bytes.fromhex(tx_hash))
        except ValueError:
            return None
        return None if raw is None else struct.unpack(">QI", raw)

    def lower_compaction_priority(self, niceness: int = COMPACTION_NICENESS) -> int | None:
        """Run LevelDB's background compaction `niceness` below the calling thread's priority
        (nice values add; at most 19) and name its thread; return its id.

        LevelDB starts that thread on the first compaction it schedules, perhaps while the store
        was being opened. A compaction of an empty range past every key starts it now if not
        (flushing what little the memtable holds), and the one thread that has appeared since
        just before the store was opened is it. None where that cannot be known: not Linux, the
        thread started before this store was opened (by another store in this process), or
        another thread appeared meanwhile. Call it right after opening the store."""
        global _compaction_thread
        with _compaction_lock:
            if _compaction_thread is None and self._threads_before_open is not None:
                try:
                    self._db.compact_range(start=_PAST_EVERY_KEY, stop=_PAST_EVERY_KEY + b"\xff")
                except plyvel.Error:
                    return None  # an optimisation only: the store's own reads and writes will tell
                appeared = (_thread_ids() or set()) - self._threads_before_open
                if len(appeared) == 1:
                    (tid,) = appeared
                    try:
                        lowered = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
                        os.setpriority(os.PRIO_PROCESS, tid, lowered)  # on Linux, that thread's alone
                        Path(f"/proc/self/task/{tid}/comm").write_text(COMPACTION_THREAD_NAME)
                    except OSError:
                        return None
                    _compaction_thread = tid
            return _compaction_thread

    def write_block(self, block: Block, changes: Changes, *, extra: dict[bytes, bytes] | None = None) -> None:
        """Write the block, its state changes, tx index and the new tip atomically and durably."""
        self.commit(self.prepare_block(block, changes, extra=extra))

    def prepare_block(
        self, block: Block, changes: Changes, *, extra: dict[bytes, bytes] | None = None, synced: bool = True
    ) -> PreparedBlock:
        """Build the block's one batch, without writing it. The block below must be stored:
        the batch carries the new transaction count and block-tree nodes derived from it.

        synced=False: the batch is written without waiting for the disk, for a group member,
        whose blocks are durable in etcd before they are stored. LevelDB keeps its batches in
        order, so a power cut loses at most the last few whole blocks, which the member applies
        again from etcd (or catches up over HTTP) when it starts."""
        batch = self._db.write_batch(sync=synced)
        batch.put(BLOCK + _height(block.height), block.encode())
        deletions = self._put_derived(batch, block, changes)
        batch.put(META_TIP, canonical(block.header.to_dict()))
        for k, v in self._block_tree_nodes(block).items():
            batch.put(k, v)
        for k, v in (extra or {}).items():
            batch.put(k, v)
        return PreparedBlock(block.header, batch, changes, deletions)

    def commit(self, prepared: PreparedBlock) -> None:
        """Write a prepared block's batch, synced unless prepared otherwise. (LevelDB does this
        without Python's GIL, so another thread may prepare or apply the next block meanwhile.) If anything raised while
        the batch was being prepared, it is simply never committed: nothing of it is written."""
        prepared.batch.write()
        self._written(prepared.changes, prepared.index_deletions)
        self._tip = prepared.header

    def _written(self, changes: Changes, index_deletions: int) -> None:
        """Once a batch holding these state changes is durable."""
        self._cache.committed(changes)
        self._queues.committed(changes)
        self.index_deletions += index_deletions

    # -- the Merkle tree over block hashes (checkpoints and consistency proofs) -------
    # Leaf i is block i's 32-byte hash. Each block adds the perfect subtrees it completes
    # (one per trailing 1 bit of its height), in the block's own write batch, so a root or
    # a proof for any size is O(log n) point reads.
    def _block_tree_nodes(self, block: Block) -> dict[bytes, bytes]:
        nodes = perfect_nodes_for_append(block.height, leaf_hash(block.header.hash_bytes), self.block_tree_node)
        return {_tree_key(level, index): h for level, index, h in nodes}

    def block_tree_node(self, level: int, index: int) -> bytes:
        raw = self._db.get(_tree_key(level, index))
        if raw is None:
            raise StoreError(f"the block tree lacks node {level}/{index}; the store is incomplete")
        return raw

    def block_tree_root(self, size: int) -> bytes:
        """Merkle root over the hashes of blocks 0..size-1."""
        return tree_root(self.block_tree_node, size)

    def block_tree_consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return consistency_path(self._block_subtree, old_size, new_size)

    def block_tree_inclusion(self, height: int, size: int) -> list[bytes]:
        return inclusion_path(self._block_subtree, height, size)

    def _block_subtree(self, lo: int, hi: int) -> bytes:
        return range_hash(self.block_tree_node, lo, hi)

    def _complete_block_tree(self) -> None:
        """Add the tree nodes a store written before checkpoints existed lacks (once)."""
        size = self.tip().height + 1
        if self._db.get(_tree_key(0, size - 1)) is not None:
            return
        lo, hi = 0, size - 1  # leaves are written in order: find the first missing one
        while lo < hi:
            mid = (lo + hi) // 2
            if self._db.get(_tree_key(0, mid)) is None:
                hi = mid
            else:
                lo = mid + 1
        for height in range(lo, size):
            block = self.block(height)
            assert block is not None, f"block {height} is missing below the tip"
            with self._db.write_batch(sync=height == size - 1) as batch:
                for k, v in self._block_tree_nodes(block).items():
                    batch.put(k, v)

    def _put_derived(self, batch: _WriteBatch, block: Block, changes: Changes) -> int:
        """What a block derives: its hash and tx index entries, its state changes, the tx count.
        Returns how many secondary-index entries it deletes."""
        hb = _height(block.height)
        batch.put(HEADER + hb, canonical(block.header.to_dict()))
        batch.put(HASH + block.header.hash_bytes, hb)
        for i, tx in enumerate(block.transactions):
            batch.put(TX + tx.hash, hb + struct.pack(">I", i))
        index_deletions = 0
        for k, v in changes:
            if v is None:
                batch.delete(STATE + k)
                if k.startswith(INDEXES):
                    index_deletions += 1
            else:
                batch.put(STATE + k, v)
        batch.put(META_TXS, str(self.tx_count() + len(block.transactions)).encode())
        for k, v in self._activity_counts(block).items():
            batch.put(k, v)
        return index_deletions

    # -- the explorer's activity aggregate (miners' standings, hourly charts) ---------
    # Counters per UTC hour and day, added to in each block's own batch, so a window of days is
    # a short range read (buckets x miners), never a chain scan, and the counters are exactly as
    # durable as the blocks. They are read-modify-write like the tx count above: a block's
    # batch is prepared only once the block below is written (Store.prepare_block), so the
    # stored values are current. A block is counted by its header timestamp.
    def _activity_counts(self, block: Block) -> dict[bytes, bytes]:
        hour = block.header.timestamp // HOUR_MS
        day = block.header.timestamp // DAY_MS
        per_miner: dict[str, list[int]] = {}
        jobs = 0
        for tx in block.transactions:
            if tx.type == "job.submit":
                jobs += 1
            elif tx.type == "job.complete":
                receipt = tx.payload.get("receipt")
                if isinstance(receipt, dict) and isinstance(receipt.get("provider"), str):
                    units = receipt.get("units")
                    counts = per_miner.setdefault(receipt["provider"], [0, 0])
                    counts[0] += 1
                    counts[1] += units if isinstance(units, int) and units >= 0 else 0
        out: dict[bytes, bytes] = {}
        for miner_id, (receipts, units) in per_miner.items():
            name = miner_id.encode("utf-8", "surrogatepass")
            for key in (MINER_HOURS + _bucket(hour) + name, MINER_DAYS + _bucket(day) + name):
                out[key] = _add_counts(self._db.get(key), (receipts, units))
        network = NETWORK_HOURS + _bucket(hour)
        out[network] = _add_counts(
            self._db.get(network), (1, len(block.transactions), jobs, sum(c[0] for c in per_miner.values()))
        )
        return out

    def activity(self, prefix: bytes, first: int, last: int) -> Iterator[tuple[int, bytes, tuple[int, ...]]]:
        """(bucket, name, counters) of the activity counters under prefix (MINER_HOURS,
        MINER_DAYS or NETWORK_HOURS) in buckets first..last, in key order."""
        start, stop = prefix + _bucket(max(first, 0)), prefix + _bucket(max(last + 1, 0))
        for k, v in self._db.iterator(start=start, stop=stop):
            bucket = struct.unpack(">I", k[len(prefix) : len(prefix) + 4])[0]
            yield bucket, k[len(prefix) + 4 :], struct.unpack(f">{len(v) // 8}Q", v)

    @property
    def activity_from(self) -> int:
        """The first height the activity counters count (later than 0 on a store written
        before they existed, until `aitbc-node reindex`)."""
        raw = self._db.get(META_ACTIVITY_FROM)
        return 0 if raw is None else int(raw)

    def compact_indexes(self) -> None:
        """Compact the secondary-index key range (drops the tombstones that churn leaves)."""
        if not self._db.closed:
            self._db.compact_range(start=STATE + INDEXES, stop=STATE + INDEXES[:-1] + b"\x01")

    # -- rebuilding state and indexes from the stored blocks (aitbc-node reindex) -----
    @property
    def reindex_pending(self) -> bytes | None:
        """Where an interrupted reindex stopped, or None when state and indexes are whole."""
        return self._db.get(META_REINDEX)

    def begin_reindex(self, batch_size: int = 10_000) -> None:
        """Mark the state as being rebuilt, then delete all of it and the tx index, in batches."""
        self._cache.clear()
        self._queues.clear()
        self._db.put(META_REINDEX, b"clearing", sync=True)
        for prefix in (STATE, TX, HASH, ACTIVITY):
            while True:
                keys = list(itertools.islice(self._db.iterator(prefix=prefix, include_value=False), batch_size))
                if not keys:
                    break
                with self._db.write_batch(sync=True) as batch:
                    for k in keys:
                        batch.delete(k)
        with self._db.write_batch(sync=True) as batch:
            batch.put(META_TXS, b"0")
            batch.put(META_REINDEX, b"0")
            batch.put(META_ACTIVITY_FROM, b"0")

    def write_derived(self, block: Block, changes: Changes) -> None:
        """Write what a stored block derives (state changes, hash and tx index) and the reindex mark."""
        with self._db.write_batch(sync=True, transaction=True) as batch:
            deletions = self._put_derived(batch, block, changes)
            batch.put(META_REINDEX, str(block.height + 1).encode())
        self._written(changes, deletions)

    def end_reindex(self) -> None:
        self._db.delete(META_REINDEX, sync=True)


class StoreSnapshot:
    """Every raw key and value of the store as of one moment, for backups."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self._snapshot = snapshot

    def tip(self) -> BlockHeader:
        raw = self._snapshot.get(META_TIP)
        assert raw is not None, "an adopted store always has a tip"
        return BlockHeader.from_dict(decode(raw))

    def genesis_hash(self) -> str:
        raw = self._snapshot.get(META_GENESIS)
        assert raw is not None, "an adopted store always has its genesis hash"
        return raw.decode()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        with self._snapshot.iterator() as it:
            yield from it

    def close(self) -> None:
        self._snapshot.close()


def load_raw(path: Path, items: Iterator[tuple[bytes, bytes]], batch_bytes: int = 4 * 1024 * 1024) -> int:
    """Write raw entries (from StoreSnapshot.items) into a new, empty store at path; count them."""
    db: _LevelDB = plyvel.DB(str(path), create_if_missing=True, error_if_exists=True, **LEVELDB_OPTIONS)
    count = 0
    try:
        batch = db.write_batch(sync=True)
        size = 0
        for k, v in items:
            batch.put(k, v)
            count += 1
            size += len(k) + len(v)
            if size >= batch_bytes:
                batch.write()
                batch, size = db.write_batch(sync=True), 0
        batch.write()
    finally:
        db.close()
    return count


def _bucket(n: int) -> bytes:
    return struct.pack(">I", n)


def _add_counts(stored: bytes | None, add: tuple[int, ...]) -> bytes:
    """Counters (8-byte big-endian each) plus add."""
    old = (0,) * len(add) if stored is None else struct.unpack(f">{len(add)}Q", stored)
    return struct.pack(f">{len(add)}Q", *(a + b for a, b in zip(old, add, strict=True)))


def _tree_key(level: int, index: int) -> bytes:
    return BLOCK_TREE + bytes([level]) + struct.pack(">Q", index)


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with prefix."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])
