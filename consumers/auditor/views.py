"""`audit verify --views`: rebuild every view and flag from the ledger and name each stored row
that differs.

The views and flags are derived data: anyone who can write to the database can edit a flag's
status or delete a child's row, and no signature covers them. The ledger can be checked (its
signatures, chains and checkpoints); so the views are checked by deriving them again from it
(``replay`` as of now into a scratch database, the projector's own code) and comparing row by
row (``diff``, which already leaves out wall-clock columns).

The caller records the access before the replay and has it projected; the replay then reads a
ledger that already holds that ``access.recorded`` event, so it is not reported as a difference
(the false difference `audit replay --as-of` plus `audit diff` shows, because its as-of time is
taken before its own access is recorded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.auditor.diff import QUERIES, diff
from consumers.auditor.findings import Finding
from consumers.auditor.replay import replay
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger


def check_views(
    ledger: Ledger, root: RootKey, live_url: str, scratch: Path, as_of: datetime | None = None
) -> list[Finding]:
    """One finding per row that the ledger does not produce as stored (``scratch``: an empty
    directory for the rebuilt database)."""
    into = f"sqlite:///{scratch / 'views-from-ledger.sqlite'}"
    replay(ledger, root, as_of or datetime.now(UTC), into)
    return [Finding("views", _sentence(d)) for d in diff(into, live_url)]


def _columns(table: str) -> list[str]:
    """The compared columns of ``table``, from the query ``diff`` runs (one definition)."""
    selected = QUERIES[table].removeprefix("SELECT ").split(" FROM ")[0]
    return [c.strip() for c in selected.split(",")]


def _sentence(difference: dict[str, Any]) -> str:
    table, key, derived, stored = difference["table"], difference["key"], difference["a"], difference["b"]
    name = f"{table} {'/'.join(str(k) for k in key)}"
    if stored is None:
        return f"{name}: missing from the database (the ledger gives {list(derived)}): the row was deleted"
    if derived is None:
        return f"{name}: in the database ({list(stored)}) but not produced by the ledger: the row was added"
    changed = [
        f"{column} is {s!r} where the ledger gives {d!r}"
        for column, s, d in zip(_columns(table), stored, derived, strict=True)
        if s != d
    ]
    return f"{name}: {', '.join(changed)}: the row was edited"
