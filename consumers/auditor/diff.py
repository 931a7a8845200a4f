"""Compare the derived tables of two databases (a replay and the live views, or two replays).

Wall-clock columns (when a row was written or evaluated, how many times a flag changed) differ
between any two runs and say nothing about what the partnership knew; everything else must be
equal for equal histories and equal as-of times (DESIGN.md invariant 4).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from ledger.store.ledger import normalise_url

QUERIES = {
    "ledger_accepted": "SELECT event_id, source, sequence, subject, type, digest FROM ledger_accepted",
    "view_children": "SELECT child, dob, event_count, gp_practices, schools, next_due FROM view_children",
    "view_people": "SELECT child, person, roles, lives_with_child, parental_responsibility, care_leaver, "
    "substance_misuse, mental_health, age, gp_practices FROM view_people",
    "view_agencies": "SELECT child, agency, aware_since, via FROM view_agencies",
    "flags": "SELECT id, rule, version, child, severity, status, due FROM flags",
    "flag_concerns": "SELECT flag_id, agency, tab, status, due, severity, rule FROM flag_concerns",
}
KEYS = {
    "ledger_accepted": 1,
    "view_children": 1,
    "view_people": 2,
    "view_agencies": 2,
    "flags": 1,
    "flag_concerns": 2,
}


def _neutral(value: Any) -> str | None:
    """Values as text, booleans as 0/1: SQLite and PostgreSQL then compare equal (times are
    already fixed-width UTC text on both, see ledger.store.types.UTCTime)."""
    if value is None:
        return None
    return str(int(value)) if isinstance(value, bool) else str(value)


def snapshot(url: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Each table's rows keyed by primary key, with dialect-neutral values."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            tables = {}
            for table, query in QUERIES.items():
                rows = [tuple(_neutral(v) for v in row) for row in connection.execute(text(query))]
                tables[table] = {row[: KEYS[table]]: row for row in rows}
            return tables
    finally:
        engine.dispose()


def diff(a_url: str, b_url: str) -> list[dict[str, Any]]:
    """Rows only in A, only in B, or different in the two; empty when the views agree."""
    a, b = snapshot(a_url), snapshot(b_url)
    differences: list[dict[str, Any]] = []
    for table in QUERIES:
        for key in sorted(set(a[table]) | set(b[table]), key=str):
            left, right = a[table].get(key), b[table].get(key)
            if left != right:
                differences.append({"table": table, "key": list(key), "a": left, "b": right})
    return differences
