"""Prometheus metrics: one CollectorRegistry per node, so tests and several nodes never collide.

Counters and histograms are fed on the hot path (one block commit, one HTTP request: a few
dict lookups each). Everything that is state (height, tip age, mempool, jobs by status,
active miners, store size, websocket subscribers) is read at scrape time instead, by
node.ledger.gauges, which the composition root registers in the same registry.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chain.blocks import Block

log = logging.getLogger("aitbc.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FILL_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.9, 1.0)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_SIZE_CACHE_S = 10.0


class NodeMetrics:
    """The node's metric objects. Producers, sync and the HTTP middleware feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.blocks_sealed = Counter("aitbc_blocks_sealed", "Blocks sealed by this node (authority).", registry=r)
        self.transactions_sealed = Counter(
            "aitbc_transactions_sealed", "Transactions sealed into blocks, by transaction type.", ["type"], registry=r
        )
        self.transactions_rejected = Counter(
            "aitbc_transactions_rejected",
            "Transactions refused while sealing, by transaction type and error_code.",
            ["type", "error_code"],
            registry=r,
        )
        self.block_fill = Histogram(
            "aitbc_block_fill_ratio",
            "Transactions per sealed block as a fraction of params.max_block_txs.",
            buckets=FILL_BUCKETS,
            registry=r,
        )
        self.group_commit = Histogram(
            "aitbc_group_commit_duration_seconds",
            "Time to validate, seal and durably write one block (group commit).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.block_write_failures = Counter(
            "aitbc_block_write_failures",
            "Blocks that could not be stored (their transactions were refused).",
            registry=r,
        )
        # Fed by an authority group member (node.group).
        self.sequencer_changes = Counter(
            "aitbc_sequencer_changes", "Times this node became or stopped being its group's sequencer.", registry=r
        )
        self.group_term = Gauge(
            "aitbc_group_term",
            "The election term this node last saw: the etcd revision at which the sequencer was elected.",
            registry=r,
        )
        self.etcd_commit = Histogram(
            "aitbc_etcd_commit_duration_seconds",
            "Time to append one block to etcd (the sequencer's fenced transaction).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.etcd_resent = Counter(
            "aitbc_etcd_appends_resent",
            "Block appends sent to etcd again because they reached it before the block below them "
            "(two blocks on their way at once).",
            registry=r,
        )
        self.http = HttpCollector()
        r.register(self.http)
        # Fed by the replication engine on followers.
        self.sync_lag_blocks = Gauge(
            "aitbc_sync_lag_blocks", "How many blocks this follower is behind its upstream.", registry=r
        )
        self.sync_lag_seconds = Gauge(
            "aitbc_sync_lag_seconds",
            "Age of this follower's tip relative to its upstream's tip, in seconds.",
            registry=r,
        )
        self.sync_rejected_blocks = Counter(
            "aitbc_sync_rejected_blocks",
            "Blocks from upstream that failed verification, by reason (error_code).",
            ["reason"],
            registry=r,
        )
        self.equivocations = Counter(
            "aitbc_equivocations",
            "Conflicting blocks an upstream served: another block at a height this follower holds, "
            "sealed by a genesis authority (each counted once; the follower refuses them).",
            registry=r,
        )

    def block_committed(self, block: Block, seconds: float, max_block_txs: int) -> None:
        self.blocks_sealed.inc()
        self.group_commit.observe(seconds)
        self.block_fill.observe(len(block.transactions) / max_block_txs if max_block_txs else 0.0)
        counts: dict[str, int] = {}
        for tx in block.transactions:
            counts[tx.type] = counts.get(tx.type, 0) + 1
        for tx_type, n in counts.items():
            self.transactions_sealed.labels(tx_type).inc(n)

    def transaction_rejected(self, tx_type: str, error_code: str) -> None:
        self.transactions_rejected.labels(tx_type, error_code).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http.observe(method, route, status, seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def directory_size(path: str) -> int:
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # compaction removed it meanwhile
    return total


class HttpCollector(Collector):
    """aitbc_http_requests_total and aitbc_http_request_duration_seconds, by method, route
    template and status.

    Every answer feeds them, so they are kept as plain counts (one list per label set, changed
    only on the event loop), not as prometheus_client metrics: a Counter and a Histogram take
    three locks per request (~2% of a write's CPU: `python -m bench load --profile DIR`). A
    scrape (another thread) copies each list whole, which the GIL makes atomic, and derives
    both counts from the buckets it copied, so a label set's request count, histogram count
    and buckets always agree (its sum may lag by the one request being recorded)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], list[float]] = {}
        """(method, route, status) -> [sum of seconds, requests per HTTP_BUCKETS bucket..., above the last]."""

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = [0] * (len(HTTP_BUCKETS) + 2)
        series[1 + bisect.bisect_left(HTTP_BUCKETS, seconds)] += 1
        series[0] += seconds

    def describe(self) -> list[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families([(labels, list(series)) for labels, series in list(self._series.items())]))

    @staticmethod
    def _families(snapshot: list[tuple[tuple[str, str, int], list[float]]]) -> tuple[Metric, Metric]:
        names = ["method", "route", "status"]
        requests = CounterMetricFamily(
            "aitbc_http_requests", "HTTP requests answered, by method, route template and status.", labels=names
        )
        latency = HistogramMetricFamily(
            "aitbc_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            labels=names,
        )
        bounds = [
            floatToGoString(b)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
            for b in HTTP_BUCKETS
        ] + ["+Inf"]
        for (method, route, status), series in snapshot:
            labels = [method, route, str(status)]
            cumulative = list(itertools.accumulate(series[1:]))
            requests.add_metric(labels, cumulative[-1])
            latency.add_metric(labels, list(zip(bounds, cumulative, strict=True)), series[0])
        return requests, latency


def parse_listen(value: str) -> tuple[str, int] | str:
    """`--metrics` value: 'api', 'off', or HOST:PORT. Raises ValueError with a reason."""
    v = value.strip()
    if v.lower() in ("api", "off"):
        return v.lower()
    host, sep, port_text = v.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ValueError(f"expected 'api', 'off' or HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    return host.strip("[]"), port


class MetricsListener:
    """/metrics on its own address (`--metrics HOST:PORT`), served from a small thread."""

    def __init__(self, metrics: NodeMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(self.port, self.host, registry=self.metrics.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
