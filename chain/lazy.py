"""A lazily computed attribute, kept on the instance after its first read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class once(Generic[T]):
    """functools.cached_property without its lock.

    Python 3.11's cached_property takes a re-entrant lock on every first read, which costs
    more than computing a transaction's small attributes. Frozen dataclasses may use it: the
    value goes straight into the instance's __dict__, as cached_property puts it. Two threads
    reading it first at once both compute it, which is harmless for the pure values it serves.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> once[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | once[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value
