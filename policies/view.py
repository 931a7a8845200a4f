"""The per-child view as policies see it: accepted events about one child, and its household.

Pure and immutable. ``known_at`` cuts the view to what had been recorded by a time, and
``effective`` applies corrections and withdrawals, so every policy asks the same question the
same way: "given what the partnership knew at T, is there a gap?".

Household: a rule about siblings (``sibling-not-considered``) needs facts about other children.
The view carries, beside the child's own events, the events of every other child who may share a
parent figure with it (``household``: child id -> that child's accepted events, as the ledger
holds them). They are cut by ``known_at`` and amended by ``effective`` exactly like the child's
own, so such a rule is still a pure function of (view, as_of) and a replay is exact: which
children *are* siblings, and since when, is decided by the rule from the events, not by whoever
assembled the view. Whoever builds views (projector, replay, scenario runner) supplies the
candidates with ``policies.household.candidates``; a superset is harmless.

Indexes: rules ask the same few questions of every view (events of a type; notifications to an
agency; events naming an incident). The view answers them from indexes built once per view, so
no rule rescans the child's whole history for each of its facts (issue 13: evaluation was
quadratic in the history).
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
    household: Mapping[str, tuple[Event, ...]] = field(default_factory=dict)  # other child -> events

    @classmethod
    def build(
        cls,
        child: str,
        events: Iterable[Event],
        registered_agencies: Mapping[str, datetime],
        household: Mapping[str, Iterable[Event]] | None = None,
    ) -> ChildView:
        ordered = tuple(sorted(events, key=lambda e: e.sort_key))
        others = {
            other: tuple(sorted(found, key=lambda e: e.sort_key))
            for other, found in sorted((household or {}).items())
            if other != child
        }
        return cls(child, ordered, MappingProxyType(dict(registered_agencies)), MappingProxyType(others))

    def known_at(self, as_of: datetime) -> ChildView:
        """Only what had been recorded by ``as_of`` (deadlines use recorded time).

        The view itself when nothing was recorded after ``as_of`` (the projector's case: it
        evaluates as of now), so its indexes and folded events are built once, not twice."""
        if self._last_recorded is None or self._last_recorded <= as_of:
            return self
        return ChildView(
            self.child,
            tuple(e for e in self.events if e.recordedtime <= as_of),
            MappingProxyType({a: t for a, t in self.registered_agencies.items() if t <= as_of}),
            MappingProxyType(
                {
                    other: tuple(e for e in found if e.recordedtime <= as_of)
                    for other, found in self.household.items()
                }
            ),
        )

    @cached_property
    def _last_recorded(self) -> datetime | None:
        """The latest recorded time of anything the view holds (None if it holds nothing)."""
        times = [e.recordedtime for e in self.events]
        times += [e.recordedtime for found in self.household.values() for e in found]
        times += self.registered_agencies.values()
        return max(times, default=None)

    def others(self) -> tuple[ChildView, ...]:
        """The household's other children as views of their own (same agencies, no household
        of their own: a rule looks one step, at the children around this one)."""
        return self._others

    @cached_property
    def _others(self) -> tuple[ChildView, ...]:
        return tuple(
            ChildView(other, found, self.registered_agencies)
            for other, found in self.household.items()
            if found
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

    def event(self, event_id: str) -> Event:
        """An event of the view as recorded (not amended), by id."""
        return self._by_id[event_id]

    @cached_property
    def _by_id(self) -> dict[str, Event]:
        return {e.id: e for e in self.events}

    def recorded_of_type(self, *types: str) -> list[Event]:
        """Events of the given types as recorded (not amended: flag acknowledgements and
        dismissals), in recorded order, ties in the view's order (from an index: no scan)."""
        return sorted(
            (e for t in set(types) for e in self._recorded_by_type.get(t, ())),
            key=lambda e: (e.recordedtime, e.sort_key),
        )

    @cached_property
    def _recorded_by_type(self) -> dict[str, tuple[Event, ...]]:
        found: dict[str, list[Event]] = {}
        for event in self.events:
            found.setdefault(event.type, []).append(event)
        return {t: tuple(events) for t, events in found.items()}

    def of_type(self, *types: str) -> list[Event]:
        """Effective events of the given types, in time order (from the index: no scan)."""
        if len(types) == 1:
            return list(self._by_type.get(types[0], ()))
        return sorted((e for t in set(types) for e in self._by_type.get(t, ())), key=lambda e: e.sort_key)

    @cached_property
    def _by_type(self) -> dict[str, tuple[Event, ...]]:
        found: dict[str, list[Event]] = {}
        for event in self.effective():
            found.setdefault(event.type, []).append(event)
        return {t: tuple(events) for t, events in found.items()}

    def notifications_to(self, agency: str) -> tuple[Event, ...]:
        """Effective ``notification.sent`` to ``agency``, in recorded order."""
        return self._notifications_by_recipient.get(agency, ())

    @cached_property
    def _notifications_by_recipient(self) -> dict[str, tuple[Event, ...]]:
        found: dict[str, list[Event]] = {}
        for event in self._by_type.get("notification.sent", ()):
            found.setdefault(str(event.data["to"]), []).append(event)
        return {a: tuple(sorted(n, key=lambda e: (e.recordedtime, e.id))) for a, n in found.items()}

    def notifications_about(self, incident: Event, to: str | None = None) -> tuple[Event, ...]:
        """Effective notifications whose ``about`` names the incident (its id or incident_ref),
        optionally only those to one agency; in recorded order."""
        names = {incident.id, incident.data.get("incident_ref")}
        found = {n.id: n for name in names if name for n in self._notifications_by_about.get(str(name), ())}
        return tuple(
            sorted(
                (n for n in found.values() if to is None or n.data["to"] == to),
                key=lambda e: (e.recordedtime, e.id),
            )
        )

    @cached_property
    def _notifications_by_about(self) -> dict[str, tuple[Event, ...]]:
        found: dict[str, list[Event]] = {}
        for event in self._by_type.get("notification.sent", ()):
            for name in set(event.data.get("about", ())):
                found.setdefault(str(name), []).append(event)
        return {name: tuple(n) for name, n in found.items()}

    def is_registered_agency(self, value: str) -> bool:
        return value in self.registered_agencies
