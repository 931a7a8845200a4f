"""``Ledger.record`` writes ``ledger_events`` rows itself (explicit ids, states made without a
domain event per event, COPY or the driver's executemany): the rows must be exactly what the
eventsourcing library writes and reads back, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from ledger.canonical import canonical_json
from ledger.store.ledger import Acceptance, EventAccepted, Ledger, stream_id
from ledger.store.models import AcceptedEvent
from ledger.store.types import UTCTime
from ledger.stored import envelope_json, stored_times
from ledger.timeutil import parse_time
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership

ACCEPTED_AT = datetime(2024, 3, 5, 10, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path / 'record.db'}")
    return Ledger(request.getfixturevalue("postgres_db"))


def _events() -> list[dict[str, Any]]:
    """Every shape the envelope takes: key events, nested data, text beyond ASCII (and beyond
    the Basic Multilingual Plane), escapes; parsed back from bytes as the projector has them."""
    partnership, police, csc = Partnership(), Chain("police/avon-somerset"), Chain("csc/somerset")
    signed = [partnership.register(police), partnership.register(csc)]
    signed.append(police.event("incident.reported", INCIDENT))
    signed.append(csc.event("child.registered", {"dob": "2023-11-01", "mother": 'Zoë "Ó" Ní 𝔘'}))
    signed.append(police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-\\2\t\u2028"}))
    signed.append(csc.event("child.registered", {"dob": "2023-11-02"}, subject="C-2", at=T0 + timedelta(1)))
    # times in another zone, with microseconds: stored as UTC text, to the microsecond
    east = timezone(timedelta(hours=5, minutes=30))
    at, recorded = datetime(2024, 1, 8, 2, 0, 0, 1, tzinfo=east), datetime(2024, 1, 8, 3, 0, tzinfo=east)
    signed.append(
        police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-3"}, at=at, recorded=recorded)
    )
    return [json.loads(canonical_json(e)) for e in signed]


def _mapper_row(ledger: Ledger, event: dict[str, Any], at: datetime) -> tuple[Any, ...]:
    stored = ledger.app.mapper.to_stored_event(
        EventAccepted(
            originator_id=stream_id(event["source"]),
            originator_version=event["sequence"],
            timestamp=at,
            envelope=dict(event),
        )
    )
    return stored.originator_id, stored.originator_version, stored.topic, stored.state


def _made_by_worker(event: dict[str, Any]) -> Acceptance:
    """As the applier builds it from a verification worker's forms (``verifier.check``)."""
    return Acceptance(event, canonical_json(event), False, envelope_json(event), stored_times(event))


@pytest.mark.parametrize("accept", [Acceptance.of, _made_by_worker], ids=["recorder-made", "worker-made"])
def test_recorded_rows_are_the_mappers_and_read_back_through_the_library(
    ledger: Ledger, accept: Callable[[dict[str, Any]], Acceptance]
) -> None:
    """Both ways an event's stored envelope is made (by ``record``, or by the verification
    worker with its verdict) write the mapper's bytes."""
    events = _events()
    other_zone = ACCEPTED_AT.astimezone(timezone(timedelta(hours=-5)))  # written as given
    with ledger.writer() as session:
        ledger.record(session, [accept(e) for e in events[:2]], ACCEPTED_AT)
    with ledger.writer() as session:
        ledger.record(session, [accept(e) for e in events[2:]], other_zone)
    stamps = [ACCEPTED_AT] * 2 + [other_zone] * (len(events) - 2)
    table = ledger.recorder.events_record_cls.__table__
    with ledger.read() as session:
        rows = session.execute(select(table).order_by(table.c.id)).all()
        index = {i: p for i, p in session.execute(select(AcceptedEvent.event_id, AcceptedEvent.position))}
    assert [r.id for r in rows] == list(range(1, len(events) + 1))
    assert [index[e["id"]] for e in events] == [r.id for r in rows]
    for row, event, at in zip(rows, events, stamps, strict=True):
        written = (row.originator_id, row.originator_version, row.topic, bytes(row.state))
        assert written == _mapper_row(ledger, event, at)  # byte for byte
    notifications = ledger.recorder.select_notifications(1, 100)
    assert [n.id for n in notifications] == [r.id for r in rows]
    for notification, event, at in zip(notifications, events, stamps, strict=True):
        domain = ledger.app.mapper.to_domain_event(notification)
        assert isinstance(domain, EventAccepted)
        assert domain.envelope == event and domain.timestamp == at
        assert list(domain.envelope) == list(event)  # member order too
        assert domain.originator_id == stream_id(event["source"])
        assert domain.originator_version == event["sequence"]
    # the index rows' times: the text the column type binds, read back as the times, whoever
    # made the text (the worker's forms or ``record``), and the batch's acceptance time
    bind = UTCTime().process_bind_param
    columns = "event_id, time, recordedtime, accepted_at"
    with ledger.read() as session:
        indexed = {
            r.event_id: (r.time, r.recordedtime, r.accepted_at)
            for r in session.scalars(select(AcceptedEvent))
        }
        texts = session.execute(text(f"SELECT {columns} FROM ledger_accepted")).all()
    dialect = ledger.engine.dialect
    stored = {event_id: tuple(times) for event_id, *times in texts}
    for event, at in zip(events, stamps, strict=True):
        times = parse_time(event["time"]), parse_time(event["recordedtime"]), at
        assert indexed[event["id"]] == times
        assert stored[event["id"]] == tuple(bind(t, dialect) for t in times)


