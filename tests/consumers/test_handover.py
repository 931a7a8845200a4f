"""The one-process projector hands the child side the events its intake just recorded, decoded,
instead of the child side reading them back from the ledger (``views.projection.Recorded``,
issue 13). The child side must still see exactly what a read of the ledger gives: the child's
earlier history from the database, the batch's own events once each, in ledger order, and
each event as its stored (canonical) form decodes, whatever member order or spacing the
message used. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from consumers.projector.applier import Applier, Message
from ledger.canonical import canonical_json
from ledger.store.ledger import Ledger
from policies.view import Event
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership
from views.models import ChildRow
from views.projection import load_events

CHILD = "C-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Ledger]:
    url = (
        f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    ledger = Ledger(url)
    yield ledger
    ledger.engine.dispose()


def reordered(event: dict[str, Any]) -> bytes:
    """The event with its members, and its data's, in reverse order and spaced out: a valid
    message (the signature covers the canonical form) whose parse differs from its stored form's
    in member order."""
    members = {k: event[k] for k in reversed(event)}
    members["data"] = {k: event["data"][k] for k in reversed(event["data"])}
    return json.dumps(members, indent=1).encode()


def form(event: Event) -> tuple[Any, ...]:
    """Everything of an event the rules and the views read, member order of its data included."""
    data = json.dumps(dict(event.data))  # not sorted: the order is part of the comparison
    return (event.id, event.type, event.source, event.subject, event.time, event.recordedtime, data)


def test_the_child_side_sees_what_the_ledger_holds_each_event_decoded_once(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    partnership = Partnership()
    police, csc = Chain("police/avon-somerset"), Chain("csc/somerset")
    clock = lambda: T0 + timedelta(days=30)  # noqa: E731
    earlier = [
        partnership.register(police),
        partnership.register(csc),
        csc.event("child.registered", {"dob": "2020-01-01", "mother": "P-m", "father": "P-f"}),
        police.event("incident.reported", INCIDENT, at=T0 + timedelta(days=1)),
    ]
    Applier(ledger, partnership.root_key, clock=clock).apply([Message(canonical_json(e)) for e in earlier])

    # A new projector process: nothing remembered, so the child's earlier history must come
    # from the database, and the batch's own events from intake.
    applier = Applier(ledger, partnership.root_key, clock=clock)
    later_incident = police.event(
        "incident.reported", {**INCIDENT, "incident_ref": "INC-2"}, at=T0 + timedelta(days=2)
    )
    third = police.event(
        "incident.reported", {**INCIDENT, "incident_ref": "INC-3"}, at=T0 + timedelta(days=3)
    )
    decoded: list[str] = []
    made = Event.from_envelope.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Event], envelope: Any) -> Event:
        decoded.append(envelope["id"])
        return made(cls, envelope)  # type: ignore[no-any-return]

    monkeypatch.setattr(Event, "from_envelope", classmethod(counting))
    # one message in canonical form, one whose member order and spacing are its own
    applier.apply([Message(canonical_json(later_incident)), Message(reordered(third))])
    monkeypatch.undo()

    # each decoded once: the earlier two read from the database, the batch's two by intake,
    # never read back
    assert sorted(decoded) == sorted(e["id"] for e in [*earlier[2:], later_incident, third])
    with ledger.read() as session:
        stored = load_events(session, [CHILD])[CHILD]  # decoded from the ledger, nothing remembered
        count = session.scalar(select(ChildRow.event_count).where(ChildRow.child == CHILD))
    remembered = applier.histories.known([CHILD])[CHILD][1]
    assert [form(e) for e in remembered] == [form(e) for e in stored]
    assert len(stored) == 4 and count == 4  # child.registered and three incidents
