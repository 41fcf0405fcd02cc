"""Backups: a consistent LevelDB snapshot as one gzip file, and restoring it into a fresh data dir.

A backup holds the chain (every raw store entry of one snapshot, which is always at a block
boundary) and the effective genesis. It holds no node key and no API key, so it can be
shared to bootstrap followers. The file (gzip) is:

    AITBC-BACKUP 1\\n
    {header JSON: chain_id, genesis_hash, height, tip_hash, tip_time, created_ms, genesis}\\n
    records: key length (4 bytes, big endian), key, value length (4), value
    ffffffff {trailer JSON: entries, blake3 of the record bytes}\\n

The trailer catches a truncated or corrupted file before anything is restored.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import IO, Any

import blake3

from chain.errors import InvalidGenesis
from chain.genesis import parse_genesis
from node.datadir import DataDir, DataDirError, fsync_dir, make_dir, write_private
from node.store import Store, StoreSnapshot, load_raw

MAGIC = b"AITBC-BACKUP 1\n"
END = b"\xff\xff\xff\xff"
CHUNK = 256 * 1024
NODE_URL_FILE = "node_url"
"""Written in the data dir by a running node: where its API listens (for the local CLI)."""


class BackupError(DataDirError):
    """The backup cannot be made or restored; the message is meant for an operator."""


@dataclass(frozen=True)
class BackupInfo:
    chain_id: str
    genesis_hash: str
    height: int
    tip_hash: str
    entries: int


def backup_header(snapshot: StoreSnapshot, genesis_raw: dict[str, Any]) -> dict[str, Any]:
    tip = snapshot.tip()
    return {
        "chain_id": genesis_raw.get("chain_id"),
        "genesis_hash": snapshot.genesis_hash(),
        "height": tip.height,
        "tip_hash": tip.hash,
        "tip_time": tip.timestamp,
        "created_ms": time.time_ns() // 1_000_000,
        "genesis": genesis_raw,
    }


def backup_chunks(snapshot: StoreSnapshot, header: dict[str, Any]) -> Iterator[bytes]:
    """The gzip-compressed backup of snapshot (header from backup_header), in chunks; closes the snapshot."""
    try:
        gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
        digest = blake3.blake3()
        pending: list[bytes] = [gz.compress(MAGIC + json.dumps(header).encode() + b"\n")]
        size = 0
        entries = 0
        pack = struct.pack
        for k, v in snapshot.items():
            record = pack(">I", len(k)) + k + pack(">I", len(v)) + v
            digest.update(record)
            entries += 1
            out = gz.compress(record)
            if out:
                pending.append(out)
                size += len(out)
                if size >= CHUNK:
                    yield b"".join(pending)
                    pending, size = [], 0
        trailer = json.dumps({"entries": entries, "blake3": digest.hexdigest()}).encode()
        pending.append(gz.compress(END + trailer + b"\n"))
        pending.append(gz.flush())
        yield b"".join(pending)
    finally:
        snapshot.close()


def write_backup(store: Store, genesis_raw: dict[str, Any], target: Path) -> BackupInfo:
    """Back up an open store (the node is not running) into target, atomically."""
    with _atomic_file(target) as f:
        snapshot = store.snapshot()
        for chunk in backup_chunks(snapshot, backup_header(snapshot, genesis_raw)):
            f.write(chunk)
    return check_backup(target)


class _atomic_file:
    """Write to FILE.part, fsync, rename over FILE, fsync FILE's directory; remove the part on failure."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.part = target.with_name(target.name + ".part")

    def __enter__(self) -> IO[bytes]:
        fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.f = os.fdopen(fd, "wb")
        return self.f

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self.f.flush()
                os.fsync(self.f.fileno())
        finally:
            self.f.close()
        if exc_type is None:
            os.replace(self.part, self.target)
            fsync_dir(self.target.parent)  # the rename itself must survive a power cut
        else:
            self.part.unlink(missing_ok=True)


