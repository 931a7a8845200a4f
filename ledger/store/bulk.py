"""Insert many new rows into one table, the cheapest way the database offers.

Issue 13: on PostgreSQL, SQLAlchemy's executemany through psycopg 3 sends one INSERT per row
(pipelined, but each row parsed, bound and executed on the server and built by psycopg in
Python): writing a replayed child's ~150 flags, their change rows and ~340 concern rows was two
thirds of the child's time, the backend's share included. ``COPY ... FROM STDIN`` sends the
rows as one stream that the server loads without a statement per row; psycopg's C extension
formats them. The rows go into the caller's transaction on the session's own connection, so a
COPY is committed or rolled back with everything else the transaction writes, and a row that
breaks a constraint fails the transaction exactly as an INSERT would.

SQLite keeps the executemany (the sqlite3 module loops in C; there is no COPY).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys, a subset of ``table``'s columns; the others
    take their defaults) into ``table`` in ``session``'s transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    from psycopg import sql  # only here: psycopg is the [postgres] extra, SQLite needs none

    names = list(rows[0])
    converters = [_converter(table.c[name].type, connection.dialect) for name in names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = connection.connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([convert(row[name]) for name, convert in zip(names, converters, strict=True)])


def _converter(column_type: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """What an INSERT would bind for a value of ``column_type``: a ``TypeDecorator`` (UTCTime's
    fixed-width text) converts it; every other type here (text, integers, booleans) psycopg
    adapts itself. A batch repeats the same few times (its evaluation time, the due times of
    a rule), so each distinct value is converted once."""
    if not isinstance(column_type, TypeDecorator):
        return _same
    made: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        if value not in made:
            made[value] = column_type.process_bind_param(value, dialect)
        return made[value]

    return convert


def _same(value: Any) -> Any:
    return value
