"""Facts several rules ask about a child's effective events, defined once as the issue defines them.

"Parent figure": linked with role mother, father, step-parent or parent's-partner ("male": not
mother). "Person of concern": an incident party with role perpetrator, alleged-perpetrator or
counter-allegation. "Aware of the child": source of any event about the child, or the ``to`` of
a notification about the child.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

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


def aware_since(events: Iterable[Event]) -> dict[str, datetime]:
    """Agency -> when it became aware of the child (recorded time of the first such event)."""
    aware: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.recordedtime):
        aware.setdefault(event.source, event.recordedtime)
        if event.type == "notification.sent":
            aware.setdefault(event.data["to"], event.recordedtime)
    return aware


def incident_names(incidents: Iterable[Event]) -> frozenset[str]:
    """Every name a notification's ``about`` may use for these incidents (ids and refs), so that
    "is this notification about an incident?" is one set lookup, not a scan of the incidents."""
    return frozenset(
        name for i in incidents for name in (i.id, i.data.get("incident_ref")) if isinstance(name, str)
    )


def first_after(events: Sequence[Event], since: datetime) -> Event | None:
    """The earliest-recorded event recorded at or after ``since``."""
    later = [e for e in events if e.recordedtime >= since]
    return min(later, key=lambda e: (e.recordedtime, e.id)) if later else None