def _read_exact(f: BufferedIOBase, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BackupError(f"the backup is truncated (in {what})")
    return data


def read_backup(f: BufferedIOBase) -> tuple[dict[str, Any], Iterator[tuple[bytes, bytes]]]:
    """The header, and an iterator over the entries that raises BackupError at a bad end."""
    try:
        magic = f.read(len(MAGIC))
    except gzip.BadGzipFile:
        raise BackupError("not an aitbc-node backup (not a gzip file)") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"the backup is damaged: {exc}") from None
    if magic != MAGIC:
        raise BackupError("not an aitbc-node backup (wrong magic)")
    try:
        header = json.loads(f.readline())
        assert isinstance(header, dict) and isinstance(header["height"], int) and isinstance(header["genesis"], dict)
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"the backup is damaged: {exc}") from None
    except (ValueError, KeyError, AssertionError):
        raise BackupError("the backup's header is malformed") from None

    def entries() -> Iterator[tuple[bytes, bytes]]:
        digest = blake3.blake3()
        count = 0
        try:
            while True:
                raw_len = _read_exact(f, 4, "a record")
                if raw_len == END:
                    break
                k = _read_exact(f, struct.unpack(">I", raw_len)[0], "a key")
                raw_vlen = _read_exact(f, 4, "a record")
                v = _read_exact(f, struct.unpack(">I", raw_vlen)[0], "a value")
                digest.update(raw_len + k + raw_vlen + v)
                count += 1
                yield k, v
            trailer = json.loads(f.readline())
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise BackupError(f"the backup is damaged: {exc}") from None
        if (
            not isinstance(trailer, dict)
            or trailer.get("entries") != count
            or trailer.get("blake3") != digest.hexdigest()
        ):
            raise BackupError("the backup is damaged: its checksum does not match its contents")
        if f.read(1):
            raise BackupError("the backup is damaged: data after its end")

    return header, entries()


def check_backup(path: Path) -> BackupInfo:
    """Read a backup file through, checking its structure and checksum."""
    try:
        with gzip.open(path, "rb") as f:
            header, entries = read_backup(f)
            count = sum(1 for _ in entries)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    return BackupInfo(
        header.get("chain_id", "?"), header.get("genesis_hash", ""), header["height"], header.get("tip_hash", ""), count
    )


