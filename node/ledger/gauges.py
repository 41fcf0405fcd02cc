"""The node's state as Prometheus gauges, read at scrape time: every read is indexed or O(1),
none scans the chain. Registered in the node's registry (node.metrics) by the composition root."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chain.jobs import STATUSES, counter_key
from node.ledger.reads import active_miners
from node.metrics import STORE_SIZE_CACHE_S, directory_size
from node.runtime import Node

log = logging.getLogger("aitbc.metrics")


class NodeStateCollector(Collector):
    """State read at scrape time: all reads are indexed or O(1), none scans the chain."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._size_lock = threading.Lock()
        self._size: tuple[float, int] | None = None

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families depend on the node's state

    def _store_size(self, path: str) -> int:
        with self._size_lock:
            now = time.monotonic()
            if self._size is None or now - self._size[0] > STORE_SIZE_CACHE_S:
                self._size = (now, directory_size(path))
            return self._size[1]

    def collect(self) -> Iterator[Metric]:
        node = self.node
        store = node.store
        families: list[Metric] = []
        info = GaugeMetricFamily(
            "aitbc_node_info", "This node: version, chain and role (value 1).", labels=["version", "chain_id", "role"]
        )
        feed = GaugeMetricFamily(
            "aitbc_websocket_subscribers", "Listeners on the live block feed (websockets).", value=node.feed.subscribers
        )
        mempool = GaugeMetricFamily(
            "aitbc_mempool_size", "Transactions waiting to be sealed.", value=node.mempool_size()
        )
        families += [feed, mempool]
        if store.closed:
            yield from families
            return
        try:
            tip = store.tip()
            now_ms = node.clock()
            info.add_metric([node.version, store.genesis.chain_id, node.role.name], 1)
            families.append(info)
            families.append(GaugeMetricFamily("aitbc_chain_height", "Height of this node's tip.", value=tip.height))
            families.append(
                GaugeMetricFamily(
                    "aitbc_chain_tip_age_seconds",
                    "Seconds since the tip block's timestamp.",
                    value=max(0.0, (now_ms - tip.timestamp) / 1000),
                )
            )
            families.append(
                GaugeMetricFamily("aitbc_chain_transactions", "Transactions in the chain.", value=store.tx_count())
            )
            jobs = GaugeMetricFamily("aitbc_jobs", "Jobs by status (from the chain's counters).", labels=["status"])
            for status in STATUSES:
                jobs.add_metric([status], store.get_int(counter_key("status", status)))
            families.append(jobs)
            families.append(
                GaugeMetricFamily(
                    "aitbc_receipts", "Receipts issued (completed jobs).", value=store.get_int(counter_key("receipts"))
                )
            )
            families.append(
                GaugeMetricFamily(
                    "aitbc_active_miners",
                    "Miners seen within params.active_miner_window_s.",
                    value=active_miners(store, store.genesis.params.active_miner_window_s, now_ms),
                )
            )
            families.append(
                GaugeMetricFamily(
                    "aitbc_store_size_bytes",
                    "Size of the LevelDB store on disk.",
                    value=self._store_size(str(store.path)),
                )
            )
        except Exception:  # the store closed under us (shutdown): serve what we have
            log.debug("state metrics unavailable", exc_info=True)
        yield from families
