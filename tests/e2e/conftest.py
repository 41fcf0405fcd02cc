"""End-to-end API fixtures: a real `aitbc-node start` per test module, driven over HTTP.

Every answer that goes through `Caller.request` (and the get/post/delete shortcuts) is checked
against the node's own served /openapi.json:

- the status code must be the one the test expects;
- a 2xx body must validate against the schema the served document gives for that
  operation and status (`$ref`s resolved, OpenAPI 3.0 `nullable` honoured, `date-time`
  checked);
- a 4xx/5xx body must be the Error object with `detail` and `error_code` both strings, and
  (on a path of the document) its status must be one the operation lists.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support import ADMIN, ALL_KEYS, CLIENT_A, CLIENT_B, MINER_1, MINER_2, NodeProcess

SPEC_URI = "urn:aitbc:openapi"


# -- the served OpenAPI document as JSON Schema ------------------------------------------


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema 2020-12: absolute $refs, `nullable` as a null branch."""
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str) and v.startswith("#"):
            out[k] = SPEC_URI + v
        elif k in ("example", "examples", "nullable"):
            continue
        else:
            out[k] = _to_json_schema(v)
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _check_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None and "T" in value


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_check_datetime)


class Spec:
    """Looks up operations and their response schemas in the served document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.converted = _to_json_schema(doc)
        self.registry: Registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self.converted, default_specification=DRAFT202012)
        )
        literal_first = sorted(doc["paths"], key=lambda p: (p.count("{"), p))
        self._templates: list[tuple[str, re.Pattern[str]]] = [
            (t, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$")) for t in literal_first
        ]

    def template_for(self, path: str) -> str | None:
        for template, pattern in self._templates:
            if pattern.match(path):
                return template
        return None

    def _deref(self, obj: dict[str, Any]) -> dict[str, Any]:
        while isinstance(obj, dict) and isinstance(obj.get("$ref"), str):
            target: Any = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            obj = {**target, **{k: v for k, v in obj.items() if k != "$ref"}}
        return obj

    def response_schema(self, method: str, template: str, status: int) -> tuple[bool, Any]:
        """(documented, JSON schema or None) for this operation's answer with this status."""
        op = self.doc["paths"].get(template, {}).get(method.lower())
        if op is None:
            return False, None
        response = op.get("responses", {}).get(str(status))
        if response is None:
            return False, None
        schema = self._deref(response).get("content", {}).get("application/json", {}).get("schema")
        return True, None if schema is None else _to_json_schema(schema)

    def validate(self, instance: Any, schema: Any) -> None:
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry, format_checker=FORMATS)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  at {list(e.absolute_path)}: {e.message}" for e in errors[:10]]
            raise AssertionError("body does not match the served schema:\n" + "\n".join(lines))

    def validate_named(self, instance: Any, name: str) -> None:
        self.validate(instance, {"$ref": f"{SPEC_URI}#/components/schemas/{name}"})

    def check_error(self, body: Any) -> None:
        assert isinstance(body, dict), f"error body is not an object: {body!r}"
        assert isinstance(body.get("detail"), str) and body["detail"], f"error body lacks a string detail: {body!r}"
        assert isinstance(body.get("error_code"), str) and body["error_code"], (
            f"error body lacks a string error_code: {body!r}"
        )
        self.validate_named(body, "Error")


# -- callers -----------------------------------------------------------------------------


