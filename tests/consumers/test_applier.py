"""The projector's apply step against a real SQLite file: bad input is quarantined with a reason,
never applied; chains, holes and equivocation behave as DESIGN.md invariant 2 says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

import ledger.verification as verification
from consumers.projector.applier import Applier, Message
from ledger.signing import public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership
from views.models import FlagChangeRow, FlagRow
from views.queries import integrity_flags_as_of


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def partnership() -> Partnership:
    return Partnership()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=30))


@pytest.fixture
def applier(ledger: Ledger, partnership: Partnership, clock: Clock) -> Applier:
    return Applier(ledger, partnership.root_key, clock=clock)


def send(applier: Applier, *events: dict[str, object] | bytes) -> None:
    applier.apply([Message(e if isinstance(e, bytes) else json.dumps(e).encode()) for e in events])


def quarantined(ledger: Ledger) -> list[tuple[str, str]]:
    with ledger.read() as session:
        return [
            (q.status, q.reason)
            for q in session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id))
        ]


def accepted_ids(ledger: Ledger) -> set[str]:
    with ledger.read() as session:
        return set(session.scalars(select(AcceptedEvent.event_id)))


def test_valid_events_are_recorded_once(applier: Applier, ledger: Ledger, partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registration = partnership.register(police)
    incident = police.event("incident.reported", INCIDENT)
    send(applier, registration, incident)
    send(applier, incident, registration)  # redelivery: idempotent, not quarantined
    assert accepted_ids(ledger) == {registration["id"], incident["id"]}
    assert quarantined(ledger) == []
    assert len(ledger.app.recorder.select_notifications(start=1, limit=100)) == 2


def test_bad_inputs_are_quarantined_with_reasons_and_not_applied(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    other = Chain("csc/somerset")
    send(applier, partnership.register(police), partnership.register(other))
    good = police.event("incident.reported", INCIDENT)
    tampered = dict(police.event("incident.reported", INCIDENT))
    tampered["data"] = {**tampered["data"], "domestic_abuse": False}
    invalid = Chain("police/avon-somerset", key=police.key)
    invalid.sequence, invalid.prevhash = police.sequence, police.prevhash
    schema_bad = invalid.event("incident.reported", {"incident_ref": "X"})
    forged = Chain("police/avon-somerset", key=other.key).event("incident.reported", INCIDENT)
    replayed = dict(good, sequence=99)
    send(applier, good, tampered, schema_bad, forged, b"not json at all", b"{" + b" " * (1024 * 1024) + b"}")
    replay_copy = police.event("incident.reported", INCIDENT, event_id=good["id"])
    send(applier, replay_copy)
    reasons = [r for _, r in quarantined(ledger)]
    assert reasons == [
        "bad-signature",
        "schema-invalid",
        "key-of-other-agency",
        "not-json",
        "oversized",
        "replayed-id",
    ]
    assert accepted_ids(ledger) >= {good["id"]}
    assert tampered["id"] not in accepted_ids(ledger) and replayed["sequence"] == 99


def test_unknown_key_is_held_then_admitted_when_the_key_is_registered(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    incident = police.event("incident.reported", INCIDENT)
    send(applier, incident)
    assert quarantined(ledger) == [("held", "unknown-key")]
    send(applier, partnership.register(police))
    assert quarantined(ledger) == [("readmitted", "unknown-key")]
    assert incident["id"] in accepted_ids(ledger)


def test_out_of_order_sequence_is_held_until_its_predecessor(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    first, second, third = (police.event("incident.reported", INCIDENT) for _ in range(3))
    send(applier, third)
    send(applier, second)
    assert [s for s, _ in quarantined(ledger)] == ["held", "held"]
    send(applier, first)
    assert [s for s, _ in quarantined(ledger)] == ["readmitted", "readmitted"]
    assert {first["id"], second["id"], third["id"]} <= accepted_ids(ledger)


def test_lost_event_accepted_over_the_hole_after_grace_and_flagged(
    applier: Applier, ledger: Ledger, partnership: Partnership, clock: Clock
) -> None:
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    police.event("incident.reported", INCIDENT)  # sequence 1: never delivered
    later = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})
    send(applier, later)
    clock.now += timedelta(minutes=59)
    applier.sweep()
    assert later["id"] not in accepted_ids(ledger)
    clock.now += timedelta(minutes=2)
    applier.sweep()
    assert later["id"] in accepted_ids(ledger)
    with ledger.read() as session:
        rules = set(session.scalars(select(FlagRow.rule).where(FlagRow.status == "open")))
    assert "lost-event" in rules


def test_equivocation_keeps_both_and_flags(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    fork = Chain("police/avon-somerset", key=police.key)
    original = police.event("incident.reported", INCIDENT)
    conflicting = fork.event("incident.reported", {**INCIDENT, "incident_ref": "INC-9"})
    send(applier, original, conflicting)
    assert quarantined(ledger) == [("quarantined", "equivocation")]
    with ledger.read() as session:
        assert (
            session.scalar(select(func.count()).select_from(FlagRow).where(FlagRow.rule == "equivocation"))
            == 1
        )


def test_views_and_flags_follow_the_events(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    gp = Chain("gp/L85001")
    send(applier, partnership.register(police), partnership.register(gp))
    send(
        applier,
        gp.event("gp.registered", {"person": "C-1", "practice": "L85001"}, at=T0 - timedelta(hours=1)),
        police.event("incident.reported", INCIDENT),
    )
    with ledger.read() as session:
        flags = {(f.rule, f.status) for f in session.scalars(select(FlagRow))}
    assert ("gp-not-notified", "open") in flags


def test_readmit_reverifies(applier: Applier, ledger: Ledger, partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    bad = police.event("incident.reported", INCIDENT)
    bad["data"]["location"] = "tampered"
    send(applier, bad)
    with ledger.read() as session:
        entry_id = session.scalars(select(QuarantineEntry.id)).one()
    entry = applier.readmit(entry_id)
    assert entry.status == "quarantined" and entry.reason == "bad-signature"


def test_a_long_held_chain_is_released_by_its_first_link(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    # Long enough that releasing link by link recursively would exhaust Python's stack.
    events = [police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(600)]
    send(applier, *events[1:])
    assert {s for s, _ in quarantined(ledger)} == {"held"}
    send(applier, events[0])
    assert {s for s, _ in quarantined(ledger)} == {"readmitted"}
    assert {e["id"] for e in events} <= accepted_ids(ledger)


def test_an_event_waiting_for_its_key_then_for_its_predecessor_is_released(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    police = Chain("police/avon-somerset")
    first = police.event("incident.reported", INCIDENT)
    second = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})
    send(applier, second)
    assert quarantined(ledger) == [("held", "unknown-key")]
    send(applier, partnership.register(police))
    assert quarantined(ledger) == [("held", "sequence-gap")]
    send(applier, first)
    assert quarantined(ledger) == [("readmitted", "sequence-gap")]
    assert {first["id"], second["id"]} <= accepted_ids(ledger)


def test_a_late_predecessor_must_match_the_event_accepted_over_its_hole(
    applier: Applier, ledger: Ledger, partnership: Partnership, clock: Clock
) -> None:
    """The batch learns which places were accepted over a hole from the chain window it loads
    (no scan of the ledger): a predecessor arriving in a later batch is still checked."""
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    first = police.event("incident.reported", INCIDENT)
    second = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})
    send(applier, second)
    clock.now += timedelta(hours=2)
    applier.sweep()
    assert second["id"] in accepted_ids(ledger)
    forged = Chain("police/avon-somerset", key=police.key).event(
        "incident.reported", {**INCIDENT, "incident_ref": "INC-forged"}
    )
    send(applier, forged)
    assert forged["id"] not in accepted_ids(ledger)
    assert quarantined(ledger)[-1] == ("quarantined", "chain-broken")
    send(applier, first)
    assert first["id"] in accepted_ids(ledger)


def test_an_event_that_changes_no_view_row_or_flag_writes_none(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    """Rows are written only when they change: rewriting every person, agency and flag row of
    the child on each event made the cost per event grow with the child's history."""
    police, phn = Chain("police/avon-somerset"), Chain("phn/somerset")
    send(applier, partnership.register(police), partnership.register(phn))
    send(applier, phn.event("contact.recorded", {"person": "P-m", "practitioner": "HV", "mode": "phone"}))
    send(applier, police.event("incident.reported", INCIDENT))
    with ledger.read() as session:
        open_flags = set(session.scalars(select(FlagRow.id).where(FlagRow.status == "open")))
    assert open_flags
    written: list[str] = []

    def watch(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            written.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", watch)
    try:  # a second contact with the same person: same people, same agencies, same flags
        send(applier, phn.event("contact.recorded", {"person": "P-m", "practitioner": "HV", "mode": "phone"}))
    finally:
        event.remove(ledger.engine, "before_cursor_execute", watch)
    touched = " ".join(written)
    assert "view_people" not in touched and "view_agencies" not in touched, written
    assert "UPDATE flags" not in touched and "INSERT INTO flags" not in touched, written
    assert "view_children" in touched  # its event count and evaluation time did change


def statements_during(ledger: Ledger, action: Callable[[], object]) -> list[str]:
    """The SQL statements ``action`` sends (an executemany counts once)."""
    seen: list[str] = []

    def watch(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", watch)
    try:
        action()
    finally:
        event.remove(ledger.engine, "before_cursor_execute", watch)
    return seen


def test_a_batch_costs_the_same_statements_for_ten_children_as_for_sixty(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    """Issue 13: children's events, view rows and flags are read for the whole batch and written
    with one executemany per table, not queried and flushed child by child. (On SQLite the
    library's ledger_events rows go in one statement each, to return their ids in order: those
    are left out of the count.)"""
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))

    def batch(children: int, first: int) -> list[str]:
        events = [
            police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-{n}"}, subject=f"C-{n}")
            for n in range(first, first + children)
        ]
        statements = statements_during(ledger, lambda: send(applier, *events))
        return [s for s in statements if "INTO ledger_events" not in s]

    small, large = batch(10, 0), batch(60, 100)
    assert len(large) <= len(small), (len(small), len(large))


def test_settled_integrity_flags_are_not_evaluated_again(
    applier: Applier, ledger: Ledger, partnership: Partnership, clock: Clock
) -> None:
    """A hole's lost-event flag is final once the hole is filled, so later batches evaluate only
    open holes and what they changed (every hole ever noticed was re-read on every batch), and
    the stored flag still equals the full as-of evaluation."""
    police = Chain("police/avon-somerset")
    send(applier, partnership.register(police))
    missing = police.event("incident.reported", INCIDENT)
    send(applier, police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"}))
    clock.now += timedelta(hours=2)
    applier.sweep()  # accepted over the hole: lost-event raised
    clock.now += timedelta(hours=1)
    send(applier, missing)  # the hole is filled: the flag is resolved by it
    clock.now += timedelta(hours=1)
    send(applier, police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-3"}))
    with ledger.read() as session:
        stored = {
            row.id: json.loads(row.payload)
            for row in session.scalars(select(FlagRow).where(FlagRow.child.is_(None)))
        }
        full = {f.id: f.to_json() for f in integrity_flags_as_of(session, clock.now)}
        assert integrity_flags_as_of(session, clock.now, changed_at=clock.now) == []
    assert stored == full
    [flag] = stored.values()
    assert (flag["rule"], flag["status"], flag["resolved_by"]) == ("lost-event", "resolved", missing["id"])


def test_events_arriving_with_their_keys_registration_are_checked_once(
    applier: Applier, ledger: Ledger, partnership: Partnership, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration usually travels with the agency's first events (a replay: every agency's).
    Pre-checked against the ledger's registry alone they were all refused as unknown-key and
    checked again in full (schema and all) inside the transaction."""
    police = Chain("police/avon-somerset")
    registration = partnership.register(police)
    events = [police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(5)]
    checked: list[str] = []
    real = verification.validate_event

    def counting(event: dict[str, Any]) -> list[Any]:
        checked.append(event["id"])
        return real(event)

    monkeypatch.setattr(verification, "validate_event", counting)
    send(applier, *events, registration)
    assert accepted_ids(ledger) == {registration["id"], *(e["id"] for e in events)}
    assert sorted(checked) == sorted({*checked}), "an event was checked twice"


def test_an_event_whose_keys_registration_the_ledger_refuses_in_the_same_batch_is_not_accepted(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    """The batch's own key events only let its messages be pre-checked early: when the ledger
    refuses the registration (here an equivocation of the root's chain), an event signed by that
    key is checked again against the ledger's keys, and waits for its key."""
    police, gp = Chain("police/avon-somerset"), Chain("gp/L85001")
    send(applier, partnership.register(police))
    fork = Chain(partnership.root.source, key=partnership.root.key)  # the root's sequence 1 again
    forged = fork.event(
        "agency.key.registered",
        {"agency": gp.source, "kid": gp.kid, "public_key": public_key_text(gp.key.public_key())},
        subject=gp.source,
        at=T0 - timedelta(days=1),
    )
    event = gp.event("gp.registered", {"person": "C-1", "practice": "L85001"})
    send(applier, forged, event)
    assert event["id"] not in accepted_ids(ledger)
    assert ("held", "unknown-key") in quarantined(ledger)
    assert ("quarantined", "equivocation") in quarantined(ledger)


def test_a_flag_changes_message_describes_its_evidence(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    """The gap-flags message carries, for each evidence event, what an email may say of it (the
    detail is now made only for the events a change names, not for the child's whole history)."""
    police = Chain("police/avon-somerset")
    incident = police.event("incident.reported", INCIDENT)
    send(applier, partnership.register(police), incident)
    with ledger.read() as session:
        messages = [json.loads(m) for m in session.scalars(select(FlagChangeRow.message))]
    assert messages
    for message in messages:
        assert [d["id"] for d in message["evidence_detail"]] == message["flag"]["evidence"]
    detail = next(d for m in messages for d in m["evidence_detail"] if d["id"] == incident["id"])
    assert (detail["type"], detail["source"]) == ("incident.reported", "police/avon-somerset")
    assert "INC-1" in json.dumps(detail["refs"])
