"""A thin etcd v3 client over etcd's JSON gateway (POST /v3/... on the client port), with aiohttp,
whose requests are cheap in CPU: the sequencer makes one for every block.

No maintained Python client speaks etcd's v3 API, and the node needs little of it: leases
(grant, keep-alive, revoke), single keys and ranges (put, range, delete), transactions with
compares, and compaction. The gateway speaks JSON with base64 keys and values and int64s as
strings; a field at its zero value is left out of answers.

Several endpoints may be given: a request goes to the one that answered last, and on a
connection failure or timeout to the next. When none answers, EtcdUnavailable (a
node.producer.NodeUnavailable: writes get 503 with Retry-After) is raised. A call may be given
a deadline (`within` seconds, across all its endpoints): one that is no use once it is late (a
lease's keep-alive, a fenced append) then gives up in time even when every endpoint is a black
hole, rather than after the timeout of each in turn. An error answer from
etcd itself (a request too large, a compacted revision) is EtcdError.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp

from node.producer import NodeUnavailable

REQUEST_TIMEOUT_S = 2.0
"""Per request and endpoint; short, so that a failover to the next endpoint is quick."""


class EtcdUnavailable(NodeUnavailable):
    """No etcd endpoint answered: the group cannot commit, so writes are refused (503)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"etcd is unreachable: {detail}", error_code="unavailable")


class EtcdError(Exception):
    """etcd answered with an error (a request too large, a compacted revision, a bad request)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"etcd answered {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: `target` of `key` compared (`result`) with `value`."""

    key: bytes
    target: Literal["CREATE", "MOD", "VALUE", "LEASE", "VERSION"]
    value: int | bytes
    result: Literal["EQUAL", "NOT_EQUAL", "LESS", "GREATER"] = "EQUAL"

    def to_json(self) -> dict[str, str]:
        field = {"CREATE": "create_revision", "MOD": "mod_revision", "VALUE": "value", "LEASE": "lease"}.get(
            self.target, "version"
        )
        raw = _b64(self.value) if isinstance(self.value, bytes) else str(self.value)
        return {"key": _b64(self.key), "target": self.target, "result": self.result, field: raw}


@dataclass(frozen=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0

    def to_json(self) -> dict[str, dict[str, str]]:
        put = {"key": _b64(self.key), "value": _b64(self.value)}
        if self.lease:
            put["lease"] = str(self.lease)
        return {"request_put": put}


@dataclass(frozen=True)
class Delete:
    """Deletes key, or the range [key, range_end) when range_end is not empty."""

    key: bytes
    range_end: bytes = b""

    def to_json(self) -> dict[str, dict[str, str]]:
        req = {"key": _b64(self.key)}
        if self.range_end:
            req["range_end"] = _b64(self.range_end)
        return {"request_delete_range": req}


@dataclass(frozen=True)
class Get:
    key: bytes

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"request_range": {"key": _b64(self.key)}}


Operation = Put | Delete | Get


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    """The store's revision after the transaction."""
    ranges: list[list[KeyValue]]
    """What each Get of the branch taken found, in order."""


