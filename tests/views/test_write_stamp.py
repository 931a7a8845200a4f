"""A projector remembers the view and flag rows it last wrote for a child and compares the next
evaluation with that memory instead of reading them back, only while the child's write stamp
(``view_children.stamp``) is still the one it wrote (issue 13). Two projectors writing one child
alternately (a standby, a moved shard) must each notice the other's writes: their rows equal
those of a single projector, on SQLite and PostgreSQL. And the memory is really used: a batch of
a remembered child reads none of its flag or view rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text

from bench.growth import T0, Signers, life_event
from consumers.projector.applier import Applier, Message
from ledger.store import schema
from ledger.store.ledger import Ledger
from views.projection import ChildHistories

CHILDREN = ("C-00000", "C-00001")
COMPARED = {
    "flags": "SELECT id, child, status, due, payload, changes FROM flags ORDER BY id",
    "flag_changes": "SELECT change_id, flag_id, change, message FROM flag_changes ORDER BY change_id",
    "flag_concerns": "SELECT flag_id, agency, tab, status, due FROM flag_concerns ORDER BY flag_id, agency",
    "view_children": "SELECT child, dob, event_count, gp_practices, schools, next_due FROM view_children "
    "ORDER BY child",
    "view_people": "SELECT * FROM view_people ORDER BY child, person",
    "view_agencies": "SELECT * FROM view_agencies ORDER BY child, agency",
}


def history(events: int) -> tuple[Signers, list[list[dict[str, Any]]]]:
    """Batches: the key registrations, then one event per child per batch (as live traffic
    arrives), a mix that raises and resolves flags as it goes."""
    signers = Signers.fresh()
    batches = [list(signers.registrations())]
    at = T0
    for n in range(events):
        batch = []
        for child in CHILDREN:
            at += timedelta(hours=7)  # deadlines pass between batches: flags are raised late too
            batch.append(life_event(signers, child, n, at))
        batches.append(batch)
    return signers, batches


def clock_of(batch: list[dict[str, Any]]) -> datetime:
    return max(datetime.fromisoformat(e["recordedtime"]) for e in batch) + timedelta(minutes=1)


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = {name: [tuple(r) for r in connection.execute(text(sql))] for name, sql in COMPARED.items()}
    engine.dispose()
    return found


def project(
    url: str, signers: Signers, batches: list[list[dict[str, Any]]], processes: int
) -> dict[str, list[tuple[Any, ...]]]:
    """Apply ``batches`` in turn through ``processes`` projectors (each with its own memory, as
    separate processes have), the i-th batch through projector i mod ``processes``."""
    ledger = Ledger(url)
    now = [T0]
    appliers = [Applier(ledger, signers.root_key(), clock=lambda: now[0]) for _ in range(processes)]
    for i, batch in enumerate(batches):
        now[0] = clock_of(batch)
        stats = appliers[i % processes].apply([Message(json.dumps(e).encode()) for e in batch])
        assert stats.accepted == len(batch), stats
    ledger.engine.dispose()
    return rows(url)


def test_two_projectors_writing_the_same_children_alternately_notice_each_others_writes(
    live_url: str, tmp_path: Path
) -> None:
    signers, batches = history(40)
    alone = project(f"sqlite:///{tmp_path / 'alone.db'}", signers, batches, 1)
    assert len(alone["flags"]) > 20 and any(r[2] == "resolved" for r in alone["flags"])  # flags moved
    assert len(alone["flag_changes"]) > len(alone["flags"])
    assert project(live_url, signers, batches, 2) == alone


@contextmanager
def reads_of(ledger: Ledger, tables: tuple[str, ...]) -> Iterator[list[tuple[str, ...]]]:
    """The parameters of the SELECT statements run on ``ledger`` that read any of ``tables``."""
    seen: list[tuple[str, ...]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and any(f"FROM {t}" in statement for t in tables):
            seen.append(tuple(parameters))

    event.listen(ledger.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(ledger.engine, "before_cursor_execute", note)


def test_a_remembered_child_is_compared_in_memory_and_a_forgotten_one_read(tmp_path: Path) -> None:
    signers, batches = history(11)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = [T0]
    applier = Applier(ledger, signers.root_key(), clock=lambda: now[0])
    stored = ("flags", "view_people", "view_agencies")

    def send(batch: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        now[0] = clock_of(batch)
        with reads_of(ledger, stored) as seen:
            assert applier.apply([Message(json.dumps(e).encode()) for e in batch]).accepted == len(batch)
        return seen

    for batch in batches[:-5]:
        send(batch)
    assert send(batches[-5]) == []  # both children remembered: none of their rows read back
    applier.histories = ChildHistories(children=1)  # as after a restart, with room for one child
    assert send(batches[-4]) == [CHILDREN] * len(stored)  # nothing remembered: both read
    read = send(batches[-3])  # the one child remembered is not read, the other is
    assert len(read) == len(stored) and len({child for params in read for child in params}) == 1
    applier.histories = ChildHistories(rows=1_000)  # less than one child's rows
    send(batches[-2])
    assert send(batches[-1]) == [CHILDREN] * len(stored)  # neither kept
    ledger.engine.dispose()


def test_an_existing_database_upgraded_by_0009_is_read_in_full_and_ends_the_same(tmp_path: Path) -> None:
    """Rows written before the stamp existed get stamp 0, which no write sets: a projector that
    remembers rows (here: from before a downgrade and upgrade) reads them again."""
    signers, batches = history(12)
    alone = project(f"sqlite:///{tmp_path / 'alone.db'}", signers, batches, 1)
    url = f"sqlite:///{tmp_path / 'upgraded.db'}"
    ledger = Ledger(url)
    now = [T0]
    applier = Applier(ledger, signers.root_key(), clock=lambda: now[0])

    def send(batch: list[dict[str, Any]]) -> None:
        now[0] = clock_of(batch)
        assert applier.apply([Message(json.dumps(e).encode()) for e in batch]).accepted == len(batch)

    for batch in batches[:6]:
        send(batch)
    metadata = ledger.metadata()
    with ledger.engine.begin() as connection:
        schema.downgrade(connection, metadata, "0008")
        assert "stamp" not in {c["name"] for c in inspect(connection).get_columns("view_children")}
    with ledger.engine.begin() as connection:
        assert schema.upgrade(connection, metadata) == ("0008", schema.head_revision())
        assert schema.drift(connection, metadata) == []
        assert set(connection.execute(text("SELECT stamp FROM view_children")).scalars()) == {0}
    for batch in batches[6:]:
        send(batch)
    ledger.engine.dispose()
    assert rows(url) == alone
