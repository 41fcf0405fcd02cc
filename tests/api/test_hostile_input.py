"""Every request parser, fed hostile input, answers 4xx with the Error body and writes nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from node.composition import create_app
from node.config import Config
from node.runtime import Node
from tests.support import ADMIN, CLIENT_A, MINER_1

# (method, path, key, fields the body may carry)
WRITES = [
    ("POST", "/v1/jobs", CLIENT_A["key"], ["prompt", "model", "params"]),
    ("POST", "/v1/miners/register", MINER_1["key"], ["miner_id", "capabilities", "gpu_info"]),
    ("POST", "/v1/jobs/{job}/claim", MINER_1["key"], ["miner_id"]),
    ("POST", "/v1/jobs/{job}/complete", MINER_1["key"], ["miner_id", "result", "completed_at"]),
    ("POST", "/v1/jobs/{job}/fail", MINER_1["key"], ["miner_id", "error"]),
    ("POST", "/v1/admin/accounts", ADMIN["key"], ["name", "role"]),
    ("POST", "/v1/receipts/verify", CLIENT_A["key"], ["receipt_id", "signature"]),
]
ENDPOINTS = st.sampled_from(WRITES)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _raw(text: str) -> bytes:
    return text.encode()


hostile_bodies = st.one_of(
    # wrong types in the endpoint's own fields are built per endpoint below; these are raw bodies
    st.just(b""),
    st.just(b"   "),
    st.binary(min_size=1, max_size=64),  # mostly invalid UTF-8 / not JSON
    st.integers(min_value=5000, max_value=20000).map(lambda n: _raw('{"prompt": ' + "9" * n + "}")),  # huge integer
    st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(
        lambda c: _raw('{"prompt": "x", "params": {"temperature": ' + c + "}}")
    ),
    st.integers(min_value=2000, max_value=50000).map(
        lambda d: _raw('{"prompt": ' + "[" * d + "]" * d + "}")
    ),  # deep nesting
    st.sampled_from(["prompt", "miner_id", "name"]).map(
        lambda k: _raw(f'{{"{k}": "a", "{k}": "b"}}')
    ),  # duplicate keys
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),  # not an object
    st.just(b'\xff\xfe{"prompt": "x"}'),
    st.just(b'{"prompt": "\xed\xa0\x80"}'),  # a UTF-8-encoded surrogate: invalid UTF-8
)


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, Node, str]]:
    workdir = Path(tempfile.mkdtemp(prefix="aitbc-hostile-"))
    (workdir / "keys.json").write_text(json.dumps([CLIENT_A, MINER_1, ADMIN]))
    node = Node(Config(data_dir=workdir / "data", api_keys=workdir / "keys.json", rate_limit=0))
    node.open()
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        # A job running on a miner, so the job paths reach their body parsers.
        job = client.post("/v1/jobs", json={"prompt": "a job"}, headers={"X-Api-Key": CLIENT_A["key"]}).json()["job_id"]
        client.post(
            "/v1/miners/register",
            json={"miner_id": "m1", "capabilities": ["llama3.2"]},
            headers={"X-Api-Key": MINER_1["key"]},
        )
        client.post(f"/v1/jobs/{job}/claim", json={"miner_id": "m1"}, headers={"X-Api-Key": MINER_1["key"]})
        yield client, node, job
    shutil.rmtree(workdir, ignore_errors=True)


def _send(api: tuple[TestClient, Node, str], endpoint: tuple[str, str, str, list[str]], body: bytes) -> Any:
    client, node, job = api
    method, path, key, _ = endpoint
    assert node.store is not None
    before = node.store.tip()
    r = client.request(
        method, path.format(job=job), content=body, headers={"X-Api-Key": key, "Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500 or (path.endswith("/verify") and r.status_code == 200), (r.status_code, r.text)
    if r.status_code >= 400:
        error = r.json()
        assert set(error) == {"detail", "error_code"} and all(isinstance(v, str) and v for v in error.values())
    assert node.store.tip() == before, "a refused request wrote a block"
    return r


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(endpoint=ENDPOINTS, body=hostile_bodies)
def test_malformed_bodies_get_4xx_and_write_nothing(
    api: tuple[TestClient, Node, str], endpoint: Any, body: bytes
) -> None:
    r = _send(api, endpoint, body)
    if not endpoint[1].endswith("/verify"):
        assert r.status_code in (400, 413)


FIELD_TYPES: dict[str, type] = {"capabilities": list, "params": dict, "gpu_info": dict, "signature": dict}


@SETTINGS
@given(data=st.data())
def test_wrong_types_in_every_field_get_4xx_and_write_nothing(
    api: tuple[TestClient, Node, str], data: st.DataObject
) -> None:
    endpoint = data.draw(ENDPOINTS)
    fields = endpoint[3]
    body = data.draw(st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields)))
    # One field certainly holds a value of the wrong type (never null: null means "absent").
    target = data.draw(st.sampled_from(fields))
    expected = FIELD_TYPES.get(target, str)
    body[target] = data.draw(json_values.filter(lambda v: v is not None and not isinstance(v, expected)))
    r = _send(api, endpoint, json.dumps(body).encode())
    if not endpoint[1].endswith("/verify"):
        assert r.status_code == 400


@pytest.mark.parametrize("endpoint", WRITES, ids=[w[1] for w in WRITES])
def test_an_enormous_body_gets_413_and_writes_nothing(api: tuple[TestClient, Node, str], endpoint: Any) -> None:
    r = _send(api, endpoint, b'{"prompt": "' + b"x" * (3 * 1024 * 1024) + b'"}')
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs/{job}/complete", {"miner_id": "0", "result": []}),
        ("/v1/jobs/{job}/complete", {"miner_id": "nobody", "result": 7}),
        ("/v1/jobs/{job}/fail", {"miner_id": "0", "error": ["x"]}),
        ("/v1/jobs/{job}/fail", {"miner_id": "nobody", "error": ""}),
    ],
)
def test_a_malformed_body_is_a_400_before_any_lookup_of_what_it_names(
    api: tuple[TestClient, Node, str], path: str, body: dict[str, Any]
) -> None:
    r = _send(api, ("POST", path, MINER_1["key"], []), json.dumps(body).encode())
    assert r.status_code == 400 and r.json()["error_code"] == "validation_error"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs?limit=1_0",
        "/v1/jobs?limit=%EF%BC%91",  # a fullwidth digit one
        "/v1/jobs?limit=%205",
        "/v1/jobs?limit=5%20",
        "/v1/jobs?limit=+5",
        "/v1/jobs?offset=99999999999999999999999",
        "/v1/jobs?offset=9223372036854775808",
        "/v1/chain/blocks?from=18446744073709551616",
        "/v1/chain/blocks?from=9223372036854775808",
        "/v1/jobs/available?miner_id=m1&wait=%205",
        "/v1/jobs/available?miner_id=m1&wait=1_0",
        "/v1/jobs/available?miner_id=m1&wait=nan",
        "/v1/jobs/available?miner_id=m1&wait=inf",
    ],
)
def test_query_numbers_are_ascii_digits_in_range_or_a_400(api: tuple[TestClient, Node, str], path: str) -> None:
    client, _, _ = api
    key = MINER_1["key"] if "available" in path else ADMIN["key"]
    r = client.get(path, headers={"X-Api-Key": key})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "validation_error"


def test_the_largest_accepted_query_numbers_are_answered(api: tuple[TestClient, Node, str]) -> None:
    client, _, _ = api
    for path in ("/v1/jobs?offset=9223372036854775807", "/v1/chain/blocks?from=9223372036854775807"):
        r = client.get(path, headers={"X-Api-Key": ADMIN["key"]})
        assert r.status_code == 200, r.text
