"""SQLite database files are private before SQLite opens them (see ``ledger.private_files``)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from ledger.private_files import FILE_MODE, private_directory, private_file
from ledger.store.turns import TURNS_SUFFIX

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", TURNS_SUFFIX)  # the last: ledger.store.turns


def private_sqlite(url: str) -> None:
    """Before a SQLite database is opened: a missing directory created 0700, a missing file
    created 0600 (SQLite then gives ``-wal``/``-shm`` the same mode), and the file and its
    companions refused if open to others. PostgreSQL and in-memory SQLite have no files here."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.parent.exists():
        private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        os.chmod(path, FILE_MODE)  # os.open's mode is masked by the umask (only ever narrower)
    except FileExistsError:
        pass  # it exists (perhaps another service created it a moment ago): checked below
    for candidate in (path, *(path.with_name(path.name + s) for s in SQLITE_COMPANIONS)):
        private_file(candidate)
