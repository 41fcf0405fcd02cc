"""chain.lazy.once: computed on the first read, kept on the instance, frozen dataclasses too."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

import pytest

from chain.lazy import once


@dataclass(frozen=True)
class Box:
    value: int

    @once
    def doubled(self) -> list[int]:
        """Twice the value (a new list each time it is computed)."""
        calls.append(self.value)
        return [self.value * 2]


calls: list[int] = []


def test_computed_once_per_instance_and_kept() -> None:
    calls.clear()
    a, b = Box(1), Box(2)
    first = a.doubled
    assert a.doubled is first and first == [2]
    assert b.doubled == [4]
    assert calls == [1, 2]


def test_the_class_attribute_is_the_descriptor_with_its_doc() -> None:
    assert isinstance(Box.doubled, once)
    assert Box.doubled.__doc__ == "Twice the value (a new list each time it is computed)."


def test_the_instance_stays_frozen() -> None:
    box = Box(3)
    assert box.doubled == [6]
    with pytest.raises(FrozenInstanceError):
        box.value = 4  # type: ignore[misc]  # the frozen dataclass refuses it, as tested
