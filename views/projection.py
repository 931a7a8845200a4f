"""Rebuild one child's view rows from the child's events, and project the children a batch touched.

The whole child is recomputed from the ledger each time one of its events is applied: it makes
the view a pure function of the ledger (a replay on another database produces identical rows),
which incremental updates with corrections and withdrawals would not guarantee. Only the rows
whose values differ from what is stored are written, so the database work per event does not
grow with the child's history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.store.ledger import Ledger
from policies.base import Policy
from policies.engine import Evaluation, Evaluator, evaluate
from policies.household import linked_persons
from policies.view import ChildView, Event
from views.flags import sync_flags
from views.models import AgencyRow, ChildRow, FlagChangeRow, PersonLinkRow, PersonRow
from views.queries import CHILD_EXCLUDED_TYPES, child_events, households_in
from views.summaries import event_refs


class ChildFailed(Exception):
    """Projecting ``child`` raised ``error`` (a fault in the rules or the view code, not in the
    database): the caller decides whose fault it is (the messages that touched the child, or
    nobody's, in a sweep)."""

    def __init__(self, child: str, error: Exception) -> None:
        super().__init__(f"child {child} failed: {type(error).__name__}")
        self.child, self.error = child, error


@dataclass(frozen=True)
class ChildEvaluation:
    """One child evaluated, ready to be written: computed from a read of the ledger, written in
    a (possibly later, shorter) write transaction by ``write_children``."""

    child: str
    trigger: str  # the event that caused it, "" for a sibling or a deadline
    view: ChildView
    evaluation: Evaluation


def evaluate_children(
    session: Session,
    ledger: Ledger,
    triggers: Mapping[str, str],
    registered: Mapping[str, datetime],
    now: datetime,
    policies: Sequence[Policy],
    *,
    owns: Callable[[str], bool] = lambda _: True,
    evaluator: Evaluator | None = None,
    reraise: tuple[type[BaseException], ...] = (),
) -> list[ChildEvaluation]:
    """Evaluate every touched child (``triggers``: child -> the event that changed it) and the
    children of their households, as of ``now``.

    A child's view carries its household (the events of children who may share a parent figure:
    issue 14, sibling rules), so a change to one child changes its siblings' views too: they are
    re-evaluated, one step out (their own households are read, not re-evaluated). ``owns``
    keeps only a shard's own children; the household is found for every touched child, so a
    shard re-evaluates its children whose sibling lives in another shard. Anything raised while
    one child is evaluated, except ``reraise`` (the database's own failures), is ``ChildFailed``.
    A long-lived ``evaluator`` (one per projecting process) re-runs only the rules whose inputs
    changed since it last saw the child, with ``evaluate``'s result.
    """
    judge = evaluate if evaluator is None else evaluator.evaluate
    loaded: dict[str, list[Event]] = {}

    def events_of(child: str) -> list[Event]:
        if child not in loaded:
            loaded[child] = child_events(ledger, session, child)
        return loaded[child]

    wanted = dict(triggers)
    for siblings in households_in(session, sorted(wanted)).values():
        for sibling in siblings:
            wanted.setdefault(sibling, "")
    mine = sorted(child for child in wanted if owns(child))
    households = households_in(session, mine)
    evaluations: list[ChildEvaluation] = []
    for child in mine:
        try:
            events = events_of(child)
            if not events:
                continue
            others = {other: events_of(other) for other in sorted(households[child])}
            view = ChildView.build(child, events, registered, others)
            evaluations.append(ChildEvaluation(child, wanted[child], view, judge(view, now, policies)))
        except reraise:
            raise
        except Exception as error:
            raise ChildFailed(child, error) from error
    return evaluations


def write_children(
    session: Session,
    evaluations: Iterable[ChildEvaluation],
    now: datetime,
    rules: Sequence[str],
    *,
    reraise: tuple[type[BaseException], ...] = (),
) -> list[FlagChangeRow]:
    """Write each evaluated child's view rows and flags (only what changed); the flag changes
    written are returned (they are the gap-flags outbox)."""
    changes: list[FlagChangeRow] = []
    for done in evaluations:
        try:
            rebuild_child(session, done.view, done.evaluation.next_due, now)
            detail = {e.id: evidence(e) for e in done.view.events}
            changes += sync_flags(
                session, done.child, done.evaluation.flags, now, done.trigger or None, detail, rules=rules
            )
        except reraise:
            raise
        except Exception as error:
            raise ChildFailed(done.child, error) from error
    return changes


def record_links(session: Session, envelopes: Iterable[Mapping[str, Any]]) -> None:
    """Index the parent figures accepted events name (``PersonLinkRow``), in the caller's
    transaction: the one that accepts them."""
    wanted: set[tuple[str, str]] = set()
    for envelope in envelopes:
        if envelope["type"] in CHILD_EXCLUDED_TYPES:
            continue
        event = Event.from_envelope(envelope)
        wanted.update((person, event.subject) for person in linked_persons([event]))
    if not wanted:
        return
    children = sorted({child for _, child in wanted})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(children), 500):
        query = select(PersonLinkRow.person, PersonLinkRow.child).where(
            PersonLinkRow.child.in_(children[start : start + 500])
        )
        stored.update((person, child) for person, child in session.execute(query))
    session.add_all(PersonLinkRow(person=p, child=c) for p, c in sorted(wanted - stored))
    session.flush()  # households are looked up next, in a session that does not autoflush


