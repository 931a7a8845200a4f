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
tuples of already-bound values, through ``exec_driver_sql``, in the INSERT SQLAlchemy compiles
for those columns. SQLAlchemy Core's executemany of an ``insert()`` binds each value of each row
through the column's type in Python (~23 against ~8 us a ledger index row; a quarter of the
child stage's writes on a replay, issue 13); here each column's bind processor is the same one
SQLAlchemy uses, applied once per distinct value for the ``TypeDecorator`` columns (a batch's
evaluation time, a rule's due times) and only where the type has one.

Columns a row does not give take their defaults: the database's on both backends (a sequence, a
server default); on SQLite a client-side default (which SQLAlchemy computes per row) makes the
rows go through SQLAlchemy's own executemany instead. COPY takes only the database's defaults:
callers give every column that has a client-side one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, exc, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, bound: Collection[str] = ()
) -> None:
    """Insert ``rows`` (each with the same keys, a subset of ``table``'s columns; the others
    take their defaults) into ``table`` in ``session``'s transaction. ``bound``: columns whose
    values are given as the column's type binds them already (a ``UTCTime``'s text, made where
    there was CPU to spare: ``ledger.stored.stored_times``), passed on as they are."""
    if not rows:
        return
    names = tuple(c.name for c in table.columns if c.name in rows[0])
    if len(names) != len(rows[0]):
        raise ValueError(f"{table.name} has no column {sorted(set(rows[0]) - set(names))}")
    insert_values(session, table, names, list(map(_values(names), rows)), bound=bound)


def insert_values(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    bound: Collection[str] = (),
) -> None:
    """``insert_rows`` for rows made as tuples of ``columns``' values, in that order: no dict
    per row to make and take apart again (the child projection writes ~3.5 flag concern rows
    per event of a replay, issue 13, tenth round). Cheapest in the table's column order."""
    if not rows:
        return
    connection = session.connection()
    names = tuple(columns)
    if connection.dialect.name != "postgresql":
        sqlite_insert, order = _insert_statement(table, names, connection.dialect)
        if order is None:
            if bound:  # SQLAlchemy's executemany binds every value again
                raise ValueError(f"{table.name}: bound values, but a column has a client-side default")
            session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
        else:
            if order != names:
                rows = list(map(_values([names.index(name) for name in order]), rows))
            connection.exec_driver_sql(sqlite_insert, _bound(connection, table, order, rows, given=bound))
        return
    from psycopg import sql  # only here: psycopg is the [postgres] extra, SQLite needs none

    types = [table.c[name].type for name in names]
    # what an INSERT would bind for a TypeDecorator column; every other type here (text,
    # integers, booleans, UUIDs, bytes) psycopg adapts itself
    converted = [
        (index, _memoised(partial(kind.process_bind_param, dialect=connection.dialect)))
        for index, kind in enumerate(types)
        if isinstance(kind, TypeDecorator) and names[index] not in bound
    ]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = connection.connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's connection
    with _wrapped(connection, table), raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            if converted:
                line = list(row)
                for index, convert in converted:
                    line[index] = convert(line[index])
                copy.write_row(line)
            else:
                copy.write_row(row)


def _values(names: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values for ``names`` (keys of a dict, or indexes of a tuple), in that order, as
    one tuple (``itemgetter`` returns a bare value, not a 1-tuple, for one name)."""
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return itemgetter(*names)


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
    """The driver's errors during a COPY as SQLAlchemy's (``OperationalError``, ``IntegrityError`` ...), as
    SQLAlchemy raises them for its own statements: callers tell a database failure (retry the
    batch) from a fault of one message by those classes (``consumers.projector.applier``)."""
    base = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except base as error:
        raise exc.DBAPIError.instance(
            f"insert into {table.name}", None, error, base, dialect=connection.dialect
        ) from error


def _memoised(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` (what binding a ``TypeDecorator`` column's value takes: UTCTime's fixed-width
    text) applied once per distinct value: a batch repeats the same few (its evaluation time,
    the due times of a rule). A dict's lookup: a value seen before is found in C, with no
    Python call (``map`` over a column, ``_bound``)."""
    return _Memo(convert).__getitem__


class _Memo(dict[Any, Any]):
    """Value -> ``convert(value)``, made on the first lookup of each value."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, value: Any) -> Any:
        made = self[value] = self.convert(value)
        return made


def update_rows(session: Session, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """Set the other columns of each of ``rows`` (each with the same keys: the ``keys`` columns
    that name the row, and the columns to set) in ``table``, in ``session``'s transaction. Two
    rows naming one row: the later wins, as in an executemany.

    Issue 13: an executemany of an ``update()`` is one UPDATE per row on both backends (psycopg
    pipelines them, each parsed and executed by the server) with every value bound in Python by
    SQLAlchemy; the child stage updates every child's ``view_children`` row on each batch. On
    PostgreSQL the rows go as one array per column into one ``UPDATE ... FROM unnest(...)``; on
    SQLite as bound tuples to the driver's executemany (the sqlite3 module loops in C)."""
    if not rows:
        return
    latest = {tuple(row[k] for k in keys): row for row in rows}  # the later wins
    rows = list(latest.values())
    connection = session.connection()
    dialect = connection.dialect
    names = [name for name in rows[0] if name not in keys]
    columns = [*names, *keys]
    ordered = _values(columns)
    bound = _bound(connection, table, columns, [ordered(row) for row in rows])
    quote = dialect.identifier_preparer.quote
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name != "postgresql":  # SQLite
        statement = "UPDATE {} SET {} WHERE {}".format(
            target,
            ", ".join(f"{quote(name)} = ?" for name in names),
            " AND ".join(f"{quote(key)} = ?" for key in keys),
        )
        connection.exec_driver_sql(statement, bound)
        return
    casts = [table.c[name].type.compile(dialect=dialect) for name in columns]
    statement = "UPDATE {} AS t SET {} FROM unnest({}) AS v({}) WHERE {}".format(
        target,
        ", ".join(f"{quote(name)} = v.{quote(name)}" for name in names),
        ", ".join(f"%s::{cast}[]" for cast in casts),
        ", ".join(quote(name) for name in columns),
        " AND ".join(f"t.{quote(key)} = v.{quote(key)}" for key in keys),
    )
    connection.exec_driver_sql(statement, tuple(list(column) for column in zip(*bound, strict=True)))


def _bound(
    connection: Connection,
    table: Table,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    given: Collection[str] = (),
) -> list[tuple[Any, ...]]:
    """``rows`` (tuples in the order of ``names``) with each value bound as SQLAlchemy would
    bind it: the column type's bind processor, where it has one (once per distinct value for a
    ``TypeDecorator``: UTCTime's text), except in the columns ``given`` bound already."""
    dialect = connection.dialect
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        if name in given:
            continue
        kind = table.c[name].type
        processor = kind.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((index, _memoised(processor) if isinstance(kind, TypeDecorator) else processor))
    if not processors:
        return list(rows)  # a list: the driver's executemany (a tuple would be one row's values)
    # Column by column (transposed and back in C): a list per row and a Python loop per value
    # were most of binding a child batch's ~35,000 flag, change and concern rows (issue 13).
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for index, process in processors:
        columns[index] = list(map(process, columns[index]))
    return list(zip(*columns, strict=True))
