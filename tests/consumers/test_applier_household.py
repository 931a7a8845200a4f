"""Issue 14 through the real projector (SQLite file): a child's events change its siblings'
flags in the same batch or a later one, a replay as of a time gives the same, and the view
shows the child's current school."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from consumers.projector.applier import Applier, Message
from ledger.store.ledger import Ledger
from tests.ledger.factory import T0, Chain, Partnership
from views.models import FlagRow
from views.queries import child_view, flags_as_of

INCIDENT = {
    "incident_ref": "INC-H1",
    "children_present": True,
    "domestic_abuse": True,
    "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-x", "role": "alleged-perpetrator"}],
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.engine.dispose()


def send(applier: Applier, *events: dict[str, object]) -> None:
    applier.apply([Message(json.dumps(e).encode()) for e in events])


def sibling_flags(ledger: Ledger) -> list[tuple[str | None, str]]:
    with ledger.read() as session:
        rows = session.scalars(select(FlagRow).where(FlagRow.rule == "sibling-not-considered"))
        return sorted((row.child, row.status) for row in rows)


def lives_with(csc: Chain, child: str) -> dict[str, object]:
    data = {"person": "P-m", "role": "mother", "lives_with_child": True}
    return csc.event("person.linked", data, subject=child, at=T0)


def test_a_sibling_is_found_in_the_same_batch_and_a_later_event_for_it_resolves(ledger: Ledger) -> None:
    partnership = Partnership()
    police, csc = Chain("police/avon-somerset"), Chain("csc/somerset")
    now = T0 + timedelta(days=7)
    applier = Applier(ledger, partnership.root_key, clock=lambda: now)
    incident = police.event("incident.reported", INCIDENT, subject="C-1", at=T0 + timedelta(hours=1))
    # Both children's links and the incident arrive together: the sibling's rows are not built yet.
    send(
        applier,
        partnership.register(police),
        partnership.register(csc),
        lives_with(csc, "C-1"),
        lives_with(csc, "C-2"),
        incident,
    )
    assert sibling_flags(ledger) == [("C-1", "open")]
    # An event about C-2 only (the incident recorded for C-2) re-evaluates C-1, its sibling.
    now = T0 + timedelta(days=8)
    send(applier, police.event("incident.reported", INCIDENT, subject="C-2", at=now))
    assert sibling_flags(ledger) == [("C-1", "resolved")]
    open_then = [f for f in flags_as_of(ledger, partnership.root_key, T0 + timedelta(days=7)) if f.is_open]
    assert [(f.rule, f.child) for f in open_then if f.rule == "sibling-not-considered"] == [
        ("sibling-not-considered", "C-1")
    ]


def test_a_child_without_a_shared_co_resident_parent_figure_is_not_a_sibling(ledger: Ledger) -> None:
    partnership = Partnership()
    police, csc = Chain("police/avon-somerset"), Chain("csc/somerset")
    applier = Applier(ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=7))
    elsewhere = {"person": "P-m", "role": "mother", "lives_with_child": False}
    send(
        applier,
        partnership.register(police),
        partnership.register(csc),
        lives_with(csc, "C-1"),
        csc.event("person.linked", elsewhere, subject="C-2", at=T0),
        police.event("incident.reported", INCIDENT, subject="C-1"),
    )
    assert sibling_flags(ledger) == []


def test_the_view_lists_the_current_school_only(ledger: Ledger) -> None:
    partnership = Partnership()
    school = Chain("school/100001")
    applier = Applier(ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=7))
    send(
        applier,
        partnership.register(school),
        school.event("school.enrolled", {"school": "100001"}),
        school.event("school.enrolled", {"school": "100002"}, at=T0 + timedelta(days=1)),
        school.event("school.left", {"school": "100001", "reason": "moved"}, at=T0 + timedelta(days=2)),
    )
    with ledger.read() as session:
        shown = child_view(session, "C-1")
    assert shown is not None and shown["schools"] == ["100002"]
