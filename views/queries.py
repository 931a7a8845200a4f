"""Read side: what `child show`, `child list`, `flags list` and the scenario runner print.

Two kinds of question: "what is the view now" reads the view tables the projector keeps; "which
flags were open as of T" evaluates the policies over the ledger as of T, so the answer for a past
date is exactly what the partnership knew then, whatever happened since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, String, bindparam, or_, select
from sqlalchemy.orm import Session

from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, EquivocationRow, SequenceHoleRow
from ledger.timeutil import format_time
from policies.base import Policy
from policies.engine import Flag, evaluate
from policies.integrity import Equivocation, SequenceHole, integrity_flags
from policies.registry import ALL_POLICIES
from policies.view import ChildView, Event
from views.models import AgencyRow, ChildRow, FlagRow, PersonLinkRow, PersonRow

CHILD_EXCLUDED_TYPES = ("agency.key.registered", "agency.key.revoked", "ledger.tree-head", "access.recorded")


def list_children(session: Session) -> list[dict[str, Any]]:
    open_counts: dict[str, int] = {}
    for child in session.scalars(select(FlagRow.child).where(FlagRow.status == "open")):
        if child is not None:
            open_counts[child] = open_counts.get(child, 0) + 1
    return [
        {
            "child": row.child,
            "dob": row.dob,
            "events": row.event_count,
            "last_recorded": format_time(row.last_recorded),
            "open_flags": open_counts.get(row.child, 0),
        }
        for row in session.scalars(select(ChildRow).order_by(ChildRow.child))
    ]


# The child view's statements, built once. The Child page and `child show` run them on every
# read, and an ORM ``select`` built, coerced and cache-keyed per call, run through the ORM's
# result machinery (and ``session.get`` loading an ORM object for the child row), cost 3.6-4.9 ms
# of CPU of a ~5 ms read at 100,000 children: several times the database's own work (under 1 ms,
# EXPLAIN ANALYZE). Core statements over the tables' columns, run on the session's connection
# with the child as a bound parameter, do the same reads for 1.7-2.2 ms
# (docs/notes/child-view-read.md).
_CHILD: BindParameter[str] = bindparam("child", type_=String())
_CHILDREN, _PEOPLE = ChildRow.__table__.c, PersonRow.__table__.c
_AGENCIES, _FLAGS, _EVENTS = AgencyRow.__table__.c, FlagRow.__table__.c, AcceptedEvent.__table__.c
_VIEW_CHILD = select(_CHILDREN.dob, _CHILDREN.gp_practices, _CHILDREN.schools, _CHILDREN.evaluated_at).where(
    _CHILDREN.child == _CHILD
)
_VIEW_PEOPLE = (
    select(
        _PEOPLE.person, _PEOPLE.roles, _PEOPLE.lives_with_child, _PEOPLE.parental_responsibility,
        _PEOPLE.care_leaver, _PEOPLE.substance_misuse, _PEOPLE.mental_health, _PEOPLE.age,
        _PEOPLE.gp_practices,
    )
    .where(_PEOPLE.child == _CHILD)
    .order_by(_PEOPLE.person)
)  # fmt: skip
_VIEW_AGENCIES = (
    select(_AGENCIES.agency, _AGENCIES.aware_since, _AGENCIES.via)
    .where(_AGENCIES.child == _CHILD)
    .order_by(_AGENCIES.aware_since)
)
_VIEW_CHRONOLOGY = (
    select(
        _EVENTS.time, _EVENTS.recordedtime, _EVENTS.source, _EVENTS.type, _EVENTS.event_id, _EVENTS.envelope
    )
    .where(_EVENTS.subject == _CHILD, _EVENTS.type.not_in(CHILD_EXCLUDED_TYPES))
    .order_by(_EVENTS.time, _EVENTS.recordedtime, _EVENTS.event_id)
)
_VIEW_FLAGS = (
    select(_FLAGS.payload)
    .where(_FLAGS.child == _CHILD, _FLAGS.status == "open")
    .order_by(_FLAGS.due, _FLAGS.rule)
)


def child_view(session: Session, child: str) -> dict[str, Any] | None:
    """The per-child view: people and roles, GP practices and school, agencies involved, the
    chronology across agencies and the open flags with their evidence.

    Asked on every Child page and `child show`, so it reads only the columns it shows, as rows
    (no ORM objects: no identity map, no change tracking), with one prepared Core statement per
    table, each answered by an index on the child (docs/notes/child-view-read.md).
    """
    connection = session.connection()
    on = {"child": child}
    row = connection.execute(_VIEW_CHILD, on).first()
    if row is None:
        return None
    dob, gp_practices, schools, evaluated_at = row
    people = [
        {
            "person": person,
            "roles": json.loads(roles),
            "lives_with_child": lives_with_child,
            "parental_responsibility": parental_responsibility,
            "care_leaver": care_leaver,
            "substance_misuse": substance_misuse,
            "mental_health": mental_health,
            "age": age,
            "gp_practices": json.loads(person_practices),
        }
        for (
            person, roles, lives_with_child, parental_responsibility, care_leaver, substance_misuse,
            mental_health, age, person_practices,
        ) in connection.execute(_VIEW_PEOPLE, on).all()
    ]  # fmt: skip
    agencies = [
        {"agency": agency, "aware_since": format_time(since), "via": via}
        for agency, since, via in connection.execute(_VIEW_AGENCIES, on).all()
    ]
    chronology = [
        {
            "time": format_time(time),
            "recordedtime": format_time(recorded),
            "source": source,
            "type": event_type,
            "id": event_id,
            "data": json.loads(envelope)["data"],
        }
        for time, recorded, source, event_type, event_id, envelope in connection.execute(
            _VIEW_CHRONOLOGY, on
        ).all()
    ]
    flags = [json.loads(payload) for payload in connection.execute(_VIEW_FLAGS, on).scalars().all()]
    return {
        "child": child,
        "dob": dob,
        "gp_practices": json.loads(gp_practices),
        "schools": json.loads(schools),
        "people": people,
        "agencies": agencies,
        "chronology": chronology,
        "open_flags": flags,
        "evaluated_at": format_time(evaluated_at) if evaluated_at else None,
    }


def child_ids(session: Session) -> list[str]:
    return list(session.scalars(select(ChildRow.child).order_by(ChildRow.child)))


def due_children(session: Session, now: datetime) -> list[str]:
    """Children with a deadline passed by ``now``: absence flags are raised by nobody acting,
    so a sweep evaluates these again (``view_children.next_due`` is indexed)."""
    return list(session.scalars(select(ChildRow.child).where(ChildRow.next_due <= now)))


def child_events(ledger: Ledger, session: Session, child: str) -> list[Event]:
    """The child's accepted events as the rules see them (partnership bookkeeping left out)."""
    return [
        Event.from_envelope(e)
        for e in ledger.events_about(session, child)
        if e["type"] not in CHILD_EXCLUDED_TYPES
    ]


