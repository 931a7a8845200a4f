"""Who looked at a child's record, when and why: the ``access.recorded`` events about the child.

Shared by `sgledger audit access` and the web workspace's audit pages, so both list the same
thing from the same signed events.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from ledger.timeutil import format_time

ACCESS_RECORDED = "access.recorded"


def list_access(ledger: Ledger, child: str) -> list[dict[str, Any]]:
    """Who looked at ``child``'s record: every access event about the child, oldest first."""
    with ledger.read() as session:
        return access_rows(session, AcceptedEvent.subject == child)


def break_glass_reads(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Reads of a record outside the reader's relationship, newest first (the web workspace
    records them with action ``break glass``), for the designated leads' audit page."""
    return access_rows(
        session, AcceptedEvent.envelope.contains('"action":"break glass"'), newest_first=True, limit=limit
    )


def access_rows(
    session: Session, condition: Any, *, newest_first: bool = False, limit: int | None = None
) -> list[dict[str, Any]]:
    order = AcceptedEvent.position.desc() if newest_first else AcceptedEvent.position
    query = (
        select(
            AcceptedEvent.event_id, AcceptedEvent.subject, AcceptedEvent.recordedtime, AcceptedEvent.envelope
        )
        .where(AcceptedEvent.type == ACCESS_RECORDED, condition)
        .order_by(order)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "when": format_time(recorded),
            "event_id": event_id,
            "child": subject,
            **json.loads(envelope)["data"],
        }
        for event_id, subject, recorded, envelope in session.execute(query)
    ]
