"""`audit replay --as-of` gives exactly the flags the scenario expects at three points, the same
as ``flags_as_of`` on the live ledger; replaying as of the projector's own time reproduces the
live views (determinism), and `audit diff` says so."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from consumers.auditor.diff import diff
from consumers.auditor.replay import replay
from ledger.store.ledger import KEY_EVENT_TYPES, Acceptance, Ledger
from ledger.store.models import AcceptedEvent
from ledger.timeutil import parse_time
from tests.audit.conftest import Story
from views.queries import child_ids, flags_as_of


def open_flags(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT payload FROM flags WHERE status = 'open'")).scalars().all()
    engine.dispose()
    return [json.loads(row) for row in rows]


def matches(wanted: Mapping[str, Any], flag: Mapping[str, Any]) -> bool:
    return all(flag.get(key) == value for key, value in wanted.items())


@pytest.mark.parametrize("point", [0, 3, 6])
def test_replay_as_of_gives_the_flags_the_scenario_expects(
    charlie: Story, tmp_path: Path, point: int
) -> None:
    expectation = charlie.scenario.expect[point]
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = replay(charlie.ledger, charlie.root, expectation.as_of, url, workers=1)
    assert result.failed == 0 and result.children > 0
    replayed = open_flags(url)
    for wanted in expectation.open:
        assert any(matches(wanted, f) for f in replayed), (wanted, replayed)
    for unwanted in expectation.not_open:
        assert not any(matches(unwanted, f) for f in replayed), (unwanted, replayed)
    live = {f.id for f in flags_as_of(charlie.ledger, charlie.root, expectation.as_of) if f.is_open}
    assert {f["id"] for f in replayed} == live


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_as_of_the_live_evaluation_time_is_identical_to_the_live_views(
    charlie: Story, tmp_path: Path, workers: int
) -> None:
    """The live views were last evaluated at some time T; a replay as of T must equal them, in
    one process or with the children split across two (each child written by exactly one)."""
    engine = create_engine(charlie.settings.database_url)
    with engine.connect() as conn:
        evaluated = conn.execute(text("SELECT max(evaluated_at) FROM view_children")).scalar()
    engine.dispose()
    as_of = evaluated if isinstance(evaluated, datetime) else parse_time(str(evaluated).replace(" ", "T"))
    url = f"sqlite:///{tmp_path / 'now.db'}"
    result = replay(charlie.ledger, charlie.root, as_of, url, workers=workers)
    assert diff(url, charlie.settings.database_url) == []
    with charlie.ledger.read() as session:
        assert result.children == len(child_ids(session))


def test_a_prefix_replay_copies_only_what_was_recorded_by_then(charlie: Story, tmp_path: Path) -> None:
    """As of an early time: every event recorded by then and every key event, in ledger order,
    and nothing recorded later (the views of those are the scenario's, tested above)."""
    early = charlie.scenario.expect[0].as_of
    url = f"sqlite:///{tmp_path / 'early.db'}"
    result = replay(charlie.ledger, charlie.root, early, url, workers=1)
    with charlie.ledger.read() as session:
        rows = session.execute(
            select(AcceptedEvent.event_id, AcceptedEvent.type, AcceptedEvent.recordedtime).order_by(
                AcceptedEvent.position
            )
        ).all()
    wanted = [event_id for event_id, kind, recorded in rows if recorded <= early or kind in KEY_EVENT_TYPES]
    assert 0 < len(wanted) < len(rows)  # a real prefix, not the whole story
    later = {event_id for event_id, kind, _ in rows if event_id not in wanted}
    assert {kind for event_id, kind, _ in rows if event_id in later} - set(KEY_EVENT_TYPES)
    target = Ledger(url)
    with target.read() as session:
        copied = session.scalars(select(AcceptedEvent.event_id).order_by(AcceptedEvent.position)).all()
    assert list(copied) == wanted and result.events == len(wanted)


def test_diff_lists_what_differs(charlie: Story, tmp_path: Path) -> None:
    early = charlie.scenario.expect[0].as_of
    url = f"sqlite:///{tmp_path / 'early.db'}"
    replay(charlie.ledger, charlie.root, early, url, workers=1)
    differences = diff(url, charlie.settings.database_url)
    assert differences
    assert {d["table"] for d in differences} >= {"ledger_accepted", "view_children"}
    missing_early = [d for d in differences if d["table"] == "ledger_accepted" and d["a"] is None]
    assert missing_early  # events recorded after the early time exist only in the live ledger


def test_replay_refuses_a_database_that_already_holds_a_ledger(charlie: Story) -> None:
    """Without the URL in the message: it may carry the database's password (the command
    prefixes the target with the password masked)."""
    url = charlie.settings.database_url
    with pytest.raises(ValueError, match="already holds a ledger") as refused:
        replay(charlie.ledger, charlie.root, charlie.scenario.expect[0].as_of, url)
    assert url not in str(refused.value) and "sqlite" not in str(refused.value)


@pytest.mark.postgres
def test_a_replay_into_postgresql_equals_the_sqlite_live_views(charlie: Story, postgres_db: str) -> None:
    """Determinism across databases: the same history and time give the same rows."""
    engine = create_engine(charlie.settings.database_url)
    with engine.connect() as conn:
        evaluated = conn.execute(text("SELECT max(evaluated_at) FROM view_children")).scalar()
    engine.dispose()
    replay(charlie.ledger, charlie.root, parse_time(str(evaluated)), postgres_db, workers=2)
    differences = diff(postgres_db, charlie.settings.database_url)
    assert differences == [], differences


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_replayed_ledger_keeps_the_positions_takes_later_events_after_them_and_holds_no_flag_history(
    charlie: Story, tmp_path: Path, request: pytest.FixtureRequest, backend: str, workers: int
) -> None:
    """The copy loads events at their source positions (COPY on PostgreSQL, in two processes
    with ``workers=2``, small spans so that both take several): the ledger it leaves must
    record the next event after them, as the projector would. And one evaluation at T has no
    lifecycle to record: the replay writes flags, never flag changes."""
    url = f"sqlite:///{tmp_path / 'r.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db")
    early = charlie.scenario.expect[0].as_of
    with charlie.ledger.read() as session:
        rows = session.execute(
            select(
                AcceptedEvent.position, AcceptedEvent.type, AcceptedEvent.recordedtime, AcceptedEvent.envelope
            )
        ).all()
    wanted = sorted(p for p, kind, recorded, _ in rows if recorded <= early or kind in KEY_EVENT_TYPES)
    later = next(envelope for _, _, recorded, envelope in rows if recorded > early)
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr("consumers.auditor.replay.SPAN", 7)
    result = replay(charlie.ledger, charlie.root, early, url, workers=workers)
    target = Ledger(url)
    with target.writer() as session:
        target.record(session, [Acceptance(json.loads(later), later.encode("utf-8"))], early)
    with target.read() as session:
        positions = session.scalars(select(AcceptedEvent.position).order_by(AcceptedEvent.position)).all()
        flags = session.execute(text("SELECT count(*) FROM flags")).scalar()
        changes = session.execute(text("SELECT count(*) FROM flag_changes")).scalar()
    assert result.events == len(wanted) and list(positions) == [*wanted, wanted[-1] + 1]
    assert flags and changes == 0
