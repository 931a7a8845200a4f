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

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)  # fmt: skip
from sqlalchemy.orm import Session

from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, EquivocationRow, SequenceHoleRow
from ledger.timeutil import format_time, from_utc_text
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


# A child's view in one statement. The Child page and `child show` read it on every look.
# Before, five ORM queries (one per table) cost 3.6-4.9 ms of CPU per read at 100,000 children,
# several times the database's own work (about 0.5 ms, EXPLAIN ANALYZE): each ``select`` built,
# coerced and cache-keyed per call and its rows made by the ORM's machinery. And each statement
# is a round trip: on a busy host, one in a hundred waits milliseconds for a CPU, so five per
# read put most reads' p99 at the mercy of the load. So: one ``UNION ALL`` of the five parts,
# built once, run on the session's connection, its rows told apart by ``part`` and ordered by
# each part's own keys (docs/notes/child-view-read.md).
_CHILD_PART, _PERSON_PART, _AGENCY_PART, _EVENT_PART, _FLAG_PART = range(5)
_FACTS = ("lives_with_child", "parental_responsibility", "care_leaver", "substance_misuse", "mental_health")
_TEXTS = 6  # text columns of the shared row: the chronology's part needs the most
_KEYS = 3  # sort keys within a part: the chronology's (time, recordedtime, event_id)


def _part(
    part: int,
    where: ColumnElement[bool],
    keys: Sequence[ColumnElement[Any]],
    texts: Sequence[ColumnElement[Any]],
    facts: Sequence[ColumnElement[Any]] = (),
    age: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """One table's rows in the shared row shape: ``part``, the part's sort keys, its values as
    text (stored times stay text: ``_shown_time`` formats them), people's facts and age; the
    columns a part has no use for are typed NULLs, so that every branch agrees on every type."""

    def text_(column: ColumnElement[Any] | None, name: str) -> ColumnElement[Any]:
        return type_coerce(column if column is not None else null(), String).label(name)

    return select(
        literal(part, Integer).label("part"),
        *(text_(keys[n] if n < len(keys) else None, f"key{n}") for n in range(_KEYS)),
        *(text_(texts[n] if n < len(texts) else None, f"text{n}") for n in range(_TEXTS)),
        *(type_coerce(facts[n] if facts else null(), Boolean).label(fact) for n, fact in enumerate(_FACTS)),
        type_coerce(age if age is not None else null(), Integer).label("age"),
    ).where(where)


_CHILD = bindparam("child", type_=String())
_CHILDREN, _PEOPLE = ChildRow.__table__.c, PersonRow.__table__.c
_AGENCIES, _FLAGS, _EVENTS = AgencyRow.__table__.c, FlagRow.__table__.c, AcceptedEvent.__table__.c
_CHILD_VIEW = union_all(
    _part(
        _CHILD_PART, _CHILDREN.child == _CHILD, keys=(),
        texts=(_CHILDREN.dob, _CHILDREN.gp_practices, _CHILDREN.schools, _CHILDREN.evaluated_at),
    ),
    _part(
        _PERSON_PART, _PEOPLE.child == _CHILD, keys=(_PEOPLE.person,),
        texts=(_PEOPLE.person, _PEOPLE.roles, _PEOPLE.gp_practices),
        facts=[_PEOPLE[fact] for fact in _FACTS], age=_PEOPLE.age,
    ),
    _part(
        _AGENCY_PART, _AGENCIES.child == _CHILD,
        keys=(_AGENCIES.aware_since, _AGENCIES.agency),  # two aware at one time: by id, not by chance
        texts=(_AGENCIES.agency, _AGENCIES.aware_since, _AGENCIES.via),
    ),
    _part(
        _EVENT_PART, (_EVENTS.subject == _CHILD) & _EVENTS.type.not_in(CHILD_EXCLUDED_TYPES),
        keys=(_EVENTS.time, _EVENTS.recordedtime, _EVENTS.event_id),
        texts=(
            _EVENTS.time, _EVENTS.recordedtime, _EVENTS.source, _EVENTS.type, _EVENTS.event_id,
            _EVENTS.envelope,
        ),
    ),
    _part(
        _FLAG_PART, (_FLAGS.child == _CHILD) & (_FLAGS.status == "open"),
        keys=(_FLAGS.due, _FLAGS.rule), texts=(_FLAGS.payload,),
    ),
).order_by("part", *(f"key{n}" for n in range(_KEYS)))  # fmt: skip


def _shown_time(stored: str) -> str:
    """A stored time (``UTCTime``'s fixed UTC text) as the view shows times (RFC 3339)."""
    return format_time(from_utc_text(stored))


def child_view(session: Session, child: str) -> dict[str, Any] | None:
    """The per-child view: people and roles, GP practices and school, agencies involved, the
    chronology across agencies and the open flags with their evidence.

    Asked on every Child page and `child show`: one statement (``_CHILD_VIEW``), every part
    answered by an index on the child, its rows decoded here without ORM objects.
    """
    parts: list[list[Row[Any]]] = [[] for _ in range(5)]
    for row in session.connection().execute(_CHILD_VIEW, {"child": child}).all():
        parts[row.part].append(row)
    if not parts[_CHILD_PART]:
        return None
    (me,) = parts[_CHILD_PART]
    dob, gp_practices, schools, evaluated_at = me.text0, me.text1, me.text2, me.text3
    return {
        "child": child,
        "dob": dob,
        "gp_practices": json.loads(gp_practices),
        "schools": json.loads(schools),
        "people": [
            {
                "person": p.text0,
                "roles": json.loads(p.text1),
                **{fact: getattr(p, fact) for fact in _FACTS},
                "age": p.age,
                "gp_practices": json.loads(p.text2),
            }
            for p in parts[_PERSON_PART]
        ],
        "agencies": [
            {"agency": a.text0, "aware_since": _shown_time(a.text1), "via": a.text2}
            for a in parts[_AGENCY_PART]
        ],
        "chronology": [
            {
                "time": _shown_time(e.text0),
                "recordedtime": _shown_time(e.text1),
                "source": e.text2,
                "type": e.text3,
                "id": e.text4,
                "data": json.loads(e.text5)["data"],
            }
            for e in parts[_EVENT_PART]
        ],
        "open_flags": [json.loads(f.text0) for f in parts[_FLAG_PART]],
        "evaluated_at": _shown_time(evaluated_at) if evaluated_at else None,
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
