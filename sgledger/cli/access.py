"""Access auditing: every look at a child's record becomes a signed ``access.recorded`` event.

Safeguarding records are sensitive; a partnership must be able to say who looked at a child's
record, when and why. Writing the access into the ledger (rather than a log file) gives it the
same guarantees as everything else: signed (by the partnership's service key), append-only,
verified by `audit verify`, and listed with `audit access CHILD`. On the command line "who" is
the operating-system account the command runs as (``os:<account>``), never a setting.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from ledger.timeutil import format_time
from producers.service import Actor
from sgledger.cli.context import AppContext
from sgledger.cli.publishing import deliver_stored, service_producer

ACCESS_RECORDED = "access.recorded"


def record_access(app: AppContext, action: str, target: str, reason: str | None) -> None:
    """Publish that the command-line user did ``action`` on ``target`` and why."""
    event = service_producer(app).record_access(Actor.operating_system_user(), action, target, reason)
    deliver_stored(app, event)


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
