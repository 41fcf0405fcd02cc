"""node.metrics.HttpCollector: the HTTP metrics read as prometheus_client's own Counter and
Histogram would, fed the same requests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.metrics import HTTP_BUCKETS, NodeMetrics

LABELS = st.tuples(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["/v1/jobs", "/v1/jobs/{job_id}", "<unmatched>"]),
    st.sampled_from([200, 201, 404, 409]),
)
# Durations on and around the bucket bounds, where an off-by-one would show.
SECONDS = st.one_of(st.sampled_from(HTTP_BUCKETS), st.floats(min_value=0, max_value=20, allow_nan=False))


def samples(text: bytes, families: set[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        if family.name in families
        for s in family.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(LABELS, SECONDS), max_size=40))
def test_http_metrics_expose_what_prometheus_client_would(requests: list[tuple[tuple[str, str, int], float]]) -> None:
    metrics = NodeMetrics()
    reference = CollectorRegistry()
    names = ["method", "route", "status"]
    count = Counter("aitbc_http_requests", "x", names, registry=reference)
    latency = Histogram("aitbc_http_request_duration_seconds", "x", names, buckets=HTTP_BUCKETS, registry=reference)
    for (method, route, status), seconds in requests:
        metrics.http_request(method, route, status, seconds)
        count.labels(method, route, str(status)).inc()
        latency.labels(method, route, str(status)).observe(seconds)
    families = {"aitbc_http_requests", "aitbc_http_request_duration_seconds"}
    ours = samples(metrics.exposition(), families)
    theirs = samples(generate_latest(reference), families)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert abs(ours[name] - value) <= 1e-9 * max(1.0, abs(value)), name


def test_one_label_set_counts_buckets_and_sum() -> None:
    metrics = NodeMetrics()
    metrics.http_request("POST", "/v1/jobs", 201, 0.003)
    metrics.http_request("POST", "/v1/jobs", 201, 30.0)
    got = samples(metrics.exposition(), {"aitbc_http_request_duration_seconds"})
    labels = (("method", "POST"), ("route", "/v1/jobs"), ("status", "201"))
    assert got[("aitbc_http_request_duration_seconds_count", labels)] == 2
    assert got[("aitbc_http_request_duration_seconds_bucket", (("le", "0.005"), *labels))] == 1
    assert got[("aitbc_http_request_duration_seconds_bucket", (("le", "+Inf"), *labels))] == 2
    assert got[("aitbc_http_request_duration_seconds_sum", labels)] == 30.003
