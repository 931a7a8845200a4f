"""The per-child view as policies see it: accepted events about one child, nothing else.

Pure and immutable. ``known_at`` cuts the view to what had been recorded by a time, and
``effective`` applies corrections and withdrawals, so every policy asks the same question the
same way: "given what the partnership knew at T, is there a gap?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any

from ledger.timeutil import parse_time
from ledger.vocabulary import family, is_amendment

PARENT_ROLES = frozenset({"mother", "father", "step-parent", "parent's-partner"})
MALE_PARENT_ROLES = PARENT_ROLES - {"mother"}
CONCERN_ROLES = frozenset({"perpetrator", "alleged-perpetrator", "counter-allegation"})


@dataclass(frozen=True)
class Event:
    """An accepted event, as far as policies are concerned (signature and chain already checked)."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    recordedtime: datetime
    data: Mapping[str, Any]
    corrected_by: tuple[str, ...] = ()  # ids of corrections folded into ``data``

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any]) -> Event:
        return cls(
            id=envelope["id"],
            type=envelope["type"],
            source=envelope["source"],
            subject=envelope["subject"],
            time=parse_time(envelope["time"]),
            recordedtime=parse_time(envelope["recordedtime"]),
            data=MappingProxyType(dict(envelope["data"])),
        )

    @property
    def sort_key(self) -> tuple[datetime, datetime, str]:
        return (self.time, self.recordedtime, self.id)


@dataclass(frozen=True)
class ChildView:
    child: str
    events: tuple[Event, ...]  # every accepted event about the child, sorted by sort_key
    registered_agencies: Mapping[str, datetime] = field(default_factory=dict)

    @classmethod
    def build(
        cls, child: str, events: Iterable[Event], registered_agencies: Mapping[str, datetime]
    ) -> ChildView:
        ordered = tuple(sorted(events, key=lambda e: e.sort_key))
        return cls(child, ordered, MappingProxyType(dict(registered_agencies)))

    def known_at(self, as_of: datetime) -> ChildView:
        """Only what had been recorded by ``as_of`` (deadlines use recorded time)."""
        return ChildView(
            self.child,
            tuple(e for e in self.events if e.recordedtime <= as_of),
            MappingProxyType({a: t for a, t in self.registered_agencies.items() if t <= as_of}),
        )

    def effective(self) -> tuple[Event, ...]:
        return self._effective

    @cached_property
    def _effective(self) -> tuple[Event, ...]:
        """Events with corrections folded in and withdrawn events removed, amendments dropped.

        An amendment counts only if it comes from the original's source and names an original of
        its family; an invalid amendment is ignored (the original stands). Corrections apply in
        recorded order; later fields win.
        """
        by_id = {e.id: e for e in self.events if not is_amendment(e.type)}
        amendments = sorted((e for e in self.events if is_amendment(e.type)), key=lambda e: e.recordedtime)
        withdrawn: set[str] = set()
        for amendment in amendments:
            original = by_id.get(str(amendment.data.get("original")))
            if original is None or original.source != amendment.source:
                continue
            if family(amendment.type) != family(original.type):
                continue
            if amendment.type.endswith(".withdrawn"):
                withdrawn.add(original.id)
                continue
            fields = {k: v for k, v in amendment.data.items() if k not in ("original", "reason")}
            by_id[original.id] = replace(
                original,
                data=MappingProxyType({**original.data, **fields}),
                corrected_by=(*original.corrected_by, amendment.id),
            )
        return tuple(sorted((e for i, e in by_id.items() if i not in withdrawn), key=lambda e: e.sort_key))

    def of_type(self, *types: str) -> list[Event]:
        """Effective events of the given types, in time order."""
        return [e for e in self.effective() if e.type in types]

    def is_registered_agency(self, value: str) -> bool:
        return value in self.registered_agencies
