"""Read the ledger's eventsourcing rows page by page, beside the index rows for the same positions.

``ledger_events`` is the record; ``ledger_accepted`` is an index the projector writes beside it
in the same transaction, so any disagreement (a row missing, altered, moved to another position)
is evidence that someone edited the database afterwards. The reading process finds rows
missing from ``ledger_events``; everything that needs a row decoded (rows that no longer decode,
rows without an index entry, stream columns that do not match the event) and the content
comparison (canonical JSON, the expensive part) run in the worker processes (checks.py), which
get the rows as stored. Pages keep memory flat on million-event histories.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple, cast
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic
from sqlalchemy import Table, bindparam, func, select, type_coerce
from sqlalchemy.types import NullType

from consumers.auditor.findings import Finding
from ledger.store.ledger import EventAccepted, Ledger, LedgerApplication, stream_id
from ledger.store.models import AcceptedEvent

PAGE = 2000


class IndexRow(NamedTuple):
    event_id: str
    source: str
    sequence: int
    digest: str
    envelope: str  # canonical JSON text
    type: str


class StoredRow(NamedTuple):
    """One ``ledger_events`` row as stored (not yet decoded), with the index row at its position.

    `audit verify` ships these to its worker processes undecoded: decoding is per-event work,
    and the reading process, which every event passes through, must do as little as possible.
    Plain tuples with the stream id as 16 bytes, not the library's ``Notification`` dataclass
    with a ``UUID``: pickling those to the workers and back cost ~35 us an event, a sixth of
    the audit's CPU (issue 13); as tuples ~6 us.
    """

    position: int
    originator: bytes  # the stream's UUID, as its 16 bytes
    version: int
    topic: str
    state: bytes
    indexed: IndexRow | None

    @property
    def notification(self) -> Notification:
        return Notification(
            id=self.position,
            originator_id=UUID(bytes=self.originator),
            originator_version=self.version,
            topic=self.topic,
            state=self.state,
        )


def envelope_of(ledger: Ledger, notification: Notification) -> dict[str, Any]:
    """The event exactly as signed, from one ``ledger_events`` row."""
    return decoded(ledger.app.mapper, notification)


def decoded(mapper: Mapper[Any], notification: Notification) -> dict[str, Any]:
    return cast(EventAccepted, mapper.to_domain_event(notification)).envelope


@cache
def offline_mapper() -> Mapper[Any]:
    """The ledger's mapper without a database: how a worker process decodes rows it was sent."""
    return LedgerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