def restore(
    source: Path,
    data_dir: Path,
    node_key_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BackupInfo:
    """Restore source into a data dir that holds no chain, verifying the whole chain first."""
    from node.verify import ChainInvalid, verify_store

    datadir = DataDir(data_dir)
    if datadir.initialised or datadir.chain_path.exists():
        raise DataDirError(f"{datadir.path} already holds a chain; restore into an empty or new data dir")
    key_text = None
    if node_key_file is not None:
        from chain.crypto import NodeKey

        try:
            key_text = NodeKey.from_seed_hex(node_key_file.read_text(encoding="ascii")).seed.hex() + "\n"
        except (ValueError, OSError) as exc:
            raise DataDirError(f"{node_key_file} is not a valid node key (64 hex characters): {exc}") from None
    created = make_dir(datadir.path)
    work = datadir.path / "chain.restoring"
    shutil.rmtree(work, ignore_errors=True)
    try:
        try:
            f = gzip.open(source, "rb")
        except OSError as exc:
            raise BackupError(f"cannot read {source}: {exc.strerror or exc}") from None
        with f:
            header, entries = read_backup(f)
            try:
                genesis = parse_genesis(header["genesis"])
            except InvalidGenesis as exc:
                raise BackupError(f"the backup's genesis is invalid: {exc.detail}") from None
            if genesis.hash != header.get("genesis_hash"):
                raise BackupError("the backup's genesis does not match its chain")
            count = load_raw(work, entries)
        store = Store(work, genesis, create=False)
        try:
            report = verify_store(store, progress)
        except ChainInvalid as exc:
            raise BackupError(f"the restored chain fails verification: {exc.message}") from None
        finally:
            store.close()
        if report.height != header["height"] or report.tip_hash != header.get("tip_hash"):
            raise BackupError("the restored tip differs from the one the backup's header names")
        work.rename(datadir.chain_path)
        # The chain's new name is durable before genesis.json (written last) can mark the dir
        # as initialised: a power cut must never leave an initialised dir without its chain.
        fsync_dir(datadir.path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created:
            shutil.rmtree(datadir.path, ignore_errors=True)
        raise
    if key_text is not None:
        write_private(datadir.node_key_path, key_text)
    # Last: genesis.json marks the data dir as initialised.
    write_private(datadir.genesis_path, json.dumps(genesis.raw, indent=2, sort_keys=True) + "\n", 0o644)
    return BackupInfo(genesis.chain_id, genesis.hash, report.height, report.tip_hash, count)


# -- where a running node listens, for the CLI on the same machine ------------------------


def write_node_url(datadir: DataDir, url: str) -> None:
    """Where the running node serves, and its PID (second line), for commands run beside it."""
    write_private(datadir.path / NODE_URL_FILE, f"{url}\n{os.getpid()}\n", 0o600)


def remove_node_url(datadir: DataDir) -> None:
    (datadir.path / NODE_URL_FILE).unlink(missing_ok=True)


def read_node_url(datadir: DataDir) -> str | None:
    return _node_url_lines(datadir)[0]


def _node_url_lines(datadir: DataDir) -> tuple[str | None, int | None]:
    try:
        lines = (datadir.path / NODE_URL_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return None, None
    url = lines[0] if lines else None
    pid = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None
    return url, pid


def holder_of(datadir: DataDir) -> str:
    """Who holds the data dir's lock and what to do about it, for the error that says it is in use."""
    url, pid = _node_url_lines(datadir)
    if url is None or pid is None:
        return (
            "another process holds it (an `aitbc-node start`, or a backup, verify or reindex that is running); "
            "wait for it to finish, or stop it"
        )
    return (
        f"`aitbc-node start` (PID {pid}) serves it at {url}; stop it with `kill {pid}` (it shuts down cleanly), "
        f"or run this command against the running node with --node {url}"
    )


def local_url(host: str, port: int) -> str:
    """A URL this machine can reach the API on, for a node bound to host:port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def take_backup(data_dir: Path, target: Path, node_url: str | None, admin_key: str | None) -> BackupInfo:
    """Back up a stopped data dir directly, or ask the running node (its URL from the data dir)."""
    from node.store import StoreLocked

    datadir = DataDir(data_dir)
    if node_url is None:
        genesis = datadir.genesis()
        try:
            store = Store(datadir.chain_path, genesis, create=False)
        except StoreLocked:
            node_url = read_node_url(datadir)
            if node_url is None:
                raise BackupError(
                    f"a node is running on {datadir.path} but did not say where it listens; pass --node URL"
                ) from None
        else:
            try:
                return write_backup(store, genesis.raw, target)
            finally:
                store.close()
    if admin_key is None:
        try:
            admin_key = datadir.admin_key_path.read_text(encoding="utf-8").strip()
        except OSError:
            raise BackupError(
                f"backing up a running node needs an admin key: pass --admin-key (no readable {datadir.admin_key_path})"
            ) from None
    return download_backup(node_url, admin_key, target)


def download_backup(node_url: str, admin_key: str, target: Path) -> BackupInfo:
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(node_url.rstrip("/") + "/v1/admin/backup", headers={"X-Api-Key": admin_key})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        finally:
            exc.close()
        raise BackupError(f"the node refused the backup: {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BackupError(f"cannot reach {node_url}: {getattr(exc, 'reason', exc)}") from None
    atomic = _atomic_file(target)
    with response, atomic as f:
        try:
            shutil.copyfileobj(response, f, CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise BackupError(f"the backup download from {node_url} broke off: {exc}") from None
        f.flush()
        return check_backup(atomic.part)
