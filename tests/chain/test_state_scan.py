"""A scan of a working state, from any start, lists what its writes over its base left, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chain import indexes
from chain.state import WorkingState
from node.verify import MemoryState

PREFIXES = (indexes.IDEMPOTENCY_EXPIRY, b"job\x00")
KEYS = st.tuples(st.sampled_from(PREFIXES), st.binary(min_size=0, max_size=3)).map(lambda p: p[0] + p[1])
WRITES = st.lists(st.tuples(KEYS, st.one_of(st.none(), st.binary(min_size=1, max_size=2))), max_size=12)


@given(
    st.dictionaries(KEYS, st.binary(min_size=1, max_size=2), max_size=12),
    st.lists(WRITES, min_size=1, max_size=3),
    st.sampled_from(PREFIXES),
    st.binary(max_size=3),
)
def test_a_scan_from_a_start_lists_the_merged_entries_at_or_after_it(
    base: dict[bytes, bytes], layers: list[list[tuple[bytes, bytes | None]]], prefix: bytes, start: bytes
) -> None:
    model = dict(base)
    state: MemoryState | WorkingState = MemoryState.holding(base)
    for writes in layers:
        state = WorkingState(state)
        for k, v in writes:
            if v is None:
                state.delete(k)
                model.pop(k, None)
            else:
                state.put(k, v)
                model[k] = v
    expected = sorted((k[len(prefix) :], v) for k, v in model.items() if k.startswith(prefix) and k >= prefix + start)
    assert list(state.scan(prefix, start)) == expected
