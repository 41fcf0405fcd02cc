"""Run aitbc-node under strace and read the trace: which bytes reached which file, which syncs
made them durable, and when each answer left the process.

strace runs with -f (every thread and child), -tt (wall-clock times, for messages), -yy (each
file descriptor's path or TCP endpoints) and -xx (every string and path in hex, so the parser
never meets an unescaped quote or bracket). Lines are numbered in the order strace printed
them. A thread stopped at a syscall stays stopped until strace has printed that stop, so when
one thread acts on what another one's finished syscall made possible (the event loop sending
an answer once the writer thread's fdatasync returned), the second syscall's entry is printed
after the first one's exit: "exit line < entry line" is a sound happens-before.

The LevelDB write-ahead log (NNNNNN.log in a chain dir) is rebuilt from the writes to it and
parsed into records (LevelDB's log format: 32 KiB blocks of fragments, each behind a 7-byte
header), each record a WriteBatch. A record is durable from the exit of the first fsync or
fdatasync of its file that began after the write holding its last byte had returned.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import NodeProcess, aitbc_node

STRACE = shutil.which("strace") or "/usr/bin/strace"
SYSCALLS = "write,writev,pwrite64,sendto,sendmsg,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,openat"
MAX_STRING = 1 << 20
"""strace -s: larger than any single write the node makes (LevelDB writes at most 64 KiB at once)."""


def strace_command(trace: Path) -> list[str]:
    return [STRACE, "-f", "-tt", "-yy", "-xx", "-s", str(MAX_STRING), "-e", f"trace={SYSCALLS}", "-o", str(trace), "--"]


def strace_unavailable() -> str | None:
    """Why strace cannot trace a child here (e.g. ptrace refused), or None when it can.
    A missing strace binary is not a reason to skip: it is a setup error (.ci/run installs it)."""
    if not os.path.exists(STRACE):
        raise AssertionError(f"strace is not installed at {STRACE}: apt-get install -y strace (.ci/run does)")
    probe = subprocess.run(
        [STRACE, "-f", "-qq", "-e", "trace=write", "-o", os.devnull, "--", "/bin/true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode == 0:
        return None
    return f"strace cannot trace a child process here (ptrace refused?): {probe.stderr.strip()}"


# -- the trace, parsed ------------------------------------------------------------------


@dataclass
class Call:
    """One syscall. entry/exit are line numbers in the trace (equal unless it was interrupted)."""

    pid: int
    time: str
    name: str
    entry: int
    exit: int
    fd: int | None
    fd_path: str | None
    strings: list[bytes]
    truncated: bool
    ret: int | None

    @property
    def ok(self) -> bool:
        return self.ret is not None and self.ret >= 0

    @property
    def data(self) -> bytes:
        """What a write-like call sent: its buffers, concatenated (writev and sendmsg have several)."""
        return b"".join(self.strings)

    def where(self) -> str:
        return f"{self.time} (trace line {self.entry + 1}, pid {self.pid})"


_LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$", re.S)
_FD = re.compile(r"^(\d+)<((?:\\x[0-9a-f]{2})+|[\w-]+:\[[^\]]*\])>")
"""A descriptor and what -yy says of it: a path (hex, with -xx) or a socket, pipe or inode (as is)."""
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)
_UNFINISHED = " <unfinished ...>"


def _hex(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


def _fd_path(annotation: str) -> str:
    return _hex(annotation).decode("utf-8", "replace") if annotation.startswith("\\x") else annotation


def parse_trace(path: Path) -> list[Call]:
    calls: list[Call] = []
    pending: dict[int, tuple[int, str, str]] = {}  # pid -> (entry line, time, text so far)
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines()):
        m = _LINE.match(line)
        if m is None:
            continue
        pid, time, body = int(m.group(1)), m.group(2), m.group(3)
        if body.startswith(("---", "+++")):
            continue  # a signal, or an exit
        entry, entry_time = number, time
        resumed = _RESUMED.match(body)
        if resumed is not None:
            if pid not in pending:
                continue  # resumed from before the trace began
            entry, entry_time, head = pending.pop(pid)
            body = head + resumed.group(2)
        elif body.endswith(_UNFINISHED):
            pending[pid] = (number, time, body[: -len(_UNFINISHED)])
            continue
        call = _CALL.match(body)
        if call is None:
            raise AssertionError(f"trace line {number + 1} is not a syscall strace could finish: {line[:300]}")
        name, args, ret = call.group(1), call.group(2), call.group(3)
        fd = _FD.match(args)
        strings = [_hex(s.group(1)) for s in _STRING.finditer(args)]
        truncated = any(s.group(2) for s in _STRING.finditer(args))
        calls.append(
            Call(
                pid=pid,
                time=entry_time,
                name=name,
                entry=entry,
                exit=number,
                fd=int(fd.group(1)) if fd else None,
                fd_path=_fd_path(fd.group(2)) if fd else None,
                strings=strings,
                truncated=truncated,
                ret=None if ret == "?" else int(ret),
            )
        )
    return calls


WRITES = ("write", "writev", "pwrite64", "sendto", "sendmsg")
SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2")
MKDIRS = ("mkdir", "mkdirat")


class Trace:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = parse_trace(path)
        self.wal = WriteAheadLogs(self.calls)

    # -- files and directories --------------------------------------------------------
    def writes_to(self, predicate: Any) -> list[Call]:
        return [c for c in self.calls if c.name in WRITES and c.ok and predicate(c)]

    def first_write(self, fd_name: str, needle: bytes) -> Call:
        """The first write to a descriptor whose path contains fd_name (e.g. "pipe:", a file) holding needle."""
        for c in self.writes_to(lambda c: c.fd_path is not None and fd_name in c.fd_path):
            if needle in c.data:
                return c
        raise AssertionError(f"the trace {self.path} holds no write of {needle!r} to {fd_name}")

    def renames_to(self, target: Path) -> list[Call]:
        name = os.fsencode(target)
        return [c for c in self.calls if c.name in RENAMES and c.ok and c.strings and c.strings[-1] == name]

    def mkdirs_of(self, target: Path) -> list[Call]:
        name = os.fsencode(target)
        return [c for c in self.calls if c.name in MKDIRS and c.ok and c.strings and c.strings[-1] == name]

    def sync_of(self, target: Path, after: int, before: int) -> Call | None:
        """The first successful fsync/fdatasync of target (a file or directory, by its path) that
        began after line `after` and returned before line `before`."""
        for c in self.calls:
            if c.name in SYNCS and c.ok and c.fd_path == str(target) and c.entry > after and c.exit < before:
                return c
        return None

    def file_synced_before_rename(self, target: Path, part: Path, ack: Call) -> list[str]:
        """The checks of one atomic, durable file replacement acknowledged by ack:
        fsync(part) -> rename(part, target) -> fsync(target's directory) -> ack."""
        problems = []
        renames = [r for r in self.renames_to(target) if r.strings[0] == os.fsencode(part) and r.exit < ack.entry]
        if not renames:
            return [f"no rename of {part} to {target} before the acknowledgement at {ack.where()}"]
        rename = renames[-1]
        if self.sync_of(part, -1, rename.entry) is None:
            problems.append(f"{part} was renamed at {rename.where()} without an fsync of its contents before")
        return problems + self.dir_synced_between(rename, target, ack, "the acknowledgement")

    def dir_synced_between(self, first: Call, target: Path, then: Call, what: str) -> list[str]:
        """fsync(target's directory) after `first` (a rename to or mkdir of target) and before `then`."""
        if self.sync_of(target.parent, first.exit, then.entry) is None:
            return [
                f"{target.name}: {first.name} at {first.where()}, but its directory {target.parent} was not "
                f"fsynced before {what} at {then.where()}"
            ]
        return []

    def dir_created_durably(self, target: Path, ack: Call) -> list[str]:
        """mkdir(target) -> fsync(target's parent) -> ack."""
        made = [m for m in self.mkdirs_of(target) if m.exit < ack.entry]
        if not made:
            return [f"no mkdir of {target} before the acknowledgement at {ack.where()}"]
        if self.sync_of(target.parent, made[-1].exit, ack.entry) is None:
            return [
                f"{target} was created at {made[-1].where()}, but {target.parent} was not fsynced "
                f"before the acknowledgement at {ack.where()}"
            ]
        return []

    # -- HTTP answers the traced process sent ------------------------------------------
    def http_responses(self) -> list[Response]:
        """Every HTTP/1.1 answer sent on a TCP socket; its time is its first write's entry."""
        open_on: dict[str, Response] = {}
        out: list[Response] = []
        for c in self.writes_to(lambda c: c.fd_path is not None and c.fd_path.startswith("TCP")):
            assert c.fd_path is not None
            if c.truncated:
                raise AssertionError(f"strace cut a socket write short at {c.where()}: raise MAX_STRING")
            if c.data.startswith(b"HTTP/1.1 "):
                response = Response(c, bytearray(c.data))
                open_on[c.fd_path] = response
                out.append(response)
            elif c.fd_path in open_on:
                open_on[c.fd_path].raw.extend(c.data)
        return out


@dataclass
class Response:
    first_write: Call
    raw: bytearray

    @property
    def status(self) -> int:
        return int(bytes(self.raw).split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = bytes(self.raw).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head)}

    @property
    def body(self) -> bytes:
        return bytes(self.raw).split(b"\r\n\r\n", 1)[1]


