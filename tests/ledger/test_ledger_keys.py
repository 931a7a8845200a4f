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
