"""``insert_rows`` (COPY on PostgreSQL, executemany on SQLite) stores exactly what an INSERT of
the same rows stores: times as UTCTime text, booleans, NULLs and defaults, inside the caller's
transaction (rolled back with it)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import PersistenceError
from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ledger.store.bulk import insert_rows, insert_values, update_rows
from ledger.store.ledger import Ledger
from ledger.store.types import UTCTime
from views.models import FlagChangeRow, FlagConcernRow, PersonRow

CONCERNS: Table = FlagConcernRow.__table__  # type: ignore[assignment]
CHANGES: Table = FlagChangeRow.__table__  # type: ignore[assignment]
PEOPLE: Table = PersonRow.__table__  # type: ignore[assignment]
T = datetime(2024, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=1)))  # a non-UTC offset


def _concern(flag: str, agency: str) -> dict[str, Any]:
    return {"flag_id": flag, "agency": agency, "tab": "open", "status": "open", "due": T,
            "severity": "high", "rule": "r"}  # fmt: skip


def _change(change_id: str, published: bool) -> dict[str, Any]:
    return {"change_id": change_id, "flag_id": "f", "change": "raised", "changed_at": T,
            "message": '{"a": "\\t\\n\\\\ é"}', "published": published}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path / 'bulk.db'}")
    return Ledger(request.getfixturevalue("postgres_db"))


def test_bulk_rows_read_back_as_inserted_rows_do(ledger: Ledger) -> None:
    with ledger.session() as session:
        insert_rows(session, CONCERNS, [_concern("a", "*"), _concern("a", "gp/L1")])
        session.execute(insert(CONCERNS), [_concern("b", "*"), _concern("b", "gp/L1")])
        insert_rows(session, CHANGES, [_change("c1", False), _change("c2", True)])
        session.execute(insert(CHANGES), [_change("c3", False), _change("c4", True)])
        insert_rows(session, CHANGES, [])
    with ledger.read() as session:  # as stored: plain SQL, no column types read them back
        concerns = {r[0] + r[1]: r[2:] for r in session.execute(text("SELECT * FROM flag_concerns"))}
        changes = {
            r.change_id: (r.changed_at, r.message, r.published)
            for r in session.execute(text("SELECT * FROM flag_changes"))
        }
        ids = session.scalars(text("SELECT id FROM flag_changes")).all()
    assert concerns["a*"] == concerns["b*"] and concerns["agp/L1"] == concerns["bgp/L1"]
    assert concerns["a*"][2] == "2024-03-31T22:30:00.000000Z"  # UTCTime's fixed-width UTC text
    assert changes["c1"] == changes["c3"] and changes["c2"] == changes["c4"]
    assert changes["c1"][1] == '{"a": "\\t\\n\\\\ é"}' and changes["c2"][2] in (True, 1)
    assert len(ids) == len(set(ids)) == 4  # defaults (the id sequence) taken by both paths


def test_values_given_bound_are_stored_as_given(ledger: Ledger) -> None:
    """A column named ``bound`` takes its values as the column's type would bind them (a
    verification worker makes the ledger index's UTCTime text): stored as binding them would
    store them, on both paths (the driver's executemany, COPY), and never bound twice."""
    text_due = UTCTime().process_bind_param(T, ledger.engine.dialect)
    with ledger.session() as session:
        insert_rows(session, CONCERNS, [_concern("a", "*")])
        insert_rows(session, CONCERNS, [_concern("b", "*") | {"due": text_due}], bound={"due"})
    with ledger.read() as session:
        due = {flag: due for flag, due in session.execute(text("SELECT flag_id, due FROM flag_concerns"))}
    assert due == {"a": text_due, "b": text_due}


def test_rows_given_as_tuples_are_stored_as_the_same_dicts_are(ledger: Ledger) -> None:
    """``insert_values`` takes rows as tuples of named columns: in the table's column order, in
    another order (put in the statement's), bound or not, one column or many; the rows stored
    are those ``insert_rows`` stores of the same values as dicts. A dict naming a column the
    table lacks is refused."""
    text_due = UTCTime().process_bind_param(T, ledger.engine.dialect)
    table_order = tuple(c.name for c in CONCERNS.columns)
    shuffled = ("rule", "due", "agency", "flag_id", "severity", "tab", "status")
    with ledger.session() as session:
        insert_rows(session, CONCERNS, [_concern("a", "*"), _concern("a", "gp/L1")])
        insert_values(session, CONCERNS, table_order, [tuple(_concern("b", a)[c] for c in table_order)
                                                       for a in ("*", "gp/L1")])  # fmt: skip
        insert_values(session, CONCERNS, shuffled, [tuple(_concern("c", a)[c] for c in shuffled)
                                                    for a in ("*", "gp/L1")])  # fmt: skip
        bound = [tuple((_concern("d", "*") | {"due": text_due})[c] for c in shuffled)]
        insert_values(session, CONCERNS, shuffled, bound, bound={"due"})
        change_columns = ("change_id", "flag_id", "change", "changed_at", "message", "published")
        insert_values(session, CHANGES, change_columns, [("c1", "f", "raised", T, "m", False)])
        with pytest.raises(ValueError, match="no column"):
            insert_rows(session, CONCERNS, [_concern("e", "*") | {"colour": "red"}])
    with ledger.read() as session:
        stored = {(r[0], r[1]): r[2:] for r in session.execute(text("SELECT * FROM flag_concerns"))}
        change = session.execute(text("SELECT changed_at, published FROM flag_changes")).one()
    for flag in "bc":
        assert {stored[(flag, a)] for a in ("*", "gp/L1")} == {stored[("a", a)] for a in ("*", "gp/L1")}
    assert stored[("d", "*")] == stored[("a", "*")] and len(stored) == 7
    assert tuple(change) in {(text_due, False), (text_due, 0)}


def test_bulk_rows_are_rolled_back_with_the_transaction(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.session() as session:
        insert_rows(session, CONCERNS, [_concern("a", "*")])
        raise RuntimeError("the batch failed after writing")
    with ledger.read() as session:
        assert session.execute(select(CONCERNS)).first() is None


def test_a_broken_constraint_is_sqlalchemys_error_as_an_insert_raises_it(ledger: Ledger) -> None:
    """The projector tells a database failure from a message's fault by SQLAlchemy's error
    classes: the driver's own errors (COPY, SQLite's executemany) arrive wrapped in them."""
    raised: list[Exception] = []
    with pytest.raises(PersistenceError), ledger.session() as session:  # the library's class outside
        try:
            insert_rows(session, CHANGES, [_change("c1", False), _change("c1", True)])
        except Exception as error:
            raised.append(error)
            raise
    assert isinstance(raised[0], IntegrityError), repr(raised[0])


def test_a_column_left_to_its_client_side_default_gets_it(ledger: Ledger) -> None:
    """SQLite's driver path cannot compute SQLAlchemy's per-row defaults: rows that leave such
    a column out go through SQLAlchemy's insert, and get the default."""
    row = _change("c1", False)
    del row["published"]  # default False, computed by SQLAlchemy
    if ledger.is_postgres:
        pytest.skip("COPY takes the columns it is given (callers give them all: see insert_rows)")
    with ledger.session() as session:
        insert_rows(session, CHANGES, [row])
    with ledger.read() as session:
        assert session.scalar(text("SELECT published FROM flag_changes")) in (False, 0)


def test_bulk_updates_store_what_an_update_executemany_stores(ledger: Ledger) -> None:
    """``update_rows`` (one UPDATE ... FROM unnest on PostgreSQL, the driver's executemany on
    SQLite) against SQLAlchemy's own update() executemany, on twin rows: times as UTCTime text,
    NULLs, booleans, a two-column key, only the rows named, and the later of two rows naming
    one row winning."""
    later = T + timedelta(days=1, microseconds=7)
    with ledger.session() as session:
        insert_rows(session, CONCERNS, [_concern(f, a) for f in ("a", "b", "c") for a in ("*", "gp/L1")])
        insert_rows(session, CHANGES, [_change("c1", False), _change("c2", False)])
        person = {
            "child": "C",
            "person": "P",
            "roles": "[]",
            "gp_practices": "[]",
            "age": 30,
            "care_leaver": True,
        }
        insert_rows(session, PEOPLE, [person])
    with ledger.session() as session:
        update_rows(
            session,
            CONCERNS,
            ["flag_id", "agency"],
            [
                {"flag_id": "a", "agency": "gp/L1", "tab": "resolved", "due": later},
                {"flag_id": "a", "agency": "*", "tab": "first", "due": T},
                {"flag_id": "a", "agency": "*", "tab": "acknowledged", "due": later},  # the later wins
            ],
        )
        where = (CONCERNS.c.flag_id == bindparam("k_flag")) & (CONCERNS.c.agency == bindparam("k_agency"))
        session.execute(
            update(CONCERNS).where(where),
            [
                {"k_flag": "b", "k_agency": "gp/L1", "tab": "resolved", "due": later},
                {"k_flag": "b", "k_agency": "*", "tab": "acknowledged", "due": later},
            ],
        )
        update_rows(session, CHANGES, ["change_id"], [{"change_id": "c1", "published": True, "message": "m"}])
        update_rows(
            session,
            PEOPLE,
            ["child", "person"],
            [{"child": "C", "person": "P", "age": None, "care_leaver": False}],
        )
    with ledger.read() as session:  # as stored: plain SQL, no column types read them back
        rows = {(r[0], r[1]): r[2:] for r in session.execute(text("SELECT * FROM flag_concerns"))}
        changes = {
            r.change_id: (r.message, r.published) for r in session.execute(text("SELECT * FROM flag_changes"))
        }
        people = [tuple(r) for r in session.execute(text("SELECT age, care_leaver FROM view_people"))]
    assert rows[("a", "gp/L1")] == rows[("b", "gp/L1")] and rows[("a", "*")] == rows[("b", "*")]
    assert rows[("a", "*")][:3] == ("acknowledged", "open", "2024-04-01T22:30:00.000007Z")
    assert rows[("c", "*")][0] == rows[("c", "gp/L1")][0] == "open"  # not named: not changed
    assert changes["c1"][0] == "m" and changes["c1"][1] in (True, 1) and changes["c2"][1] in (False, 0)
    assert people == [(None, False)] or people == [(None, 0)]
