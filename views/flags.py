"""Keep the flags table in step with the latest evaluation and log each lifecycle change.

The evaluation is the truth; this module only notices what changed since the last one and writes
a change row for it (raised, acknowledged, resolved, dismissed, reopened). A flag that was open
and is no longer found is resolved "by the data changing", naming the event that changed it.
A flag row is written only when its payload, status or due time changed, so ``updated_at`` is
when the flag last changed, not when it was last evaluated (``view_children.evaluated_at``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ledger.timeutil import format_time
from policies.engine import FLAG_NAMESPACE, Flag
from views.models import EVERY_AGENCY, FlagChangeRow, FlagConcernRow, FlagRow
from views.my_flags import flag_tab


def sync_flags(
    session: Session,
    child: str | None,
    flags: Sequence[Flag],
    now: datetime,
    trigger: str | None,
    evidence_detail: Mapping[str, Mapping[str, Any]],
    rules: Sequence[str] | None = None,
) -> list[FlagChangeRow]:
    """Apply one evaluation of ``child`` (None: partnership-wide integrity flags).

    ``rules`` limits which stored flags the evaluation speaks for (integrity flags and child
    rules are evaluated separately); ``trigger`` is the event that caused the evaluation.
    """
    query = select(FlagRow).where(FlagRow.child.is_(None) if child is None else FlagRow.child == child)
    if rules is not None:
        query = query.where(FlagRow.rule.in_(rules))
    stored = {row.id: row for row in session.scalars(query)}
    changes: list[FlagChangeRow] = []
    written: list[tuple[FlagRow, Mapping[str, Any], bool]] = []  # (row, payload, new) for flag_concerns
    for flag in flags:
        payload = flag.to_json()
        row = stored.pop(flag.id, None)
        if row is None:
            row = FlagRow(
                id=flag.id,
                rule=flag.rule,
                version=flag.version,
                child=child,
                severity=str(flag.severity),
                status=flag.status,
                due=flag.due,
                payload=json.dumps(payload),
                raised_at=now,
                updated_at=now,
                changes=0,
            )
            session.add(row)
            written.append((row, payload, True))
            first = {"open": "raised", "resolved": "resolved", "dismissed": "dismissed"}
            changes.append(_change(row, first[flag.status], payload, now, evidence_detail))
            continue
        text = json.dumps(payload)
        if text == row.payload and row.status == flag.status and row.due == flag.due:
            continue  # unchanged: most of a child's flags on most evaluations, so write nothing
        change = _transition(json.loads(row.payload), payload)
        row.payload, row.status, row.due, row.updated_at = text, flag.status, flag.due, now
        written.append((row, payload, False))
        if change is not None:
            changes.append(_change(row, change, payload, now, evidence_detail))
    for row in stored.values():
        if row.status != "open":
            continue
        payload = json.loads(row.payload)
        payload.update(status="resolved", resolved_by=trigger, resolved_at=format_time(now))
        payload["detail"] = (payload.get("detail") or "") + " (resolved: the data changed)"
        row.payload, row.status, row.updated_at = json.dumps(payload), "resolved", now
        written.append((row, payload, False))
        changes.append(_change(row, "resolved", payload, now, evidence_detail))
    session.add_all(changes)
    _keep_concerns(session, written)
    return changes


def concern_rows(
    flag_id: str, rule: str, severity: str, status: str, due: datetime, payload: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ``flag_concerns`` rows of one flag: one per agency it concerns, and the partnership's.
    Also what migration 0006 back-fills existing flags with."""
    tab = flag_tab(dict(payload))
    agencies = sorted({*payload.get("concerns", ()), EVERY_AGENCY})
    fields = {"tab": tab, "status": status, "due": due, "severity": severity, "rule": rule}
    return [{"flag_id": flag_id, "agency": a, **fields} for a in agencies]


def _keep_concerns(session: Session, written: Sequence[tuple[FlagRow, Mapping[str, Any], bool]]) -> None:
    """Rewrite the ``flag_concerns`` rows of the flags just written: at most two statements per
    evaluation, none when nothing changed. Core statements, executed at once, so they never wait
    on (or race) the ORM's pending flag rows."""
    if not written:
        return
    changed = [row.id for row, _, new in written if not new]
    if changed:
        session.execute(delete(FlagConcernRow).where(FlagConcernRow.flag_id.in_(changed)))
    rows = [
        r
        for row, payload, _ in written
        for r in concern_rows(row.id, row.rule, row.severity, row.status, row.due, payload)
    ]
    session.execute(insert(FlagConcernRow), rows)


def _transition(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    before, after = previous["status"], current["status"]
    if before != after:
        return "reopened" if after == "open" else after
    if after == "open" and current.get("acknowledged_by") and not previous.get("acknowledged_by"):
        return "acknowledged"
    return None


def _change(
    row: FlagRow,
    change: str,
    payload: Mapping[str, Any],
    now: datetime,
    evidence_detail: Mapping[str, Mapping[str, Any]],
) -> FlagChangeRow:
    row.changes += 1
    change_id = str(uuid.uuid5(FLAG_NAMESPACE, f"{row.id}|{change}|{row.changes}"))
    message = {
        "change_id": change_id,
        "change": change,
        "changed_at": format_time(now),
        "flag": dict(payload),
        "evidence_detail": [dict(evidence_detail[i]) for i in payload["evidence"] if i in evidence_detail],
    }
    return FlagChangeRow(
        change_id=change_id,
        flag_id=row.id,
        change=change,
        changed_at=now,
        message=json.dumps(message, sort_keys=True),
        published=False,
    )
