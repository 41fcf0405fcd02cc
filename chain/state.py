"""State: a key-value view the transition reads and writes, and its commitment.

Records are canonical JSON under byte keys. Secondary indexes are plain keys too, so
that every replica derives the same index entries and the state root covers them.
Key parts are joined with NUL, which no name or id may contain.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Iterator
from typing import Any, Protocol

from chain.crypto import hash_bytes
from chain.encoding import canonical, decode

SEP = b"\x00"
_U32 = struct.Struct(">I")
_DELETED = b"\xff\xff\xff\xff"
"""Where a deleted key's value length would be in the state root's input."""


def key(*parts: str | int) -> bytes:
    """Build a state key. Integers become 16 hex digits, so they sort numerically."""
    return SEP.join([part.encode("utf-8") if isinstance(part, str) else b"%016x" % part for part in parts])


class StateView(Protocol):
    """What the transition needs from storage: point reads and writes."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class ReadableState(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """The entries under prefix in key order, each as (key without the prefix, value), from
        the first whose key without the prefix is >= start. The transition reads only the first
        few (the head of a pending queue, the soonest idempotency expiries)."""
        ...


class RecordReader(Protocol):
    """Point reads of values and of the records decoded from them: a WorkingState, or the
    store itself where a read model reads committed state."""

    def get(self, key: bytes) -> bytes | None: ...

    def get_record(self, key: bytes) -> Any: ...


class EmptyState:
    """A base with nothing in it (genesis, tests)."""

    def get(self, key: bytes) -> bytes | None:
        return None

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return iter(())


class WorkingState:
    """Writes buffered over a read-only base. Children let one transaction roll back alone."""

    def __init__(self, base: ReadableState) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}
        self._sorted: list[tuple[bytes, bytes | None]] | None = None
        self._ordered: dict[bytes, list[bytes]] = {}
        """For each prefix scanned: the keys written here under it, sorted; kept up to date by
        every later write, so that repeated scans (one per job.claim_next) cost no sort."""

    def get(self, key: bytes) -> bytes | None:
        # Down the stack of working states in a loop, not a call per level: a transaction's
        # scratch state sits on its block's, which may sit on the block being written.
        state: ReadableState = self
        while state.__class__ is WorkingState:
            writes = state._writes
            if key in writes:
                return writes[key]
            state = state._base
        return state.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if self._ordered and key not in self._writes:
            self._order(key)
        self._writes[key] = value
        self._sorted = None

    def delete(self, key: bytes) -> None:
        if self._ordered and key not in self._writes:
            self._order(key)
        self._writes[key] = None
        self._sorted = None

    def _order(self, key: bytes) -> None:
        """A key newly written here: into the sorted keys of each scanned prefix it falls under."""
        for prefix, keys in self._ordered.items():
            if key.startswith(prefix):
                bisect.insort(keys, key)

    def scan(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """The base's entries under prefix merged with this state's writes over them (a write
        replaces the base's value of its key; a deletion hides it), in key order, from start."""
        own = self._ordered.get(prefix)
        if own is None:
            own = self._ordered[prefix] = sorted(k for k in self._writes if k.startswith(prefix))
        writes, cut = self._writes, len(prefix)
        base = self._base.scan(prefix, start)
        below = next(base, None)
        for key in itertools.islice(own, bisect.bisect_left(own, prefix + start), None) if start else own:
            suffix = key[cut:]
            while below is not None and below[0] < suffix:
                yield below
                below = next(base, None)
            if below is not None and below[0] == suffix:
                below = next(base, None)  # replaced or deleted here
            value = writes[key]
            if value is not None:
                yield suffix, value
        while below is not None:
            yield below
            below = next(base, None)

    def get_record(self, key: bytes) -> Any:
        raw = self.get(key)
        return None if raw is None else decode(raw)

    def put_record(self, key: bytes, record: Any) -> None:
        self.put(key, canonical(record))

    def get_int(self, key: bytes) -> int:
        raw = self.get(key)
        return 0 if raw is None else int(raw)

    def add_int(self, key: bytes, delta: int) -> int:
        value = self.get_int(key) + delta
        self.put(key, str(value).encode())
        return value

    def child(self) -> WorkingState:
        return WorkingState(self)

    def merge_into_parent(self) -> None:
        parent = self._base
        assert isinstance(parent, WorkingState), "only a child can be merged"
        if parent._ordered:
            for k in self._writes:
                if k not in parent._writes:
                    parent._order(k)
        parent._writes.update(self._writes)
        parent._sorted = None

    def rebase(self, base: ReadableState) -> None:
        """Read through `base` from now on; it must already hold everything the old base added."""
        self._base = base

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """The net changes, sorted by key; None means deleted. (Sorted once until the next write:
        the state root and the block's write batch both need them.)"""
        if self._sorted is None:
            self._sorted = sorted(self._writes.items())
        return self._sorted

    def items(self) -> Iterator[tuple[bytes, bytes | None]]:
        return iter(self._writes.items())


def state_root(prev_root: str, changes: list[tuple[bytes, bytes | None]]) -> str:
    """Chain the previous root with the block's net, key-sorted state changes.

    A replica that derives any different record, index entry or counter gets a
    different root and rejects the block.
    """
    parts = [bytes.fromhex(prev_root)]
    add, length = parts.append, _U32.pack  # each part appended apart: no bytes built per change
    for k, v in changes:
        add(length(len(k)))
        add(k)
        if v is None:
            add(_DELETED)
        else:
            add(length(len(v)))
            add(v)
    return hash_bytes(b"".join(parts)).hex()
