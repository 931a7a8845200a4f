"""Read the ledger's eventsourcing rows page by page, beside the index rows for the same positions.

``ledger_events`` is the record; ``ledger_accepted`` is an index the projector writes beside it
in the same transaction, so any disagreement (a row missing, altered, moved to another position)
is evidence that someone edited the database afterwards. This module finds what can be seen
without hashing (rows missing on either side, rows that no longer decode, stream columns that do
not match the event); content comparison needs canonical JSON, the expensive part, and runs in
the worker processes (checks.py). Pages keep memory flat on million-event histories.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from eventsourcing.persistence import Notification
from sqlalchemy import func, select

from consumers.auditor.findings import Finding
from ledger.store.ledger import EventAccepted, Ledger, stream_id
from ledger.store.models import AcceptedEvent

PAGE = 2000


@dataclass(frozen=True)
class IndexRow:
    event_id: str
    source: str
    sequence: int
    digest: str
    envelope: str  # canonical JSON text


@dataclass(frozen=True)
class StoredEvent:
    """An accepted event as its eventsourcing row holds it, with the index row at its position."""

    position: int
    envelope: dict[str, Any]
    indexed: IndexRow | None


def envelope_of(ledger: Ledger, notification: Notification) -> dict[str, Any]:
    """The event exactly as signed, from one ``ledger_events`` row."""
    return cast(EventAccepted, ledger.app.mapper.to_domain_event(notification)).envelope


def pages_of_envelopes(ledger: Ledger) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Every stored event as (position, envelope), page by page: for readers that trust the rows
    (proofs, replay); `audit verify` reads with ``read_pages`` and trusts nothing."""
    start = 1
    while True:
        notifications = ledger.recorder.select_notifications(start, PAGE)
        yield [(n.id, envelope_of(ledger, n)) for n in notifications]
        if len(notifications) < PAGE:
            return
        start = notifications[-1].id + 1


def last_position(ledger: Ledger) -> int:
    with ledger.read() as session:
        indexed = session.scalar(select(func.max(AcceptedEvent.position))) or 0
    return max(indexed, ledger.recorder.max_notification_id() or 0)


def read_pages(ledger: Ledger, findings: list[Finding]) -> Iterator[list[StoredEvent]]:
    """Yield decodable events in position order; append a finding for every row that is missing,
    does not decode or has no index entry (named by the index when the row cannot name itself)."""
    end = last_position(ledger)
    columns = (
        AcceptedEvent.position,
        AcceptedEvent.event_id,
        AcceptedEvent.source,
        AcceptedEvent.sequence,
        AcceptedEvent.digest,
        AcceptedEvent.envelope,
    )
    for low in range(1, end + 1, PAGE):
        high = min(low + PAGE - 1, end)
        notifications = ledger.recorder.select_notifications(low, PAGE, stop=high)
        with ledger.read() as session:
            rows = session.execute(select(*columns).where(AcceptedEvent.position.between(low, high)))
            index = {position: IndexRow(*rest) for position, *rest in rows}
        page: list[StoredEvent] = []
        for notification in notifications:
            indexed = index.pop(notification.id, None)
            envelope = _decode(ledger, notification, indexed, findings)
            if envelope is None:
                continue
            page.append(StoredEvent(notification.id, envelope, indexed))
            if indexed is None:
                findings.append(
                    Finding.about(
                        "index", "row has no index entry in ledger_accepted", envelope, notification.id
                    )
                )
        for position, indexed in sorted(index.items()):
            findings.append(
                Finding(
                    "storage",
                    "row missing from ledger_events (deleted): the index still lists it",
                    indexed.event_id,
                    indexed.source,
                    indexed.sequence,
                    position,
                )
            )
        yield page


def _decode(
    ledger: Ledger, notification: Notification, indexed: IndexRow | None, findings: list[Finding]
) -> dict[str, Any] | None:
    position = notification.id
    try:
        envelope = envelope_of(ledger, notification)
        if not isinstance(envelope, dict):
            raise TypeError("envelope is not an object")
    except Exception as exc:  # any decoding failure is the finding itself
        detail = f"stored state does not decode ({type(exc).__name__}): the row was altered"
        findings.append(
            Finding("storage", detail, indexed.event_id, indexed.source, indexed.sequence, position)
            if indexed
            else Finding("storage", detail, position=position)
        )
        return None
    source, sequence = envelope.get("source"), envelope.get("sequence")
    if isinstance(source, str) and (
        notification.originator_id != stream_id(source) or notification.originator_version != sequence
    ):
        findings.append(
            Finding.about(
                "storage",
                "row's stream/version columns do not match its event's source/sequence",
                envelope,
                position,
            )
        )
    return envelope
