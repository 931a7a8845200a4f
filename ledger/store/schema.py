"""The partnership database's schema and its migrations (Alembic).

One database holds the ledger (the eventsourcing tables and the ledger's index), the views,
flags and the alerter's bookkeeping. A fresh database is created from the models and stamped
with the current revision; an existing one must be at that revision, or services refuse to start
and say to run `sgledger db upgrade` (a service that silently altered tables under its peers
during a rolling deploy would be worse than one that stops). Databases created by release 0.1.0
carry no revision: upgrading stamps them with the baseline first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of release 0.1.0, which had no migrations
VERSION_TABLE = "alembic_version"


class SchemaOutdated(RuntimeError):
    """The database was made by another release; the message says what to run."""


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at; ``BASELINE`` for an unversioned 0.1.0 database, None
    for an empty one."""
    tables = set(inspect(connection).get_table_names())
    if not tables:
        return None
    if VERSION_TABLE not in tables:
        return BASELINE
    return MigrationContext.configure(connection).get_current_revision()


def stamp_head(connection: Connection) -> None:
    """Mark a database just created from the models as current."""
    MigrationContext.configure(connection).stamp(ScriptDirectory.from_config(_config()), "head")


def require_current(connection: Connection) -> None:
    found, wanted = current_revision(connection), head_revision()
    if found is not None and found != wanted:
        raise SchemaOutdated(
            f"the database schema is at revision {found} and this release needs {wanted}: stop the "
            "services and run `sgledger db upgrade` (or the deployment's init job) once"
        )


def upgrade(
    connection: Connection, metadata: list[MetaData], revision: str = "head"
) -> tuple[str | None, str]:
    """Bring the database to ``revision``; returns (from, to). Runs in the caller's transaction."""
    before = current_revision(connection)
    config = _config(connection, metadata)
    if before == BASELINE and VERSION_TABLE not in inspect(connection).get_table_names():
        command.stamp(config, BASELINE)
    command.upgrade(config, revision)
    return before, current_revision(connection) or ""


def downgrade(connection: Connection, metadata: list[MetaData], revision: str) -> None:
    """Back to ``revision`` (e.g. to roll a release back); the tests check every migration both ways."""
    command.downgrade(_config(connection, metadata), revision)


def drift(connection: Connection, metadata: list[MetaData]) -> list[str]:
    """How the database differs from the models (tables, columns, indexes, types), one line
    each: empty for a database that a migration or ``create_all`` made and nobody altered."""
    # Types are not compared: the eventsourcing extension's UUID type reads back as CHAR on
    # SQLite, a difference that is not one.
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    combined = MetaData()
    for meta in metadata:
        for table in meta.tables.values():
            table.to_metadata(combined)
    return [_describe(diff) for diff in compare_metadata(context, combined)]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(_describe(d) for d in diff)
    kind, *rest = diff
    named = [getattr(item, "name", None) for item in rest]
    table = next((getattr(item, "table", None) for item in rest if hasattr(item, "table")), None)
    parts = [str(kind)]
    if table is not None and getattr(table, "name", None):
        parts.append(str(table.name))
    parts += [str(n) for n in named if n and n != getattr(table, "name", None)]
    return " ".join(parts)


def _config(connection: Connection | None = None, metadata: list[MetaData] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    return config