def evidence(event: Event) -> dict[str, Any]:
    """What a flag change message says about each event of its evidence."""
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat(),
        "recordedtime": event.recordedtime.isoformat(),
        # the agency references (incident_ref...) that tell one flag of a rule from another in
        # an email, which never carries the event's data itself
        "refs": event_refs(event.data),
    }


_STATUS_FIELDS = ("care_leaver", "substance_misuse", "mental_health", "age")
_PERSON_FACTS = ("lives_with_child", "parental_responsibility", *_STATUS_FIELDS)


def rebuild_child(
    session: Session, view: ChildView, next_due: datetime | None, evaluated_at: datetime
) -> None:
    child = view.child
    effective = view.effective()
    people: dict[str, dict[str, Any]] = {}
    child_practices: list[str] = []
    schools: list[str] = []
    dob: str | None = None
    for event in effective:
        data = event.data
        if event.type == "child.registered":
            dob = data.get("dob", dob)
            for role in ("mother", "father"):
                if data.get(role):
                    _roles(people, data[role]).add(role)
        elif event.type == "person.linked":
            person = _person(people, data["person"])
            person["roles"].add(data["role"])
            for attribute in ("lives_with_child", "parental_responsibility"):
                if attribute in data:
                    person[attribute] = data[attribute]
        elif event.type == "person.status":
            person = _person(people, data["person"])
            person.update({k: data[k] for k in _STATUS_FIELDS if k in data})
        elif event.type == "gp.registered":
            if data["person"] == child:
                _add(child_practices, data["practice"])
            else:
                _add(_person(people, data["person"])["gp_practices"], data["practice"])
        elif event.type == "school.enrolled":
            _add(schools, data["school"])
        elif event.type == "school.left" and data["school"] in schools:
            schools.remove(data["school"])  # the view shows the child's current schools
        elif event.type == "incident.reported":
            for party in data.get("parties", ()):
                _roles(people, party["person"]).add(f"party:{party['role']}")
    person_rows = {
        person_id: {
            "roles": json.dumps(sorted(facts["roles"])),
            "gp_practices": json.dumps(facts["gp_practices"]),
            **{k: facts.get(k) for k in _PERSON_FACTS},
        }
        for person_id, facts in sorted(people.items())
    }
    _write_changed(session, PersonRow, child, "person", person_rows)
    agency_rows = {
        agency: {"aware_since": since, "via": via}
        for agency, (since, via) in sorted(_awareness(view.events).items())
    }
    _write_changed(session, AgencyRow, child, "agency", agency_rows)
    row = session.get(ChildRow, child)
    recorded = [e.recordedtime for e in view.events]
    values = {
        "dob": dob,
        "event_count": len(view.events),
        "first_recorded": min(recorded),
        "last_recorded": max(recorded),
        "gp_practices": json.dumps(child_practices),
        "schools": json.dumps(schools),
        "next_due": next_due,
        "evaluated_at": evaluated_at,
    }
    if row is None:
        session.add(ChildRow(child=child, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)


def _write_changed(
    session: Session,
    model: type[PersonRow] | type[AgencyRow],
    child: str,
    key: str,
    wanted: dict[str, dict[str, Any]],
) -> None:
    """Make ``child``'s rows of ``model`` equal ``wanted`` (key -> column values), writing only
    rows that differ. A new event usually changes one row or none: deleting and re-inserting
    every row of the child on every event made the cost per event grow with the history. The
    ORM issues an UPDATE only for attributes whose value actually changed."""
    stored = {getattr(row, key): row for row in session.scalars(select(model).where(model.child == child))}
    for name, values in wanted.items():
        row = stored.pop(name, None)
        if row is None:
            session.add(model(child=child, **{key: name}, **values))
            continue
        for column, value in values.items():
            if getattr(row, column) != value:
                setattr(row, column, value)
    for row in stored.values():
        session.delete(row)


def _awareness(events: Iterable[Event]) -> dict[str, tuple[datetime, str]]:
    """DESIGN/policies issue: an agency is aware of a child once it was the source of any
    event about the child or the ``to`` of a notification about the child."""
    aware: dict[str, tuple[datetime, str]] = {}
    for event in sorted(events, key=lambda e: e.recordedtime):
        if event.type.startswith(("flag.", "access.")):
            continue  # partnership bookkeeping, not involvement with the child
        aware.setdefault(event.source, (event.recordedtime, "source"))
        if event.type == "notification.sent":
            aware.setdefault(event.data["to"], (event.recordedtime, "notified"))
    return aware


def _person(people: dict[str, dict[str, Any]], person: str) -> dict[str, Any]:
    return people.setdefault(person, {"roles": set(), "gp_practices": []})


def _roles(people: dict[str, dict[str, Any]], person: str) -> set[str]:
    roles: set[str] = _person(people, person)["roles"]
    return roles


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)