# -- the LevelDB write-ahead logs -------------------------------------------------------

LOG_BLOCK = 32768
LOG_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class LogRecord:
    """One WriteBatch in a write-ahead log: its puts (value None: a delete)."""

    path: str
    end: int
    """Offset just past the record's last byte in its file."""
    entries: list[tuple[bytes, bytes | None]]
    written: Call
    """The write holding the record's last byte."""

    def block_heights(self) -> list[int]:
        return [
            int.from_bytes(k[1:], "big") for k, v in self.entries if v is not None and k[:1] == b"b" and len(k) == 9
        ]


@dataclass
class _LogFile:
    data: bytearray = field(default_factory=bytearray)
    writes: list[tuple[int, Call]] = field(default_factory=list)  # (offset after the write, the write)


class WriteAheadLogs:
    def __init__(self, calls: list[Call]) -> None:
        self.files: dict[str, _LogFile] = defaultdict(_LogFile)
        self.syncs: dict[str, list[Call]] = defaultdict(list)
        for c in calls:
            if c.fd_path is None or not c.fd_path.endswith(".log") or not c.ok:
                continue
            if c.name in SYNCS:
                self.syncs[c.fd_path].append(c)
            elif c.name in ("write", "writev"):
                if c.truncated:
                    raise AssertionError(f"strace cut a log write short at {c.where()}: raise MAX_STRING")
                log = self.files[c.fd_path]
                assert c.ret is not None
                log.data.extend(c.data[: c.ret])
                log.writes.append((len(log.data), c))
            elif c.name == "pwrite64":
                raise AssertionError(f"LevelDB wrote its log with pwrite64 at {c.where()}: the parser assumes appends")
        self.records = [r for path, log in self.files.items() for r in _records(path, log)]

    def durable_since(self, record: LogRecord) -> Call | None:
        """The first sync of the record's file that began after its last byte was written."""
        for s in self.syncs[record.path]:
            if s.entry > record.written.exit:
                return s
        return None

    def blocks(self) -> dict[int, LogRecord]:
        """Each block height written to a log, with the (first) record that wrote it."""
        found: dict[int, LogRecord] = {}
        for r in self.records:
            for h in r.block_heights():
                found.setdefault(h, r)
        return found

    def not_durable_at(self, ack: Call) -> list[str]:
        """Every log record written before ack whose sync had not returned by then."""
        problems = []
        for r in self.records:
            if r.written.exit < ack.entry:
                synced = self.durable_since(r)
                if synced is None or synced.exit > ack.entry:
                    problems.append(
                        f"{r.path}: a record written at {r.written.where()} was not synced before "
                        f"the acknowledgement at {ack.where()}"
                    )
        return problems


