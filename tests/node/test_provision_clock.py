"""Blocks a node seals before its server runs (provisioned --api-keys accounts) take their time
from the node's clock, as every later block does: no block may be ahead of the node's now."""

from __future__ import annotations

import json
from pathlib import Path

from node.config import Config
from node.runtime import Node
from tests.support import CLIENT_A


def test_the_provisioning_block_is_timed_by_the_nodes_clock(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(json.dumps([CLIENT_A]))
    fixed = 1_780_272_000_000  # 2026-06-01: after the devnet genesis, before the machine's clock
    node = Node(Config(data_dir=tmp_path / "data", api_keys=tmp_path / "keys.json"), clock=lambda: fixed)
    node.open()
    try:
        tip = node.store.tip()
        assert tip.height == 1 and tip.timestamp == fixed
    finally:
        node.close()
