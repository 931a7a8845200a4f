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

Two honest limits: flags are derived as of now, so a child whose deadline passed after the live
projector last swept differs for a good reason (its findings say so rather than calling it an
edit); and the replay holds an event the live projector accepted over a sequence hole (its
predecessor never arrives), so such an event's rows are reported.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from consumers.auditor.diff import QUERIES, diff
from consumers.auditor.findings import Finding
from consumers.auditor.replay import replay
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from views.models import ChildRow


def check_views(
    ledger: Ledger, root: RootKey, live_url: str, scratch: Path, as_of: datetime | None = None
) -> list[Finding]:
    """One finding per row that the ledger does not produce as stored (``scratch``: an empty
    directory for the rebuilt database)."""
    when = as_of or datetime.now(UTC)
    into = f"sqlite:///{scratch / 'views-from-ledger.sqlite'}"
    replay(ledger, root, when, into)
    with ledger.read() as session:  # children the live projector has not re-evaluated since a deadline
        overdue = set(session.scalars(select(ChildRow.child).where(ChildRow.next_due <= when)))
    findings = []
    for difference in diff(into, live_url):
        sentence = _sentence(difference)
        if _child_of(difference) in overdue:
            sentence += (
                " (or not yet re-evaluated: a deadline of this child passed since the projector last "
                "swept; run the projector and verify again)"
            )
        findings.append(Finding("views", sentence))
    return findings


def _child_of(difference: dict[str, Any]) -> str | None:
    """The child a differing row belongs to (every compared view table except the ledger's index
    has the child first, flags have it fourth)."""
    row = difference["a"] or difference["b"]
    table = difference["table"]
    if table == "flags":
        return str(row[3]) if row[3] is not None else None
    return None if table == "ledger_accepted" else str(row[0])


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
