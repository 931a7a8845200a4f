"""Insert many new rows into one table, the cheapest way the database offers.

Issue 13: on PostgreSQL, SQLAlchemy's executemany through psycopg 3 sends one INSERT per row
(pipelined, but each row parsed, bound and executed on the server and built by psycopg in
Python): writing a replayed child's ~150 flags, their change rows and ~340 concern rows was two
thirds of the child's time, the backend's share included. ``COPY ... FROM STDIN`` sends the
rows as one stream that the server loads without a statement per row; psycopg's C extension
formats them. The rows go into the caller's transaction on the session's own connection, so a
COPY is committed or rolled back with everything else the transaction writes, and a row that
breaks a constraint fails the transaction exactly as an INSERT would.

SQLite has no COPY: the rows go to the sqlite3 module's ``executemany`` (it loops in C) as
tuples of already-bound values, through ``exec_driver_sql``. SQLAlchemy Core's executemany of
an ``insert()`` binds each value of each row through the column's type in Python (a quarter of
the child stage's writes on a replay, issue 13); here each column's bind processor is the same
one SQLAlchemy uses, applied once per distinct value for the ``TypeDecorator`` columns (a
batch's evaluation time, a rule's due times) and only where the type has one.

Columns a row does not give take the database's defaults on both backends (a sequence, a
server default), not SQLAlchemy's Python-side ones: callers give every column that has one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys, a subset of ``table``'s columns; the others
    take their defaults) into ``table`` in ``session``'s transaction."""
    if not rows:
        return
    connection = session.connection()
    names = list(rows[0])
    values = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    if connection.dialect.name != "postgresql":
        _executemany(connection, table, names, [values(row) for row in rows])  # SQLite
        return
    from psycopg import sql  # only here: psycopg is the [postgres] extra, SQLite needs none

    types = [table.c[name].type for name in names]
    # what an INSERT would bind for a TypeDecorator column; every other type here (text,
    # integers, booleans, UUIDs, bytes) psycopg adapts itself
    converted = [
        (index, _memoised(partial(kind.process_bind_param, dialect=connection.dialect)))
        for index, kind in enumerate(types)
        if isinstance(kind, TypeDecorator)
    ]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = connection.connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            line = list(values(row))
            for index, convert in converted:
                line[index] = convert(line[index])
            copy.write_row(line)


def _executemany(connection: Connection, table: Table, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    """One INSERT of ``rows`` (tuples in the order of ``names``) through the driver's executemany,
    each value bound as SQLAlchemy would bind it."""
    dialect = connection.dialect
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        kind = table.c[name].type
        processor = kind.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            memoised = isinstance(kind, TypeDecorator)
            processors.append((index, _memoised(processor) if memoised else processor))
    if processors:
        lines = [list(row) for row in rows]
        for index, process in processors:
            for line in lines:
                line[index] = process(line[index])
        rows = [tuple(line) for line in lines]
    quote = dialect.identifier_preparer.quote
    statement = "INSERT INTO {} ({}) VALUES ({})".format(
        dialect.identifier_preparer.format_table(table),
        ", ".join(quote(name) for name in names),
        ", ".join("?" * len(names)),
    )
    connection.exec_driver_sql(statement, rows)


def _memoised(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` (what binding a ``TypeDecorator`` column's value takes: UTCTime's fixed-width
    text) applied once per distinct value: a batch repeats the same few (its evaluation time,
    the due times of a rule)."""
    made: dict[Any, Any] = {}

    def memo(value: Any) -> Any:
        if value not in made:
            made[value] = convert(value)
        return made[value]

    return memo
