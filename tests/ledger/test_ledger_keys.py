"""Ledger.key_registry on a real SQLite file: it costs the same however large the ledger, and a
reused fold never outlives the transaction that wrote its key events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.store.ledger import Acceptance, Ledger
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.engine.dispose()


def record(ledger: Ledger, *events: dict[str, object]) -> None:
    with ledger.writer() as session:
        ledger.record(session, [Acceptance.of(e) for e in events], T0)


def test_the_registry_follows_key_events_recorded_between_calls(ledger: Ledger) -> None:
    partnership, police, gp = Partnership(), Chain("police/avon-somerset"), Chain("gp/L85001")
    record(ledger, partnership.register(police))
    with ledger.read() as session:
        assert ledger.key_registry(session, partnership.root_key).get(police.kid) is not None
        assert ledger.key_registry(session, partnership.root_key).get(gp.kid) is None
    record(ledger, police.event("incident.reported", INCIDENT), partnership.register(gp))
    record(ledger, partnership.revoke(police, T0 + timedelta(days=2)))
    with ledger.read() as session:
        registry = ledger.key_registry(session, partnership.root_key)
    assert registry.get(gp.kid) is not None
    police_key = registry.get(police.kid)
    assert police_key is not None and police_key.revoked_from == T0 + timedelta(days=2)


def test_a_rolled_back_registration_does_not_stay_in_the_registry(ledger: Ledger) -> None:
    partnership, police = Partnership(), Chain("police/avon-somerset")
    with pytest.raises(RuntimeError), ledger.writer() as session:
        ledger.record(session, [Acceptance.of(partnership.register(police))], T0)
        assert ledger.key_registry(session, partnership.root_key).get(police.kid) is not None
        raise RuntimeError("the batch failed after its key event was written")
    with ledger.read() as session:
        assert ledger.key_registry(session, partnership.root_key).get(police.kid) is None


def test_a_registry_handed_out_is_not_changed_by_its_user(ledger: Ledger) -> None:
    """The applier folds the batch's own key events into the registry it was given; a batch
    that then fails must not leave them in the next batch's registry."""
    partnership, police = Partnership(), Chain("police/avon-somerset")
    with ledger.read() as session:
        ledger.key_registry(session, partnership.root_key).apply(partnership.register(police))
        assert ledger.key_registry(session, partnership.root_key).get(police.kid) is None


def test_key_events_are_found_through_an_index_not_a_scan(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT position, event_id FROM ledger_accepted "
                    "WHERE type IN ('agency.key.registered', 'agency.key.revoked') ORDER BY position"
                )
            )
        )
    assert "USING COVERING INDEX ledger_accepted_type" in plan, plan


def test_open_chain_holes_are_found_through_an_index_not_a_scan(ledger: Ledger) -> None:
    """Each projector batch reads the open holes; the table grows with the ledger."""
    with ledger.engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                text("EXPLAIN QUERY PLAN SELECT * FROM ledger_holes WHERE filled_at IS NULL")
            )
        )
    assert "USING INDEX ledger_holes_filled" in plan, plan


def _steps_of_highest_sequences(ledger: Ledger, sources: list[str]) -> tuple[dict[str, int], int]:
    """What ``highest_sequences`` answers and how many SQLite VM instructions it ran (the
    progress handler is called once per instruction): work, counted exactly, not timed."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    with ledger.read() as session:
        driver = session.connection().connection.driver_connection
        assert driver is not None
        driver.set_progress_handler(count, 1)
        try:
            return ledger.highest_sequences(session, sources), steps[0]
        finally:
            driver.set_progress_handler(None, 1)


def test_the_highest_sequence_of_a_chain_costs_the_same_however_long_the_chain(ledger: Ledger) -> None:
    """Asked on every batch: it was a grouped max() that read the whole chain (112 ms per batch
    for an agency with 1,000,000 events); now one seek per source."""
    partnership, police, gp = Partnership(), Chain("police/avon-somerset"), Chain("gp/L85001")
    record(ledger, partnership.register(police), partnership.register(gp))
    record(ledger, gp.event("incident.reported", INCIDENT))
    record(ledger, *(police.event("incident.reported", INCIDENT) for _ in range(10)))
    sources = ["police/avon-somerset", "gp/L85001", "school/none-yet"]
    short, short_steps = _steps_of_highest_sequences(ledger, sources)
    record(ledger, *(police.event("incident.reported", INCIDENT) for _ in range(1000)))
    long, long_steps = _steps_of_highest_sequences(ledger, sources)
    assert short == {"police/avon-somerset": 10, "gp/L85001": 1}  # a source with none is left out
    assert long == {"police/avon-somerset": 1010, "gp/L85001": 1}
    assert long_steps == short_steps, (short_steps, long_steps)


def test_the_highest_sequences_on_postgresql(postgres_db: str) -> None:
    """The same statement (a UNION ALL of scalar subqueries) on the other backend."""
    ledger = Ledger(postgres_db)
    try:
        partnership, police, gp = Partnership(), Chain("police/avon-somerset"), Chain("gp/L85001")
        record(ledger, partnership.register(police), partnership.register(gp))
        record(ledger, *(police.event("incident.reported", INCIDENT) for _ in range(3)))
        with ledger.read() as session:
            sources = ["police/avon-somerset", "gp/L85001", "partnership/test"]
            assert ledger.highest_sequences(session, sources) == {
                "police/avon-somerset": 3,
                "partnership/test": 2,
            }
            assert ledger.highest_sequences(session, ["police/avon-somerset"]) == {"police/avon-somerset": 3}
    finally:
        ledger.engine.dispose()
