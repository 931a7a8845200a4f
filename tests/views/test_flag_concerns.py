"""``flag_concerns`` follows the flags through their lifecycle, in the projector's transaction,
and My flags reads each agency's tabs from it (a real SQLite ledger, the real ``sync_flags``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from ledger.store.ledger import Ledger
from policies.base import Severity
from policies.engine import Flag
from views.flags import concern_rows, sync_flags
from views.models import EVERY_AGENCY, FlagConcernRow, FlagRow
from views.my_flags import flags_page

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def flag(n: int, concerns: tuple[str, ...], **changes: object) -> Flag:
    fields: dict[str, object] = {
        "id": f"{n:08d}-0000-5000-8000-000000000000",
        "rule": "gp-not-notified",
        "version": 1,
        "child": "C-1",
        "severity": Severity("high"),
        "title": "GP practice not told",
        "due": T + timedelta(hours=n),
        "evidence": (f"ev-{n}",),
        "concerns": concerns,
        "source": "CSPR Child Charlie 2.14",
        "explanation": "...",
        "action": "...",
        "detail": f"gp/L1 not told of INC-{n}",
        "status": "open",
        **changes,
    }
    return Flag(**fields)  # type: ignore[arg-type]


def concerns_of(ledger: Ledger) -> dict[tuple[str, str], str]:
    with ledger.read() as session:
        return {(r.flag_id[:8], r.agency): r.tab for r in session.scalars(select(FlagConcernRow))}


def test_flag_concerns_follow_raise_acknowledge_and_resolve(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    both, police = ("gp/L1", "police/x"), ("police/x",)
    with ledger.writer() as session:
        sync_flags(session, "C-1", [flag(1, both), flag(2, police)], T, "ev-1", {})
    assert concerns_of(ledger) == {
        ("00000001", "gp/L1"): "open",
        ("00000001", "police/x"): "open",
        ("00000001", EVERY_AGENCY): "open",
        ("00000002", "police/x"): "open",
        ("00000002", EVERY_AGENCY): "open",
    }
    with ledger.writer() as session:  # flag 1 acknowledged; flag 2 no longer found: resolved
        sync_flags(session, "C-1", [flag(1, both, acknowledged_by="local:a@b.example")], T, "ev-9", {})
    assert concerns_of(ledger) == {
        ("00000001", "gp/L1"): "acknowledged",
        ("00000001", "police/x"): "acknowledged",
        ("00000001", EVERY_AGENCY): "acknowledged",
        ("00000002", "police/x"): "resolved",
        ("00000002", EVERY_AGENCY): "resolved",
    }
    with ledger.writer() as session:  # an evaluation that changes nothing writes nothing
        sync_flags(session, "C-1", [flag(1, both, acknowledged_by="local:a@b.example")], T, "ev-10", {})
    with ledger.read() as session:
        assert [f["id"][:8] for f in flags_page(session, "police/x", "acknowledged")[0]] == ["00000001"]
        assert [f["id"][:8] for f in flags_page(session, "police/x", "resolved")[0]] == ["00000002"]
        assert flags_page(session, "gp/L1", "resolved")[0] == []
        assert [f["id"][:8] for f in flags_page(session, None, "resolved")[0]] == ["00000002"]
        # the table says exactly what the flags say
        expected = sorted(
            (r["flag_id"], r["agency"], r["tab"], r["status"], r["due"])
            for f in session.scalars(select(FlagRow))
            for r in concern_rows(f.id, f.rule, f.severity, f.status, f.due, json.loads(f.payload))
        )
        stored = sorted(
            (r.flag_id, r.agency, r.tab, r.status, r.due) for r in session.scalars(select(FlagConcernRow))
        )
        assert stored == expected


def test_my_flags_orders_by_due_then_severity(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    police = ("police/x",)
    same_due = {"due": T + timedelta(hours=5)}
    flags = [
        flag(3, police, severity=Severity("medium"), **same_due),
        flag(4, police, severity=Severity("high"), **same_due),
        flag(1, police),
    ]
    with ledger.writer() as session:
        sync_flags(session, "C-1", flags, T, "ev-1", {})
    with ledger.read() as session:
        page, more = flags_page(session, "police/x", "open", limit=2)
        assert [f["id"][:8] for f in page] == ["00000001", "00000004"] and more
        page, more = flags_page(session, "police/x", "open", offset=2, limit=2)
        assert [f["id"][:8] for f in page] == ["00000003"] and not more


def test_a_rewritten_flag_announces_only_a_lifecycle_change(tmp_path: Path) -> None:
    """A stored flag rewritten with other evidence or detail (no lifecycle change) gets its new
    payload, its concern rows and no change row; acknowledged, then moved to another agency,
    it announces the acknowledgement once, the message's flag ``json.dumps`` of the flag with
    sorted keys (the alerter's email), and its concern rows follow both rewrites."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    police, gp = ("police/x",), ("gp/L1",)
    steps = [
        flag(1, police),
        flag(1, police, detail="gp/L1 not told of INC-1 (again)", evidence=("ev-1", "ev-7")),
        flag(1, police, detail="gp/L1 not told of INC-1 (again)", evidence=("ev-1", "ev-7"),
             acknowledged_by="local:a@b.example"),
        flag(1, gp, detail="gp/L1 not told of INC-1 (again)", evidence=("ev-1", "ev-7"),
             acknowledged_by="local:a@b.example"),
    ]  # fmt: skip
    announced = []
    for step in steps:
        with ledger.writer() as session:
            changes = sync_flags(session, "C-1", [step], T, "ev-9", {})
            announced.append([(c.change, c.row["message"]) for c in changes])
        with ledger.read() as session:
            stored = session.scalars(select(FlagRow)).one()
            assert stored.payload == json.dumps(step.to_json())
            rows = sorted((r.agency, r.tab) for r in session.scalars(select(FlagConcernRow)))
        tab = "acknowledged" if step.acknowledged_by else "open"
        assert rows == sorted((a, tab) for a in (*step.concerns, EVERY_AGENCY))
    assert [[kind for kind, _ in step] for step in announced] == [["raised"], [], ["acknowledged"], []]
    message = json.loads(announced[2][0][1])
    assert announced[2][0][1] == json.dumps(message, sort_keys=True)
    assert message["flag"] == steps[2].to_json()
