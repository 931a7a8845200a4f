"""Insert many new rows into one table, the cheapest way the database offers.

Issue 13: on PostgreSQL, SQLAlchemy's executemany through psycopg 3 sends one INSERT per row
(pipelined, but each row parsed, bound and executed on the server and built by psycopg in
Python): writing a replayed child's ~150 flags, their change rows and ~340 concern rows was two
thirds of the child's time, the backend's share included. ``COPY ... FROM STDIN`` sends the
rows as one stream that the server loads without a statement per row; psycopg's C extension
formats them. The rows go into the caller's transaction on the session's own connection, so a
COPY is committed or rolled back with everything else the transaction writes, and a row that
breaks a constraint fails the transaction exactly as an INSERT would.

SQLite has no COPY: the rows go to the sqlite3 module's ``executemany`` (a loop in C), but
straight from the driver's connection, each value converted by the bind processor SQLAlchemy
itself would apply to its column (``_sqlite_executemany``): SQLAlchemy's own executemany spent
more in Python per row (building, processing and checking each parameter set) than SQLite spent
storing it (issue 13: ~23 against ~8 us a ledger index row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, exc, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys, a subset of ``table``'s columns; the others
    take their defaults) into ``table`` in ``session``'s transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        if connection.dialect.name != "sqlite" or not _sqlite_executemany(connection, table, rows):
            session.execute(insert(table), rows)
        return
    from psycopg import sql  # only here: psycopg is the [postgres] extra, SQLite needs none

    names = list(rows[0])
    values = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    types = [table.c[name].type for name in names]
    converted = [
        (index, _converter(kind, connection.dialect))
        for index, kind in enumerate(types)
        if isinstance(kind, TypeDecorator)
    ]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = connection.connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's connection
    with _wrapped(connection, table), raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            line = list(values(row))
            for index, convert in converted:
                line[index] = convert(line[index])
            copy.write_row(line)


def _sqlite_executemany(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """``INSERT`` the rows with the driver's ``executemany``, in the statement SQLAlchemy
    compiles for these columns and with the values its bind processors make (what its own
    executemany sends, without its per-row work in Python). False, having done nothing, when
    the statement needs more than the rows give (a column's client-side default, which
    SQLAlchemy computes per row): the caller then lets SQLAlchemy insert them."""
    dialect = connection.dialect
    statement, order = _insert_statement(table, tuple(rows[0]), dialect)
    if order is None:
        return False
    values = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
    processors = [
        (index, _memoised(processor) if isinstance(kind, TypeDecorator) else processor)
        for index, name in enumerate(order)
        if (processor := (kind := table.c[name].type).bind_processor(dialect)) is not None
    ]
    if processors:
        lines: list[Any] = []
        for row in rows:
            line = list(values(row))
            for index, process in processors:
                line[index] = process(line[index])
            lines.append(line)
    else:
        lines = [values(row) for row in rows]
    raw = connection.connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's connection
    with _wrapped(connection, table):
        raw.executemany(statement, lines)
    return True


@lru_cache(maxsize=256)
def _insert_statement(
    table: Table, names: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[str, ...] | None]:
    """The ``INSERT`` SQLAlchemy compiles for these columns and the order of its parameters;
    None for the order when the statement needs values the rows do not give (a client-side
    default). Kept: compiling costs ~150 us, a tenth of inserting a few rows, and the same few
    statements come back every batch."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    order = compiled.positiontup
    if order is None or sorted(order) != sorted(names):
        return compiled.string, None
    return compiled.string, tuple(order)


@contextmanager
def _wrapped(connection: Connection, table: Table) -> Iterator[None]:
    """The driver's errors as SQLAlchemy's (``OperationalError``, ``IntegrityError`` ...), as
    SQLAlchemy raises them for its own statements: callers tell a database failure (retry the
    batch) from a fault of one message by those classes (``consumers.projector.verifier``)."""
    base = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except base as error:
        raise exc.DBAPIError.instance(
            f"insert into {table.name}", None, error, base, dialect=connection.dialect
        ) from error


def _memoised(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``TypeDecorator``'s bind processor, run once per distinct value of a call (as
    ``_converter``: a batch repeats its time and its agencies' stream ids)."""
    made: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        if value not in made:
            made[value] = processor(value)
        return made[value]

    return process


def _converter(column_type: TypeDecorator[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What an INSERT would bind for a value of a ``TypeDecorator`` column (UTCTime's
    fixed-width text); every other type here (text, integers, booleans, UUIDs, bytes) psycopg
    adapts itself. A batch repeats the same few times (its evaluation time, the due times of
    a rule), so each distinct value is converted once."""
    made: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        if value not in made:
            made[value] = column_type.process_bind_param(value, dialect)
        return made[value]

    return convert