def _records(path: str, log: _LogFile) -> list[LogRecord]:
    data = bytes(log.data)
    out: list[LogRecord] = []
    pos = 0
    parts: list[bytes] = []
    while pos + LOG_HEADER <= len(data):
        left = LOG_BLOCK - pos % LOG_BLOCK
        if left < LOG_HEADER:
            pos += left  # the block's trailer: zeros
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        if pos + LOG_HEADER + length > len(data):
            break  # the trace ended inside this fragment
        fragment = data[pos + LOG_HEADER : pos + LOG_HEADER + length]
        pos += LOG_HEADER + length
        if kind in (FULL, FIRST):
            parts = [fragment]
        else:
            parts.append(fragment)
        if kind in (FULL, LAST):
            written = next(c for end, c in log.writes if end >= pos)
            out.append(LogRecord(path, pos, _batch_entries(b"".join(parts)), written))
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _batch_entries(rep: bytes) -> list[tuple[bytes, bytes | None]]:
    """A LevelDB WriteBatch: sequence (8 bytes), count (4), then per entry a tag (1 put, 0
    delete), the key and, for a put, the value, each behind its varint32 length."""
    (count,) = struct.unpack_from("<I", rep, 8)
    pos = 12
    entries: list[tuple[bytes, bytes | None]] = []
    for _ in range(count):
        tag = rep[pos]
        n, pos = _varint(rep, pos + 1)
        key = rep[pos : pos + n]
        pos += n
        value: bytes | None = None
        if tag == 1:
            n, pos = _varint(rep, pos)
            value = rep[pos : pos + n]
            pos += n
        entries.append((key, value))
    return entries


# -- processes under strace -----------------------------------------------------------


class TracedNode(NodeProcess):
    """`aitbc-node start` under strace. Stopping signals the node itself (strace's child), so that
    strace sees it exit and writes the whole trace before it exits too."""

    def __init__(self, data_dir: Path, trace: Path, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self.trace = trace

    def args(self) -> list[str]:
        return [*strace_command(self.trace), *super().args()]

    def node_pid(self) -> int | None:
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        pid = self.node_pid()
        if pid is not None and self.proc.poll() is None:
            os.kill(pid, sig)
        code = self.proc.wait(timeout=60)
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._close_pipe()
        return code

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            pid = self.node_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # a tracee outlives a killed strace: kill it first
        super().kill9()


def run_traced_cli(trace: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `aitbc-node ARGS` under strace; fail if it fails."""
    done = subprocess.run([*strace_command(trace), *aitbc_node(*args)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"aitbc-node {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done
