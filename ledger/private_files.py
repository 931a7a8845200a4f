"""Private by default: state directories 0700, databases and keys 0600 (issue 9 item 4).

Every child's record is in these files; a 0644 ``ledger.sqlite`` in a 0755 directory let any
local user read it without leaving an access record. The rule, in one place:

- what this process creates is created private (directories 0700, files 0600, whatever the
  umask): a SQLite file is created here, empty, before SQLite opens it, because SQLite gives its
  ``-wal`` and ``-shm`` files the mode of the database file;
- what already exists and is open to group or others is refused at start with one line that
  names the file and the ``chmod`` that fixes it. Not fixed silently: a loose mode on existing
  data means it may already have been read, and the person running the service should know (and
  may have set it on purpose, e.g. for a backup group: then they decide).

Only files and directories, never SQL: ``ledger.store.private.private_sqlite`` applies it to a
database URL before a store opens it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


class NotPrivate(Exception):
    """State readable or writable by other local users; ``str`` says how to fix it."""

    def __init__(self, path: Path, mode: int, expected: int) -> None:
        self.path, self.mode = path, mode
        self.fix = f"chmod {expected:o} {path}"
        super().__init__(
            f"{path} is open to other local users (mode {mode:04o}); it holds safeguarding records "
            f"or keys: `{self.fix}` (and check who may have read it), then start again"
        )


def private_directory(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700, or refuse an existing one open to others.

    Each missing parent is made private too, not only ``path``: the key store makes
    DATA_DIR/keys before anything has made DATA_DIR, and a DATA_DIR left with the umask's 0755
    was refused by the next command (`keys init` stopped half-way on a fresh machine)."""
    for directory in [*reversed(path.parents), path]:
        if directory.exists():
            continue
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # another process made it in between: judged below as existing
            continue
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is masked by the umask
    _refuse_if_open(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Refuse an existing ``path`` open to others (a missing one is fine)."""
    if path.exists():
        _refuse_if_open(path, FILE_MODE)
    return path


def _refuse_if_open(path: Path, expected: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise NotPrivate(path, mode, expected)
