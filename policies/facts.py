"""Facts several rules ask about a child's effective events, defined once as the issue defines them.

"Parent figure": linked with role mother, father, step-parent or parent's-partner ("male": not
mother). "Person of concern": an incident party with role perpetrator, alleged-perpetrator or
counter-allegation. "Aware of the child": source of any event about the child, or the ``to`` of
a notification about the child.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from policies.base import Finding, Fold
from policies.calendar import working_days_deadline
from policies.view import CONCERN_ROLES, MALE_PARENT_ROLES, PARENT_ROLES, Event

# A gap "within N working days" begins the instant after the deadline's last millisecond.
AFTER = timedelta(milliseconds=1)


def due_after_working_days(t: datetime, n: int) -> datetime:
    return working_days_deadline(t, n) + AFTER


def roles(events: Iterable[Event]) -> dict[str, set[str]]:
    """Person -> linked roles (person.linked, and mother/father named at child.registered)."""
    found: dict[str, set[str]] = {}
    for event in events:
        if event.type == "person.linked":
            found.setdefault(event.data["person"], set()).add(event.data["role"])
        elif event.type == "child.registered":
            for role in ("mother", "father"):
                if event.data.get(role):
                    found.setdefault(event.data[role], set()).add(role)
    return found


def parent_figures(events: Iterable[Event]) -> set[str]:
    return {p for p, r in roles(events).items() if r & PARENT_ROLES}


def latest_links(events: Iterable[Event]) -> dict[str, Event]:
    """Person -> their latest ``person.linked`` (recorded order, ties by id): what an agency last
    said about how the person stands to the child, e.g. whether they live with the child."""
    latest: dict[str, Event] = {}
    for event in events:
        if event.type != "person.linked":
            continue
        known = latest.get(event.data["person"])
        if known is None or (event.recordedtime, event.id) > (known.recordedtime, known.id):
            latest[event.data["person"]] = event
    return latest


def co_resident_parent_figures(events: Sequence[Event]) -> set[str]:
    """Parent figures an agency last recorded as living with the child (``lives_with_child``)."""
    return _parent_figures_living_with(events, True)


def non_resident_parent_figures(events: Sequence[Event]) -> set[str]:
    """Parent figures an agency last recorded as *not* living with the child."""
    return _parent_figures_living_with(events, False)


def _parent_figures_living_with(events: Sequence[Event], lives_with_child: bool) -> set[str]:
    links = latest_links(events)
    return {
        p
        for p in parent_figures(events)
        if p in links and links[p].data.get("lives_with_child") is lives_with_child
    }


def age_on(dob: date, day: date) -> int:
    """Whole years from ``dob`` to ``day`` (a birthday counts on the day itself)."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def child_dob(view_events: Sequence[Event]) -> date | None:
    """The child's date of birth from its latest (effective) ``child.registered``."""
    registered = [e for e in view_events if e.type == "child.registered"]
    return date.fromisoformat(registered[-1].data["dob"]) if registered else None


def male_parent_figures(events: Iterable[Event]) -> set[str]:
    return {p for p, r in roles(events).items() if r & MALE_PARENT_ROLES}


def domestic_abuse_incidents(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.type == "incident.reported" and e.data.get("domestic_abuse") is True]


def persons_of_concern(incidents: Iterable[Event]) -> set[str]:
    return {
        party["person"]
        for incident in incidents
        if incident.type == "incident.reported"
        for party in incident.data.get("parties", ())
        if party["role"] in CONCERN_ROLES
    }


def parties(incident: Event) -> set[str]:
    return {party["person"] for party in incident.data.get("parties", ())}


def gp_links(events: Iterable[Event]) -> list[tuple[str, str, Event]]:
    """(person, practice agency id, the gp.registered event): each person's current practice.

    In England a patient is registered with one practice at a time, so a later registration
    replaces the earlier one; a practice the person has left is no longer theirs to tell.
    """
    current: dict[str, Event] = {}
    for event in sorted(events, key=lambda e: (e.recordedtime, e.id)):
        if event.type == "gp.registered":
            current[event.data["person"]] = event
    return sorted(
        ((person, f"gp/{e.data['practice']}", e) for person, e in current.items()),
        key=lambda link: (link[2].recordedtime, link[0]),
    )


def incident_names(incidents: Iterable[Event]) -> frozenset[str]:
    """Every name a notification's ``about`` may use for these incidents (ids and refs), so that
    "is this notification about an incident?" is one set lookup, not a scan of the incidents."""
    return frozenset(
        name for i in incidents for name in (i.id, i.data.get("incident_ref")) if isinstance(name, str)
    )


def recorded_key(event: Event) -> tuple[datetime, str]:
    """Recorded order, ties by id: the order in which "the first answer" is decided."""
    return (event.recordedtime, event.id)


def earliest(events: Iterable[Event]) -> Event | None:
    """The first-recorded of ``events`` (ties by id), None if there are none."""
    return min(events, key=recorded_key, default=None)


