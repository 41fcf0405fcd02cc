from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.crypto import NodeKey
from chain.genesis import Genesis
from node.store import Store
from tests.e2e.group import EtcdCluster
from tests.support import make_genesis


@pytest.fixture
def node_key() -> NodeKey:
    return NodeKey(secrets.token_bytes(32))


@pytest.fixture
def genesis(node_key: NodeKey) -> Genesis:
    return make_genesis(node_key.public_hex, max_block_txs=10)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "chain"


@pytest.fixture
def store(store_path: Path, genesis: Genesis) -> Iterator[Store]:
    s = Store(store_path, genesis)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A single-member etcd on a free loopback port, for a module's tests (skip the module
    where etcd is not installed: tests.e2e.group.ETCD is None)."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), n=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()
