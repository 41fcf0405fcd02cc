from __future__ import annotations

import pytest

from chain.genesis import Genesis
from chain.state import EmptyState, WorkingState
from chain.transition import genesis_block
from tests.chain.devchain import make_genesis


@pytest.fixture
def genesis() -> Genesis:
    """AUTHORITY seals and signs receipts; lease 60 s; 2 attempts; admin account 'ops'."""
    return make_genesis()


@pytest.fixture
def state(genesis: Genesis) -> WorkingState:
    """The state after block 0."""
    _, working = genesis_block(genesis, EmptyState())
    return working
