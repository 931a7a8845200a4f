"""Schema migrations: a database made by the previous release (0.1.0, whose schema is kept in
tests/fixtures as the DDL that release created) is refused by services until `sgledger db
upgrade`, after which it matches this release's models exactly; downgrade and upgrade again on
PostgreSQL too. A model change without a migration fails here."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select

from consumers.alerter.store import AlertBase
from ledger.store import schema
from ledger.store.ledger import Ledger
from sgledger.cli import cli
from tests.views.test_flag_concerns import flag
from views.flags import sync_flags
from views.models import FlagConcernRow

OLD_SCHEMA = Path(__file__).parent / "fixtures" / "schema-0.1.0.sqlite.sql"


def drift(url: str) -> list[str]:
    ledger = Ledger(url, check_schema=False)
    with ledger.engine.connect() as connection:
        return schema.drift(connection, [*ledger.metadata(), AlertBase.metadata])


def revision(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = schema.current_revision(connection)
    engine.dispose()
    return found


def test_a_fresh_database_is_created_current_and_without_drift(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    AlertBase.metadata.create_all(Ledger(url).engine)  # as the alerter does in the same database
    assert revision(url) == schema.head_revision()
    assert drift(url) == []


def test_a_previous_release_database_is_upgraded_to_exactly_this_schema(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.touch(mode=0o600)  # a database open to other users is refused (ledger.private_files)
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA.read_text())
        db.execute("INSERT INTO ledger_writer (id, generation) VALUES (1, 7)")
    url = f"sqlite:///{path}"
    assert revision(url) == schema.BASELINE
    if schema.head_revision() != schema.BASELINE:
        with pytest.raises(schema.SchemaOutdated, match="sgledger db upgrade"):
            Ledger(url)
    result = CliRunner().invoke(cli, ["--database-url", url, "--data-dir", str(tmp_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert revision(url) == schema.head_revision()
    assert drift(url) == []
    Ledger(url)  # services start again
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT generation FROM ledger_writer").fetchone() == (7,)  # data kept
    shown = CliRunner().invoke(cli, ["--database-url", url, "--data-dir", str(tmp_path), "db", "current"])
    assert f"database: {schema.head_revision()}" in shown.output


@pytest.mark.postgres
def test_downgrade_to_the_baseline_and_upgrade_again_on_postgresql(postgres_db: str) -> None:
    ledger = Ledger(postgres_db)
    AlertBase.metadata.create_all(ledger.engine)
    metadata = [*ledger.metadata(), AlertBase.metadata]
    with ledger.engine.begin() as connection:
        assert schema.drift(connection, metadata) == []
        schema.downgrade(connection, metadata, schema.BASELINE)
        assert schema.current_revision(connection) == schema.BASELINE
    with ledger.engine.begin() as connection:
        before, after = schema.upgrade(connection, metadata)
        assert (before, after) == (schema.BASELINE, schema.head_revision())
        assert schema.drift(connection, metadata) == []


def test_0006_back_fills_flag_concerns_as_the_projector_keeps_them(tmp_path: Path) -> None:
    """Flags written before 0006 get exactly the ``flag_concerns`` rows the projector would have
    written (My flags reads only that table, so a missed flag would vanish from its lead's list)."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with ledger.writer() as session:
        sync_flags(session, "C-1", [flag(1, ("gp/L1", "police/x")), flag(2, ("police/x",))], at, "e", {})
    with ledger.writer() as session:
        sync_flags(session, "C-1", [flag(1, ("gp/L1", "police/x"), acknowledged_by="local:a")], at, "f", {})

    def concerns() -> list[tuple[str, ...]]:
        with ledger.read() as session:
            return sorted(
                (r.flag_id, r.agency, r.tab, r.status, r.due.isoformat(), r.severity, r.rule)
                for r in session.scalars(select(FlagConcernRow))
            )

    kept = concerns()
    assert len(kept) == 5
    metadata = ledger.metadata()
    with ledger.engine.begin() as connection:
        schema.downgrade(connection, metadata, "0005")
        assert "flag_concerns" not in inspect(connection).get_table_names()
    with ledger.engine.begin() as connection:
        schema.upgrade(connection, metadata)
        assert schema.drift(connection, metadata) == []
    assert concerns() == kept
