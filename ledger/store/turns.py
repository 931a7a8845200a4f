"""SQLite's one write lock, handed from writer to writer in turn (issue 13).

SQLite has one write lock per database. A writer that finds it taken waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms between tries, so
it wakes up to 100 ms after the lock came free; by then a writer that never slept has taken it
again. In the stages layout that writer is intake, whose next batch is verified while it accepts
the last one: each child shard waited 1.1-1.3 s of a 12.4 s run (docs/notes/end-to-end.md).

A writer here takes the lock in two steps:

1. **its turn**: an exclusive ``flock`` on a file beside the database (``<database>-writers``),
   held only while it waits for SQLite's lock and released as soon as it has it;
2. **SQLite's lock**: ``BEGIN IMMEDIATE``, tried again every millisecond (the busy timeout is 0
   for that statement) instead of after SQLite's growing sleeps.

A writer that has just committed and wants the lock again must first take its turn, which a
waiting writer holds until it has SQLite's lock: the lock passes to the waiter within about a
millisecond, and writers alternate instead of the one that never sleeps taking it again and
again. The turn is tried every millisecond too (a blocking ``flock`` cannot give up after the
busy timeout). Both steps together give up after the connection's busy timeout (60 s,
``ledger.store.ledger.normalise_url``) with SQLite's own "database is locked", as a writer
waiting in the busy handler did.

Why this cannot deadlock: a writer waits for its turn only with no transaction open (it holds
no SQLite lock), and the turn's holder waits only for SQLite's lock, whose holder never waits
for a turn: it is inside its transaction. Writers that do not take turns (`sgledger db`, the
alerter's tables, a transaction that read before it wrote) still wait in SQLite's busy handler,
as before; a turn never waits for them except through SQLite's lock. The file lock is the
kernel's: it goes with its process (a SIGKILL included) and needs no cleaning up. The file is
created 0600 like the database (``ledger.private_files``) and holds nothing.

The transaction itself is what it was: its first statement took the write lock (the writer's
``UPDATE writer_lock`` in a deferred transaction), now ``BEGIN IMMEDIATE`` takes it at the
start, then that same statement runs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import exc
from sqlalchemy.engine import Connection

from ledger.private_files import FILE_MODE

TURNS_SUFFIX = "-writers"
RETRY_S = 0.001  # between tries of the turn and of SQLite's lock
_SQLITE_BUSY = 5  # the primary result code; BUSY_SNAPSHOT and the like share it


def turns_file(database: str) -> Path:
    """The turns file of a SQLite database file."""
    return Path(database + TURNS_SUFFIX)


def take_write_lock(connection: Connection, turns: Path) -> float:
    """Begin ``connection``'s transaction (none may be open) holding SQLite's write lock, after
    taking this writer's turn; returns the seconds it waited."""
    started = time.monotonic()
    timeout_ms = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
    deadline = started + timeout_ms / 1000
    descriptor = os.open(turns, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        if not _retried(lambda: _try_turn(descriptor), deadline):
            raise exc.OperationalError(
                "take the ledger's write turn",
                None,
                sqlite3.OperationalError(f"database is locked: no write turn in {timeout_ms / 1000:g} s"),
            )
        connection.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            _retried(lambda: _try_begin(connection, last=time.monotonic() >= deadline), deadline)
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {timeout_ms}")
    finally:
        os.close(descriptor)  # gives the turn to the next writer
    return time.monotonic() - started


def _retried(attempt: Callable[[], bool], deadline: float) -> bool:
    """``attempt`` until it succeeds or ``deadline`` (monotonic) has passed, one try at least and
    one more at the deadline; whether it succeeded."""
    while not attempt():
        if time.monotonic() >= deadline:
            return attempt()
        time.sleep(RETRY_S)
    return True


def _try_turn(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _try_begin(connection: Connection, *, last: bool) -> bool:
    """``BEGIN IMMEDIATE``; False if another connection holds the write lock, unless this is the
    ``last`` try: then its "database is locked" is raised, as SQLAlchemy raises it."""
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except exc.OperationalError as error:
        code = getattr(error.orig, "sqlite_errorcode", None)
        if last or code is None or code & 0xFF != _SQLITE_BUSY:
            raise
        return False
    return True
