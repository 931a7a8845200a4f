"""The ledger: accepted events recorded with the eventsourcing library, behind a small interface.

Each agency's chain is one eventsourcing stream (``uuid5(agency)``) whose version is the event's
``sequence``; events are written with the application recorder inside the caller's transaction,
so the projector records an event, its index row, the child's view and its flags atomically.
Writes go through the recorder, not ``Application.save``: events of one agency arrive out of
order across partitions, and a stream written this way may have holes while the library's
aggregate API may not.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import (
    SQLAlchemyApplicationRecorder,
    SQLAlchemyTrackingRecorder,
)
from sqlalchemy import MetaData, Table, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ledger.canonical import canonical_json
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.store import schema
from ledger.store.bulk import insert_rows
from ledger.store.models import AcceptedEvent, Base, WriterLock
from ledger.store.private import private_sqlite
from ledger.timeutil import parse_time

_ACCEPTED: Table = AcceptedEvent.__table__  # type: ignore[assignment]
STREAM_NAMESPACE = uuid.UUID("0b6c7f4c-3c55-4f3a-9d0e-5a1f3c2b9e77")
KEY_EVENT_TYPES = ("agency.key.registered", "agency.key.revoked")


@lru_cache(maxsize=4096)
def stream_id(agency: str) -> uuid.UUID:
    """The eventsourcing stream of an agency's chain (uuid5: the extension rejects str ids).
    Cached: asked for every event recorded or audited, of a few hundred agencies at most."""
    return uuid.uuid5(STREAM_NAMESPACE, agency)


@dataclass(frozen=True)
class EventAccepted(DomainEvent):
    """What the ledger stores per accepted event: the envelope exactly as signed."""

    envelope: dict[str, Any]


@dataclass(frozen=True)
class Acceptance:
    """An event the projector accepted, with its canonical bytes computed once."""

    event: Mapping[str, Any]
    canonical: bytes  # RFC 8785 form of the whole event; its SHA-256 is the chain digest
    over_hole: bool = False

    @classmethod
    def of(cls, event: Mapping[str, Any], *, over_hole: bool = False) -> Acceptance:
        return cls(event, canonical_json(dict(event)), over_hole)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()


@dataclass(frozen=True)
class _FoldedKeys:
    """A key registry and the (position, event id) of the key events folded into it."""

    root: RootKey
    ids: tuple[tuple[int, str], ...]
    registry: KeyRegistry


class LedgerApplication(Application[uuid.UUID]):
    """Named explicitly: table names derive from it (``ledger_events``, ``ledger_tracking``)."""

    name = "ledger"


def normalise_url(url: str) -> str:
    """SQLite needs a busy timeout when several projector processes share one file."""
    if url.startswith("sqlite") and "timeout=" not in url:
        return url + ("&" if "?" in url else "?") + "timeout=60"
    return url


class Ledger:
    """Accepted events and the facts verification needs, in one SQL database."""

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        """``check_schema=False`` only for `sgledger db` itself, which migrates what a service
        would refuse."""
        self.url = normalise_url(url)
        private_sqlite(self.url)
        self.app = LedgerApplication(
            env={
                "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
                "SQLALCHEMY_URL": self.url,
                "CREATE_TABLE": "n",
            }
        )
        self.recorder = cast(SQLAlchemyApplicationRecorder, self.app.recorder)
        self.datastore: SQLAlchemyDatastore = self.recorder.datastore
        self.tracking = SQLAlchemyTrackingRecorder(self.datastore, tracking_table_name="ledger_tracking")
        self._keys: _FoldedKeys | None = None
        if check_schema:
            self._create_schema()

    def _create_schema(self) -> None:
        """Create a fresh database's tables once, even when several services start at the same
        moment (PostgreSQL: under an advisory lock; SQLite: inside one exclusive transaction),
        and stamp it current; refuse a database another release made (see ledger.store.schema)."""
        with self.engine.connect() as connection:
            if self.is_postgres:
                connection.execute(text("SELECT pg_advisory_lock(724152)"))
            else:
                connection.exec_driver_sql("BEGIN EXCLUSIVE")
            try:
                if schema.current_revision(connection) is None:
                    for meta in self.metadata():
                        meta.create_all(connection)
                    schema.stamp_head(connection)
                schema.require_current(connection)
                if connection.execute(select(WriterLock.id)).first() is None:
                    connection.execute(insert(WriterLock).values(id=1, generation=0))
                connection.commit()
            finally:
                if self.is_postgres:
                    connection.execute(text("SELECT pg_advisory_unlock(724152)"))
                    connection.commit()

    def metadata(self) -> list[MetaData]:
        """The tables the ledger creates: the eventsourcing recorder's, the ledger's index and
        the views (``Base``)."""
        import views.models  # noqa: F401  (registers the view and flag tables on Base)

        return [self.recorder.tables[0].metadata, Base.metadata]

    def upgrade_schema(self, shared: Sequence[MetaData] = ()) -> tuple[str | None, str]:
        """`sgledger db upgrade`: migrate this database to the current revision; ``shared`` are
        the tables of other components kept in the same database (the alerter's)."""
        with self.engine.begin() as connection:
            return schema.upgrade(connection, [*self.metadata(), *shared])

    @property
    def engine(self) -> Engine:
        return cast(Engine, self.datastore.engine)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction shared with the eventsourcing recorder (same contextvar), committed on
        success and rolled back on any exception."""
        with self.recorder.transaction(commit=True) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.recorder.transaction(commit=False) as session:
            yield session

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A write transaction that first becomes the only writer.

        Acceptance reads chain facts and then writes; two writers interleaving could both see
        sequence n-1 missing, or both accept sequence n. One writer at a time makes every
        decision see every earlier one. Verification (the CPU cost) happens before this.
        Autoflush is off: the writer flushes when it needs to read what it wrote, instead of
        before every query (each flush also runs SQLAlchemy-Utils' session-wide listener).
        """
        with self.session() as session, session.no_autoflush:
            if self.is_postgres:
                session.execute(text("SELECT pg_advisory_xact_lock(724153)"))
            else:
                session.execute(
                    update(WriterLock).where(WriterLock.id == 1).values(generation=WriterLock.generation + 1)
                )
            yield session

    # -- facts for verification (one query per question per batch, not per event) --------
    def digests_by_id(self, session: Session, event_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(event_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = select(AcceptedEvent.event_id, AcceptedEvent.digest).where(
                AcceptedEvent.event_id.in_(chunk)
            )
            found.update({event_id: digest for event_id, digest in session.execute(query)})
        return found

    def chain_digests(
        self, session: Session, source: str, low: int, high: int
    ) -> dict[int, tuple[str, bool]]:
        """Digest and "accepted over a hole" of ``source``'s accepted events with
        ``low <= sequence <= high`` (the unique chain index answers it)."""
        query = select(AcceptedEvent.sequence, AcceptedEvent.digest, AcceptedEvent.over_hole).where(
            AcceptedEvent.source == source, AcceptedEvent.sequence.between(low, high)
        )
        return {sequence: (digest, over_hole) for sequence, digest, over_hole in session.execute(query)}

    def highest_sequences(self, session: Session, sources: Iterable[str]) -> dict[str, int]:
        query = (
            select(AcceptedEvent.source, func.max(AcceptedEvent.sequence))
            .where(AcceptedEvent.source.in_(sorted(set(sources))))
            .group_by(AcceptedEvent.source)
        )
        return {source: highest for source, highest in session.execute(query)}

    def key_registry(self, session: Session, root: RootKey) -> KeyRegistry:
        """The registry folded from every key event ``session`` can see, in ledger order.

        Asked on every batch and every as-of query, so it must not cost a scan of the ledger:
        the ids and positions of the key events come from a covering index (a few hundred rows
        however large the ledger), and only key events not folded before are read and folded.
        The fold is reused only while the key events it was made from are still, in order, the
        first ones the ledger holds: a rolled-back transaction, or one that committed a key
        event at a lower position later, makes it start again from the root. Only key events
        are kept (a handful per agency), never the history.
        """
        ids = tuple(
            session.execute(
                select(AcceptedEvent.position, AcceptedEvent.event_id)
                .where(AcceptedEvent.type.in_(KEY_EVENT_TYPES))
                .order_by(AcceptedEvent.position)
            ).tuples()
        )
        folded = self._keys
        if folded is None or folded.root != root or ids[: len(folded.ids)] != folded.ids:
            folded = _FoldedKeys(root, (), KeyRegistry(root))
        new = [position for position, _ in ids[len(folded.ids) :]]
        registry = folded.registry.copy()
        for start in range(0, len(new), 500):
            for envelope in session.scalars(
                select(AcceptedEvent.envelope)
                .where(AcceptedEvent.position.in_(new[start : start + 500]))
                .order_by(AcceptedEvent.position)
            ):
                registry.apply(json.loads(envelope))
        self._keys = _FoldedKeys(root, ids, registry)
        return registry.copy()

    # -- recording ------------------------------------------------------------------------
    def record(self, session: Session, accepted: Sequence[Acceptance], accepted_at: datetime) -> None:
        """Append accepted events to their agencies' streams and index them, in ``session``:
        one ``insert_events`` call for the whole batch."""
        if not accepted:
            return
        positions = self._insert_stored_events(session, self._stored_events(accepted, accepted_at))
        # Core, not ORM objects (nobody reads them back from the session, and their unit of work
        # was a seventh of the projector's time), and COPY on PostgreSQL (``insert_rows``), where
        # an executemany is one INSERT per row.
        insert_rows(session, _ACCEPTED, _index_rows(accepted, positions, accepted_at))

    def load(
        self,
        session: Session,
        accepted: Sequence[Acceptance],
        accepted_at: datetime,
        positions: Sequence[int],
    ) -> None:
        """``record`` for a bulk load into a ledger nobody else writes (`audit replay`'s copy
        into its empty target): the events take the ``positions`` given (the source ledger's),
        and both tables' rows go in with COPY on PostgreSQL (``insert_rows``). The same rows as
        ``record`` would write, without the per-row INSERTs that were two thirds of a replay's
        copy, and without the table lock and notification, which order and wake concurrent
        writers and readers that a bulk load has not got (several loads may run at once, on
        disjoint positions). ``end_load`` must follow the last."""
        if not accepted:
            return
        table = self.recorder.events_record_cls.__table__
        stored = self._stored_events(accepted, accepted_at)
        insert_rows(
            session, table, [{"id": p, **_stored_row(e)} for p, e in zip(positions, stored, strict=True)]
        )
        insert_rows(session, _ACCEPTED, _index_rows(accepted, positions, accepted_at))

    def end_load(self, session: Session) -> None:
        """After ``load``: PostgreSQL's id sequence of ``ledger_events`` moves past the loaded
        positions, so that a later ``record`` continues after them (SQLite does that itself)."""
        if self.is_postgres:
            table = self.recorder.events_record_cls.__table__.name
            session.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
            )

    def _stored_events(self, accepted: Sequence[Acceptance], accepted_at: datetime) -> list[StoredEvent]:
        return [
            self.app.mapper.to_stored_event(
                EventAccepted(
                    originator_id=stream_id(a.event["source"]),
                    originator_version=a.event["sequence"],
                    timestamp=accepted_at,
                    envelope=dict(a.event),
                )
            )
            for a in accepted
        ]

    def _insert_stored_events(self, session: Session, stored: Sequence[StoredEvent]) -> list[int]:
        """What ``insert_events`` does (take the table lock that keeps notification ids in commit
        order, insert, notify listeners), but the rows go in as one Core executemany returning
        their ids in parameter order, instead of one ORM record each: the library's ORM
        records were a seventh of the projector's CPU. Its recorder's own lock and notify are
        used, so the notification log is exactly what the library would have written."""
        table = self.recorder.events_record_cls.__table__
        self.recorder._lock_table(session)
        rows = [_stored_row(e) for e in stored]
        ids = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        positions = list(ids.scalars())
        self.recorder._notify_channel(session)
        return positions

    # -- Kafka positions ------------------------------------------------------------------
    def tracked_position(self, name: str) -> int | None:
        return self.tracking.max_tracking_id(name)

    def track(self, session: Session, name: str, offset: int) -> None:
        """Record a consumed position with the batch; a position never moves backwards."""
        current = self.tracking.max_tracking_id(name)
        if current is None or offset > current:
            self.tracking._insert_tracking(session, Tracking(name, offset))

    # -- reading --------------------------------------------------------------------------
    def events_about(self, session: Session, subject: str) -> list[dict[str, Any]]:
        return [
            json.loads(envelope)
            for envelope in session.scalars(
                select(AcceptedEvent.envelope)
                .where(AcceptedEvent.subject == subject)
                .order_by(AcceptedEvent.position)
            )
        ]

    def count(self) -> int:
        with self.read() as session:
            return session.scalar(select(func.count()).select_from(AcceptedEvent)) or 0


def _stored_row(event: StoredEvent) -> dict[str, Any]:
    """A ``ledger_events`` row of the eventsourcing recorder's table, as it would insert it."""
    return {
        "originator_id": event.originator_id,
        "originator_version": event.originator_version,
        "topic": event.topic,
        "state": event.state,
    }


def _index_rows(
    accepted: Sequence[Acceptance], positions: Sequence[int], accepted_at: datetime
) -> list[dict[str, Any]]:
    """The ``ledger_accepted`` rows of events given these positions."""
    return [
        {
            "event_id": a.event["id"],
            "position": position,
            "source": a.event["source"],
            "sequence": a.event["sequence"],
            "subject": a.event["subject"],
            "type": a.event["type"],
            "time": parse_time(a.event["time"]),
            "recordedtime": parse_time(a.event["recordedtime"]),
            "accepted_at": accepted_at,
            "digest": a.digest,
            "envelope": a.canonical.decode("utf-8"),
            "over_hole": a.over_hole,
        }
        for a, position in zip(accepted, positions, strict=True)
    ]