class EtcdClient:
    def __init__(self, endpoints: Sequence[str], *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint URL")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._current = 0
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        """Opened on the first call, on the event loop that makes it."""

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _post(self, url: str, body: Mapping[str, object], timeout: float) -> tuple[int, bytes]:
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        data = json.dumps(body, separators=(",", ":")).encode()
        async with self._http.post(
            url,
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 1.0)),
        ) as resp:
            return resp.status, await resp.read()

    async def _call(self, path: str, body: Mapping[str, object], within: float | None = None) -> dict[str, object]:
        """POST body to /v3/path on the endpoints in turn, from the one that answered last;
        within: seconds for the whole call (None: the timeout of each endpoint in turn)."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        errors = []
        for i in range(len(self.endpoints)):
            at = (self._current + i) % len(self.endpoints)
            timeout = self.timeout if deadline is None else min(self.timeout, deadline - loop.time())
            if timeout <= 0:
                errors.append(f"no answer within {within:.2f} s")
                break
            try:
                status, raw = await self._post(self.endpoints[at] + "/v3/" + path, body, timeout)
            except TimeoutError:
                errors.append(f"{self.endpoints[at]}: no answer within {timeout:.2f} s")
                continue
            except aiohttp.ClientError as exc:
                errors.append(f"{self.endpoints[at]}: {type(exc).__name__}")
                continue
            if status >= 500 and status != 503:
                errors.append(f"{self.endpoints[at]}: {status}")
                continue
            try:
                answer = json.loads(raw)
            except ValueError:
                errors.append(f"{self.endpoints[at]}: an answer that is not JSON")
                continue
            if status == 503 or (isinstance(answer, dict) and answer.get("code") == 14):
                message = answer.get("message", "unavailable") if isinstance(answer, dict) else "unavailable"
                errors.append(f"{self.endpoints[at]}: {message}")
                continue  # this member has no quorum or no leader: another may
            if status != 200 or not isinstance(answer, dict) or "error" in answer:
                text = raw.decode("utf-8", "replace")
                message = answer.get("message", text) if isinstance(answer, dict) else text
                raise EtcdError(status, str(message))
            self._current = at
            return answer
        raise EtcdUnavailable("; ".join(errors))

    # -- leases ------------------------------------------------------------------------
    async def grant(self, ttl: int) -> int:
        answer = await self._call("lease/grant", {"TTL": str(ttl)})
        return int(str(answer["ID"]))

    async def keepalive(self, lease: int, *, within: float | None = None) -> int:
        """Refresh the lease; its remaining TTL in seconds (0: the lease has expired)."""
        answer = await self._call("lease/keepalive", {"ID": str(lease)}, within)
        result = answer.get("result")
        return int(str(result.get("TTL", 0))) if isinstance(result, dict) else 0

    async def revoke(self, lease: int, *, within: float | None = None) -> None:
        try:
            await self._call("lease/revoke", {"ID": str(lease)}, within)
        except EtcdError:
            pass  # already expired

    # -- keys --------------------------------------------------------------------------
    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, object] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self._call("kv/put", body)
        return _revision(answer)

    async def get(self, key: bytes) -> KeyValue | None:
        found = await self.range(key)
        return found[0] if found else None

    async def range(self, key: bytes, range_end: bytes = b"", *, limit: int = 0) -> list[KeyValue]:
        """The key, or the keys in [key, range_end) in key order (at most limit, 0: all)."""
        body: dict[str, object] = {"key": _b64(key)}
        if range_end:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = str(limit)
        answer = await self._call("kv/range", body)
        return _kvs(answer.get("kvs"))

    async def delete(self, key: bytes, range_end: bytes = b"") -> None:
        await self._call("kv/deleterange", Delete(key, range_end).to_json()["request_delete_range"])

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Operation],
        failure: Sequence[Operation] = (),
        *,
        within: float | None = None,
    ) -> TxnResult:
        """All of `success` if every compare holds, else all of `failure`, atomically."""
        body = {
            "compare": [c.to_json() for c in compare],
            "success": [op.to_json() for op in success],
            "failure": [op.to_json() for op in failure],
        }
        answer = await self._call("kv/txn", body, within)
        ranges = []
        responses = answer.get("responses")
        for response in responses if isinstance(responses, list) else []:
            found = response.get("response_range") if isinstance(response, dict) else None
            if isinstance(found, dict):
                ranges.append(_kvs(found.get("kvs")))
        return TxnResult(bool(answer.get("succeeded", False)), _revision(answer), ranges)

    async def compact(self, revision: int) -> None:
        """Drop the history before revision (keys' current values stay)."""
        try:
            await self._call("kv/compaction", {"revision": str(revision)})
        except EtcdError:
            pass  # already compacted that far

    async def healthy(self) -> bool:
        """Whether some endpoint answers a read that needs a quorum."""
        try:
            await self._call("kv/range", {"key": _b64(b"\0health")})
        except (EtcdUnavailable, EtcdError):
            return False
        return True


def prefix_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with prefix."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _revision(answer: dict[str, object]) -> int:
    header = answer.get("header")
    return int(str(header.get("revision", 0))) if isinstance(header, dict) else 0


def _kvs(raw: object) -> list[KeyValue]:
    if not isinstance(raw, list):
        return []
    return [
        KeyValue(
            key=base64.b64decode(kv.get("key", "")),
            value=base64.b64decode(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )
        for kv in raw
        if isinstance(kv, dict)
    ]
