"""A bounded memory: least recently used entries dropped first, by count and by weight."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class Bounded(Generic[V]):
    """A map that keeps at most ``entries`` entries and ``weight`` in all (each entry weighs
    ``weigh(value)``), dropping the least recently used first: the one way a projecting process
    bounds what it remembers of children (``policies.engine.Evaluator``'s findings and views,
    ``views.projection.ChildHistories``' events read and rows written), so that none of it grows
    with the ledger. ``get`` counts as a use; ``put`` replaces. Not thread-safe: a caller shared
    between threads holds its own lock around it."""

    def __init__(self, entries: int, weight: int, weigh: Callable[[V], int]) -> None:
        self.entries, self.weight, self._weigh = entries, weight, weigh
        self._values: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self.held = 0  # the weights of the values held

    def __iter__(self) -> Iterator[str]:
        """The keys, least recently used first."""
        return iter(self._values)

    def get(self, key: str) -> V | None:
        found = self._values.get(key)
        if found is None:
            return None
        self._values.move_to_end(key)
        return found[0]

    def pop(self, key: str) -> V | None:
        found = self._values.pop(key, None)
        if found is None:
            return None
        self.held -= found[1]
        return found[0]

    def put(self, key: str, value: V) -> None:
        self.pop(key)
        weight = self._weigh(value)
        self._values[key] = (value, weight)
        self.held += weight
        while self._values and (len(self._values) > self.entries or self.held > self.weight):
            self.held -= self._values.popitem(last=False)[1][1]