class Caller:
    """One identity (an API key, or none) talking to the node; answers are checked."""

    def __init__(self, api: Api, key: str | None) -> None:
        self.api = api
        self.key = key
        self.http = api.node.client(key)

    def request(self, method: str, path: str, expect: int | tuple[int, ...], **kwargs: Any) -> Any:
        resp = self.http.request(method, path, **kwargs)
        return self.api.check(resp, expect)

    def get(self, path: str, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        return self.request("GET", path, expect, **kwargs)

    def post(self, path: str, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        return self.request("POST", path, expect, **kwargs)

    def delete(self, path: str, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        return self.request("DELETE", path, expect, **kwargs)

    def close(self) -> None:
        self.http.close()


class Api:
    """The node of this test module, its callers, and a few scenario helpers."""

    def __init__(self, node: NodeProcess, spec: Spec) -> None:
        self.node = node
        self.spec = spec
        self._callers: list[Caller] = []
        self._ids = itertools.count(1)
        self.anon = self.caller(None)
        self.a = self.caller(CLIENT_A["key"])
        self.b = self.caller(CLIENT_B["key"])
        self.m1 = self.caller(MINER_1["key"])
        self.m2 = self.caller(MINER_2["key"])
        self.admin = self.caller(ADMIN["key"])

    @property
    def data_dir(self) -> Path:
        return self.node.data_dir

    def caller(self, key: str | None) -> Caller:
        c = Caller(self, key)
        self._callers.append(c)
        return c

    def reconnect(self) -> None:
        """Fresh connections for every caller (after a node restart)."""
        for c in self._callers:
            c.http.close()
            c.http = self.node.client(c.key)

    def close(self) -> None:
        for c in self._callers:
            c.close()

    def check(self, resp: httpx.Response, expect: int | tuple[int, ...]) -> Any:
        expected = (expect,) if isinstance(expect, int) else expect
        method, path = resp.request.method, resp.request.url.path
        assert resp.status_code in expected, (
            f"{method} {path}: expected {' or '.join(map(str, expected))}, got {resp.status_code}: {resp.text[:500]}"
        )
        assert resp.headers.get("content-type", "").startswith("application/json"), (
            f"{method} {path}: content-type {resp.headers.get('content-type')!r}"
        )
        body = resp.json()
        template = self.spec.template_for(path)
        if resp.status_code >= 400:
            self.spec.check_error(body)
            if template is not None:
                documented, _ = self.spec.response_schema(method, template, resp.status_code)
                assert documented, (
                    f"{method} {template} answered {resp.status_code}, which the served document does not list"
                )
            return body
        assert template is not None, f"{path} is not a path of the served OpenAPI document"
        documented, schema = self.spec.response_schema(method, template, resp.status_code)
        assert documented, f"{method} {template} answered {resp.status_code}, which the served document does not list"
        if schema is not None:
            self.spec.validate(body, schema)
        return body

    # -- scenario helpers --

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def submit(self, caller: Caller | None = None, prompt: str = "Say hello", **fields: Any) -> dict[str, Any]:
        job: dict[str, Any] = (caller or self.a).post("/v1/jobs", 201, json={"prompt": prompt, **fields})
        assert job["status"] == "pending"
        return job

    def register(
        self,
        caller: Caller | None = None,
        capabilities: list[str] | None = None,
        miner_id: str | None = None,
        **fields: Any,
    ) -> str:
        miner_id = miner_id or self.unique("gpu")
        body = {"miner_id": miner_id, "capabilities": capabilities or ["llama3.2"], **fields}
        miner = (caller or self.m1).post("/v1/miners/register", 201, json=body)
        assert miner["miner_id"] == miner_id
        return miner_id

    def claim(self, job_id: str, miner_id: str, caller: Caller | None = None) -> dict[str, Any]:
        job: dict[str, Any] = (caller or self.m1).post(f"/v1/jobs/{job_id}/claim", 200, json={"miner_id": miner_id})
        assert job["status"] == "running" and job["miner_id"] == miner_id
        return job

    def complete(
        self, job_id: str, miner_id: str, result: str = "one two three", caller: Caller | None = None
    ) -> dict[str, Any]:
        done: dict[str, Any] = (caller or self.m1).post(
            f"/v1/jobs/{job_id}/complete", 200, json={"miner_id": miner_id, "result": result}
        )
        return done

    def run_job(
        self, client: Caller | None = None, miner_id: str | None = None, result: str = "one two three", **fields: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Submit, claim and complete a job; return (completed job, receipt)."""
        job = self.submit(client, **fields)
        miner_id = miner_id or self.register(capabilities=[job["model"]])
        self.claim(job["job_id"], miner_id)
        receipt = self.complete(job["job_id"], miner_id, result)
        done = (client or self.a).get(f"/v1/jobs/{job['job_id']}")
        return done, receipt

    def drain_pending(self) -> None:
        """Cancel every pending job (as admin), so that `available` sees only what a test submits."""
        while True:
            pending = self.admin.get("/v1/jobs", params={"status": "pending", "limit": 100})
            if not pending:
                return
            for job in pending:
                self.admin.post(f"/v1/jobs/{job['job_id']}/cancel", 200)


def start_node(tmp_path_factory: pytest.TempPathFactory, *extra_args: str) -> NodeProcess:
    base = tmp_path_factory.mktemp("node")
    return NodeProcess(base / "data", api_keys=ALL_KEYS, extra_args=extra_args).start()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serving(start_node(tmp_path_factory))


def serving(node: NodeProcess) -> Iterator[Api]:
    """An Api over a started node, checked against its own /openapi.json; stops the node after."""
    try:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            resp = http.get("/openapi.json")
            assert resp.status_code == 200, resp.text
            spec = Spec(resp.json())
        client = Api(node, spec)
        try:
            yield client
        finally:
            client.close()
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()