def households_in(session: Session, children: Sequence[str]) -> dict[str, set[str]]:
    """Child -> the other children whose events its view must carry (``ChildView.household``):
    those naming one of its parent figures (``policies.household.linked_persons``), read from
    the household index intake writes with each accepted event (``PersonLinkRow``).

    The index is a function of the ledger, never of view rows another projection shard writes
    at its own pace, so every shard (and a replay) finds the same households. It counts raw
    events, withdrawn links included: a superset of the siblings at any as-of time, which is
    harmless (the sibling rule decides from the events, cut to as-of and amended).
    """
    named: dict[str, set[str]] = {child: set() for child in children}
    ordered = sorted(named)
    for start in range(0, len(ordered), 500):
        query = select(PersonLinkRow.child, PersonLinkRow.person).where(
            PersonLinkRow.child.in_(ordered[start : start + 500])
        )
        for child, person in session.execute(query):
            named[child].add(person)
    persons = sorted(set().union(*named.values()))
    naming: dict[str, set[str]] = {}
    for start in range(0, len(persons), 500):
        query = select(PersonLinkRow.person, PersonLinkRow.child).where(
            PersonLinkRow.person.in_(persons[start : start + 500])
        )
        for person, child in session.execute(query):
            naming.setdefault(person, set()).add(child)
    return {
        child: {other for person in mine for other in naming.get(person, ())} - {child}
        for child, mine in named.items()
    }


def view_from_ledger(ledger: Ledger, session: Session, child: str, root: RootKey) -> ChildView:
    registry = ledger.key_registry(session, root)
    events = child_events(ledger, session, child)
    others = households_in(session, [child])[child]
    household = {other: child_events(ledger, session, other) for other in sorted(others)}
    return ChildView.build(child, events, registry.registered_agencies(), household)


def flags_as_of(
    ledger: Ledger,
    root: RootKey,
    as_of: datetime,
    *,
    child: str | None = None,
    policies: Sequence[Policy] = ALL_POLICIES,
    include_integrity: bool = True,
) -> list[Flag]:
    """Every flag raised by ``as_of`` (open, resolved or dismissed), recomputed from the ledger.

    Pure evaluation over events recorded by ``as_of``: the same ledger and the same time give
    the same flags, byte for byte, on any database.
    """
    flags: list[Flag] = []
    with ledger.read() as session:
        children = [child] if child else child_ids(session)
        for child_id in children:
            view = view_from_ledger(ledger, session, child_id, root)
            if view.events:
                flags.extend(evaluate(view, as_of, policies).flags)
        if include_integrity and child is None:
            flags.extend(integrity_flags_as_of(session, as_of))
    return flags


def integrity_flags_as_of(
    session: Session, as_of: datetime, *, changed_at: datetime | None = None
) -> list[Flag]:
    """The partnership-wide flags (lost events, equivocation) from what the ledger noticed.

    With ``changed_at`` (the projector, after a batch stamped with that time): only the flags
    that batch can have changed, from holes still open or filled then and equivocations
    detected then. Every other one is settled (a hole's flag is final once the hole is filled,
    an equivocation's from its detection), and re-reading every hole ever noticed on every
    batch grew with the ledger's history: an agency's chain spans every child-keyed partition,
    so holes are noticed and filled all the time in normal operation."""
    noticed = SequenceHoleRow.noticed_at <= as_of
    detected = EquivocationRow.detected_at <= as_of
    if changed_at is not None:
        noticed &= or_(SequenceHoleRow.filled_at.is_(None), SequenceHoleRow.filled_at == changed_at)
        detected &= EquivocationRow.detected_at == changed_at
    holes = [
        SequenceHole(
            source=h.source,
            missing=(h.first_missing, h.last_missing),
            noticed_at=h.noticed_at,
            later_event=h.later_event,
            filled_at=h.filled_at if h.filled_at and h.filled_at <= as_of else None,
            filled_by=h.filled_by if h.filled_at and h.filled_at <= as_of else None,
        )
        for h in session.scalars(select(SequenceHoleRow).where(noticed))
    ]
    equivocations = [
        Equivocation(
            source=q.source,
            sequence=q.sequence,
            accepted_event=q.accepted_event,
            conflicting_event=q.conflicting_event,
            detected_at=q.detected_at,
        )
        for q in session.scalars(select(EquivocationRow).where(detected))
    ]
    if not holes and not equivocations:
        return []
    return list(integrity_flags(holes, equivocations, as_of).flags)
