"""Access auditing: every look at a child's record becomes a signed ``access.recorded`` event.

Safeguarding records are sensitive; a partnership must be able to say who looked at a child's
record, when and why. Writing the access into the ledger (rather than a log file) gives it the
same guarantees as everything else: signed, append-only, verified by `audit verify`, and listed
with `audit access CHILD`.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from sqlalchemy import select

from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from ledger.timeutil import format_time
from sgledger.cli.context import AppContext
from sgledger.cli.publishing import publish_partnership_event

ACCESS_RECORDED = "access.recorded"
CHILD_PREFIX = "child:"


def who() -> str:
    """SGLEDGER_USER (set by a deployment that knows the signed-in person), else the OS user."""
    return os.environ.get("SGLEDGER_USER") or getpass.getuser()


def child_target(child: str) -> str:
    return f"{CHILD_PREFIX}{child}"


def record_access(app: AppContext, action: str, target: str, reason: str | None) -> None:
    """Publish who did ``action`` on ``target`` and why. A target ``child:<id>`` (see
    ``child_target``) makes the child the event's subject, so the access is listed with the
    child's record; any other target is filed under the partnership."""
    data: dict[str, Any] = {"who": who(), "action": action, "target": target}
    if reason:
        data["reason"] = reason
    subject = (
        target.removeprefix(CHILD_PREFIX) if target.startswith(CHILD_PREFIX) else app.root_key().partnership
    )
    publish_partnership_event(app, ACCESS_RECORDED, subject, data)


def list_access(ledger: Ledger, child: str) -> list[dict[str, Any]]:
    """Who looked at ``child``'s record: every access event about the child, oldest first."""
    with ledger.read() as session:
        rows = session.execute(
            select(AcceptedEvent.event_id, AcceptedEvent.recordedtime, AcceptedEvent.envelope)
            .where(AcceptedEvent.subject == child, AcceptedEvent.type == ACCESS_RECORDED)
            .order_by(AcceptedEvent.position)
        ).all()
    return [
        {"when": format_time(recorded), "event_id": event_id, **json.loads(envelope)["data"]}
        for event_id, recorded, envelope in rows
    ]
