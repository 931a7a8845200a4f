"""Rebuild one child's view rows from the child's events.

The whole child is recomputed from the ledger each time one of its events is applied: it makes
the view a pure function of the ledger (a replay on another database produces identical rows),
which incremental updates with corrections and withdrawals would not guarantee. Only the rows
whose values differ from what is stored are written, so the database work per event does not
grow with the child's history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.view import ChildView, Event
from views.models import AgencyRow, ChildRow, PersonRow

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