def test_the_librarys_own_insert_continues_after_recorded_ids(ledger: Ledger) -> None:
    """The ids ``record`` takes are the ones the column's default would have given: an insert
    by the library afterwards (its sequence on PostgreSQL, SQLite's next rowid) comes next,
    without a conflict."""
    events = _events()
    with ledger.writer() as session:
        ledger.record(session, [Acceptance.of(e) for e in events[:-1]], ACCEPTED_AT)
    stored = _mapper_row(ledger, events[-1], ACCEPTED_AT)
    from eventsourcing.persistence import StoredEvent

    ids = ledger.recorder.insert_events([StoredEvent(*stored)])
    with ledger.read() as session:
        table = ledger.recorder.events_record_cls.__table__
        last = session.execute(select(table).order_by(table.c.id.desc())).first()
    assert last is not None and last.id == len(events)
    assert ids in (None, [len(events)])
    with ledger.writer() as session:  # and record continues after the library's row
        more = Chain("gp/L85001")
        event = json.loads(canonical_json(more.event("gp.registered", {"person": "C-1", "practice": "L1"})))
        ledger.record(session, [Acceptance.of(event)], ACCEPTED_AT)
    with ledger.read() as session:
        position = session.scalar(select(AcceptedEvent.position).where(AcceptedEvent.event_id == event["id"]))
    assert position == len(events) + 1


def test_digests_by_id_finds_every_recorded_id_across_statements_and_no_other(ledger: Ledger) -> None:
    """The batch's duplicate check (``digests_by_id``) goes to the driver in chunks of 500 ids
    on SQLite and as one array on PostgreSQL: every recorded id is found with its digest
    wherever it falls (first, middle, a partial last chunk), ids never recorded are not, and
    asking for nothing asks the database nothing."""
    police = Chain("police/avon-somerset")
    data = [{**INCIDENT, "incident_ref": f"INC-{n}"} for n in range(1203)]
    events = [json.loads(canonical_json(police.event("incident.reported", d))) for d in data]
    accepted = [Acceptance.of(e) for e in events]
    with ledger.writer() as session:
        ledger.record(session, accepted, ACCEPTED_AT)
    absent = [f"00000000-0000-4000-8000-{n:012d}" for n in range(700)]
    asked = [a.event["id"] for a in accepted] + absent
    with ledger.read() as session:
        found = ledger.digests_by_id(session, reversed(asked))  # any order, any iterable
        assert ledger.digests_by_id(session, []) == {}
        one = ledger.digests_by_id(session, [events[-1]["id"], absent[0]])
    assert found == {a.event["id"]: a.digest for a in accepted}
    assert one == {events[-1]["id"]: accepted[-1].digest}


def test_a_transcoder_writing_json_otherwise_is_refused_not_followed(ledger: Ledger) -> None:
    """``ledger.stored`` copies the library transcoder's JSON settings; if they ever differ, the
    ledger stops rather than storing states the library would not have written."""
    transcoder = ledger.app.mapper.transcoder
    transcoder.encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=r"unlike ledger\.stored"), ledger.writer() as session:
        ledger.record(session, [Acceptance.of(_events()[0])], ACCEPTED_AT)