def pages_of_envelopes(ledger: Ledger, after: int = 0) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Every stored event after position ``after`` as (position, envelope), page by page: for
    readers that trust the rows (proofs, replay, checkpoints); `audit verify` reads with
    ``read_pages`` and trusts nothing."""
    start = after + 1
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


def read_pages(ledger: Ledger, findings: list[Finding]) -> Iterator[list[StoredRow]]:
    """Yield the stored rows in position order, undecoded, each with its index row; append a
    finding for every index row whose ``ledger_events`` row is gone. What the rows themselves
    hold is judged by ``check_row`` (in the audit's worker processes)."""
    end = last_position(ledger)
    columns = (
        AcceptedEvent.position,
        AcceptedEvent.event_id,
        AcceptedEvent.source,
        AcceptedEvent.sequence,
        AcceptedEvent.digest,
        AcceptedEvent.envelope,
        AcceptedEvent.type,
    )
    events = cast(Table, ledger.recorder.events_record_cls.__table__)
    # Core statements on the session's connection, the stream id as the driver returns it
    # (16 bytes from SQLite, a UUID from psycopg): the ORM's row objects and the UUID type's
    # result processing cost ~8 us an event in the reading process, which every event passes.
    index_rows = select(*columns).where(AcceptedEvent.position.between(bindparam("low"), bindparam("high")))
    stored_rows = (
        select(events.c.id, type_coerce(events.c.originator_id, NullType()), events.c.originator_version)
        .add_columns(events.c.topic, events.c.state)
        .where(events.c.id.between(bindparam("low"), bindparam("high")))
        .order_by(events.c.id)
    )
    for low in range(1, end + 1, PAGE):
        bounds = {"low": low, "high": min(low + PAGE - 1, end)}
        with ledger.read() as session:
            connection = session.connection()
            index_page = connection.execute(index_rows, bounds).all()
            index = {position: IndexRow(*rest) for position, *rest in index_page}
            stored = connection.execute(stored_rows, bounds).all()
        page = [
            StoredRow(
                i,
                originator if isinstance(originator, bytes) else _stream_bytes(originator),
                version,
                topic,
                bytes(state) if isinstance(state, memoryview) else state,
                index.pop(i, None),
            )
            for i, originator, version, topic, state in stored
        ]
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


def _stream_bytes(originator: Any) -> bytes:
    """A stream id as a driver returned it (UUID, or a byte buffer), as its 16 bytes."""
    return originator.bytes if isinstance(originator, UUID) else bytes(originator)


def check_row(mapper: Mapper[Any], row: StoredRow, findings: list[Finding]) -> dict[str, Any] | None:
    """The row's event, or None (with a finding) if it does not decode; findings too for a row
    without an index entry or whose stream columns disagree with its event."""
    envelope = _decode(mapper, row, findings)
    if envelope is not None and row.indexed is None:
        findings.append(
            Finding.about("index", "row has no index entry in ledger_accepted", envelope, row.position)
        )
    return envelope


def _decode(mapper: Mapper[Any], row: StoredRow, findings: list[Finding]) -> dict[str, Any] | None:
    position, indexed = row.position, row.indexed
    envelope = plain_envelope(row.topic, row.state)
    try:
        if envelope is None:
            envelope = decoded(mapper, row.notification)
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
    if isinstance(source, str) and (row.originator != stream_id(source).bytes or row.version != sequence):
        findings.append(
            Finding.about(
                "storage",
                "row's stream/version columns do not match its event's source/sequence",
                envelope,
                position,
            )
        )
    return envelope


_TOPIC = get_topic(EventAccepted)
_STATE_KEYS = frozenset({"timestamp", "envelope"})
_TRANSCODED_KEYS = frozenset({"_type_", "_data_"})


def plain_envelope(topic: str, state: bytes) -> dict[str, Any] | None:
    """The envelope the library's mapper decodes from a row, by one C ``json`` pass, or None
    when the row holds anything that pass cannot prove equal (the mapper then decides, and
    raises what it raises).

    Why: the mapper's decoder calls a Python hook on every JSON object of the row (its way of
    finding ``{"_type_": ..., "_data_": ...}`` values to transcode) and builds a domain event
    object: ~17 us an event against ~6 us, on every event the audit reads. The results are the
    same when the row is what ``Ledger.record`` writes: the EventAccepted topic, exactly the
    keys ``timestamp`` and ``envelope``, and the bytes ``"_type_"`` once (the timestamp's
    transcoding), so no object in the envelope is one the hook would replace (a key
    ``_type_`` is always those bytes; inside a string a quote is escaped). The timestamp must
    still be what the mapper can decode, or the row goes to the mapper to fail there."""
    if topic != _TOPIC or type(state) is not bytes or state.count(b'"_type_"') != 1:
        return None  # (a state column edited to text comes back as str: the mapper fails on it)
    try:
        value = json.loads(state.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None
    if type(value) is not dict or value.keys() != _STATE_KEYS:
        return None
    timestamp, envelope = value["timestamp"], value["envelope"]
    if (
        type(envelope) is not dict
        or type(timestamp) is not dict
        or timestamp.keys() != _TRANSCODED_KEYS
        or timestamp["_type_"] != "datetime_iso"
        or type(timestamp["_data_"]) is not str
    ):
        return None
    try:
        datetime.fromisoformat(timestamp["_data_"])
    except ValueError:
        return None
    return envelope