class Timeline:
    """Events in recorded order, asked "which was recorded first at or after t?" by bisection.

    Rules judge each anchor (an incident, a referral, a plan) by the answers recorded after it;
    scanning every answer for every anchor made evaluation quadratic in the child's history
    (issue 13). Built once per evaluation, a timeline answers in O(log n)."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = sorted(events, key=recorded_key)
        self._times = [e.recordedtime for e in self.events]

    def append(self, event: Event) -> None:
        """Add an event recorded after (or with) the last one (a rule's fold, extended by live
        traffic in recorded order): the order holds without sorting again."""
        if self.events and recorded_key(event) < recorded_key(self.events[-1]):
            raise ValueError(f"{event.id} was recorded before the timeline's last event")
        self.events.append(event)
        self._times.append(event.recordedtime)

    def first_from(self, since: datetime | None = None, excluding: str | None = None) -> Event | None:
        """The earliest event recorded at or after ``since`` (the earliest of all if None), other
        than the one whose id is ``excluding``."""
        index = 0 if since is None else bisect_left(self._times, since)
        if index < len(self.events) and self.events[index].id == excluding:
            index += 1
        return self.events[index] if index < len(self.events) else None

    def between(self, since: datetime, until: datetime) -> list[Event]:
        """The events recorded from ``since`` to ``until``, both included, in recorded order."""
        return self.events[bisect_left(self._times, since) : bisect_right(self._times, until)]


def timelines(events: Iterable[Event], key: Callable[[Event], Hashable]) -> dict[Hashable, Timeline]:
    """One timeline per key (e.g. per answering agency, per reference): "the first answer by
    this agency about this referral after t" is a dictionary lookup and a bisection."""
    grouped: dict[Hashable, list[Event]] = {}
    for event in events:
        grouped.setdefault(key(event), []).append(event)
    return {k: Timeline(found) for k, found in grouped.items()}


def extend_timelines(
    lines: dict[Hashable, Timeline], events: Iterable[Event], key: Callable[[Event], Hashable]
) -> None:
    """Add events recorded after those of ``lines`` (``timelines``'s result) to their timelines."""
    for event in events:
        line = lines.get(key(event))
        if line is None:
            lines[key(event)] = Timeline((event,))
        else:
            line.append(event)


def first_from(lines: dict[Hashable, Timeline], key: Hashable, since: datetime | None = None) -> Event | None:
    """The first event of ``key``'s timeline recorded at or after ``since`` (None if none)."""
    line = lines.get(key)
    return line.first_from(since) if line is not None else None


@dataclass(frozen=True)
class Late:
    """An anchor not answered by its deadline. ``answer`` is the first answer recorded after the
    deadline, which resolves the gap; None while nothing has answered it."""

    answer: Event | None

    @property
    def resolved_by(self) -> str | None:
        return self.answer.id if self.answer is not None else None

    @property
    def resolved_at(self) -> datetime | None:
        return self.answer.recordedtime if self.answer is not None else None


def late(first_answer: Event | None, due: datetime) -> Late | None:
    """The tail of every "answered within N working days?" rule, decided once: ``first_answer``
    is the earliest-recorded answer (of those that count for the anchor). Recorded before ``due``:
    no gap (None). Otherwise a gap, resolved by that answer if there is one.

    Only the earliest answer matters: if any answer came in time, the earliest did; if none
    did, the earliest is the first late one. So rules pass one event, found by a lookup."""
    if first_answer is not None and first_answer.recordedtime < due:
        return None
    return Late(first_answer)


class Anchors:
    """A folding rule's findings kept by anchor (an incident, a referral), so that resuming
    judges again only the anchors an added event touches (``policies.base.FoldingPolicy``),
    and the names notifications use for each incident (its id and incident_ref)."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[Finding, ...]] = {}  # anchor id -> its findings
        self.by_id: dict[str, Event] = {}  # anchor id -> the anchor
        self.named: dict[str, list[str]] = {}  # a name notifications use -> anchor ids
        self.context: Any = None  # what else the rule keeps to judge an anchor (its indexes)

    def judge(self, anchor: Event, findings: Iterable[Finding]) -> None:
        if anchor.id not in self.by_id:
            self.by_id[anchor.id] = anchor
            for name in {anchor.id, anchor.data.get("incident_ref")}:
                if isinstance(name, str):
                    self.named.setdefault(name, []).append(anchor.id)
        self.found[anchor.id] = tuple(findings)

    def about(self, notifications: Iterable[Event]) -> list[Event]:
        """The anchors these notifications name, each once."""
        return self.called(str(name) for n in notifications for name in n.data.get("about", ()))

    def called(self, names: Iterable[str]) -> list[Event]:
        """The anchors with these names (ids or incident_refs), each once."""
        ids = dict.fromkeys(i for name in names for i in self.named.get(name, ()))
        return [self.by_id[i] for i in ids]

    def fold(self) -> Fold:
        return Fold([f for found in self.found.values() for f in found], self)
