"""The ledger: accepted events recorded with the eventsourcing library, behind a small interface.

Each agency's chain is one eventsourcing stream (``uuid5(agency)``) whose version is the event's
``sequence``; events are written into the application recorder's table inside the caller's
transaction, so the projector records an event, its index row, the child's view and its flags
atomically. Rows are written as the recorder would write them (``Ledger.record``), not through
``Application.save``: a stream may have holes (an event accepted over a missing predecessor),
which the library's aggregate API does not allow.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any, cast

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import JSONTranscoder, Tracking
from eventsourcing.utils import get_topic
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import (
    SQLAlchemyApplicationRecorder,
    SQLAlchemyTrackingRecorder,
)
from sqlalchemy import MetaData, String, Table, func, insert, literal, select, text, union_all, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from ledger.canonical import canonical_json
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.store import schema
from ledger.store.bulk import insert_rows
from ledger.store.models import AcceptedEvent, Base, WriterLock
from ledger.store.private import private_sqlite
from ledger.store.turns import take_write_lock, turns_file
from ledger.stored import envelope_json, same_settings, stored_times
from ledger.timeutil import utc_text

_ACCEPTED: Table = AcceptedEvent.__table__  # type: ignore[assignment]
STREAM_NAMESPACE = uuid.UUID("0b6c7f4c-3c55-4f3a-9d0e-5a1f3c2b9e77")
KEY_EVENT_TYPES = ("agency.key.registered", "agency.key.revoked")
# sources per highest_sequences statement: each is one arm of a UNION ALL, and SQLite allows at
# most 500 arms in a compound SELECT (SQLITE_MAX_COMPOUND_SELECT)
_SOURCES_PER_QUERY = 200


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
    # The envelope's part of its stored state (``ledger.stored``) when a verification worker
    # made it; None: ``Ledger.record`` makes it.
    envelope: bytes | None = None
    # Its time and recordedtime as the index stores them (``ledger.stored.stored_times``), when
    # a verification worker made them; None: ``Ledger.record`` makes them.
    times: tuple[str, str] | None = None

    @classmethod
    def of(cls, event: Mapping[str, Any], *, over_hole: bool = False) -> Acceptance:
        return cls(event, canonical_json(dict(event)), over_hole)

    @cached_property
    def digest(self) -> str:
        """Kept once computed (the chain check, the batch's chain state and the index row each
        ask for it)."""
        return hashlib.sha256(self.canonical).hexdigest()


@dataclass(frozen=True)
class _FoldedKeys:
    """A key registry and the (position, event id) of the key events folded into it."""

    root: RootKey
    ids: tuple[tuple[int, str], ...]
    registry: KeyRegistry


_TOPIC = get_topic(EventAccepted)


class LedgerApplication(Application[uuid.UUID]):
    """Named explicitly: table names derive from it (``ledger_events``, ``ledger_tracking``)."""

    name = "ledger"


class DatabaseUrlError(ValueError):
    """A database URL this release cannot open; ``detail`` says why (never the password) and
    ``fix`` the form to use."""

    fix = (
        "use postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE (pip install '.[postgres]') "
        "or sqlite:///PATH"
    )

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{detail}: {self.fix}")


def check_driver(url: str) -> None:
    """Refuse, in one line with the form to use, a URL whose SQLAlchemy dialect or driver this
    release does not have: ``postgres://`` (as hosting panels print it) and ``postgresql://``
    (SQLAlchemy's default driver, psycopg2, not installed) failed with "Can't load plugin" or
    "No module named 'psycopg2'" from every command, doctor included."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:  # its message repeats the URL, password and all
        raise DatabaseUrlError("the database URL is not a URL") from exc
    try:
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, ImportError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise DatabaseUrlError(f"cannot open {shown} ({type(exc).__name__}: {exc})") from exc


def normalise_url(url: str) -> str:
    """SQLite needs a busy timeout when several projector processes share one file."""
    check_driver(url)
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
        database = self.engine.url.database
        self._turns = None if self.is_postgres or database in (None, "", ":memory:") else turns_file(database)
        self.write_lock_wait_s = 0.0  # seconds spent taking the write lock (SQLite), in all
        self._sequence: str | None = None  # PostgreSQL's id sequence of ledger_events
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
                self.sqlite_write_lock(session)
            yield session

    @contextmanager
    def updating(self) -> Iterator[Session]:
        """A write transaction that orders nothing, so takes no writer lock (intake marking the
        flag changes and quarantine notices it published), but which on SQLite takes the
        database's write lock at its start, in turn with the writers (``ledger.store.turns``):
        its first write used to wait for the lock in SQLite's busy handler, up to 100 ms after
        a child shard's commit (issue 13, ninth round). ``write_lock_wait_s`` counts the wait."""
        with self.session() as session:
            if not self.is_postgres:
                started = time.monotonic()
                self._take_turn(session)
                self.write_lock_wait_s += time.monotonic() - started
            yield session

    def sqlite_write_lock(self, session: Session) -> None:
        """On SQLite, make ``session``'s transaction the database's one writer: SQLite's write
        lock, taken in turn with the other processes' writers (``ledger.store.turns``) when the
        transaction has not begun yet, then the writer lock row bumped (which, in a transaction
        that had begun, takes the lock the old way, in SQLite's busy handler). Intake's writer
        and the child shards' writes take it here. ``write_lock_wait_s`` adds up the wait."""
        started = time.monotonic()
        self._take_turn(session)
        bump = update(WriterLock).where(WriterLock.id == 1)
        session.execute(bump.values(generation=WriterLock.generation + 1))
        self.write_lock_wait_s += time.monotonic() - started

    def _take_turn(self, session: Session) -> None:
        """SQLite's write lock for ``session``'s transaction, in turn with the other writers, if
        the transaction has not begun (else its first write takes it, in the busy handler)."""
        connection = session.connection()
        driver = connection.connection.driver_connection
        if self._turns is not None and driver is not None and not driver.in_transaction:
            take_write_lock(connection, self._turns)

    # -- facts for verification (one query per question per batch, not per event) --------
    def digests_by_id(self, session: Session, event_ids: Iterable[str]) -> dict[str, str]:
        """The digest of each of these events the ledger holds (a batch's duplicate check).

        Asked with every id of a batch (5,000 on a replay or a backlog), so the statement goes
        to the driver as text made once: through SQLAlchemy, each 500-id ``IN`` was compiled
        and its 500 parameters rendered in Python on every call: 3.1-5.9 us per event of a
        10,000-event replay's intake, now 0.8-1.4 (issue 13, CPU time). PostgreSQL takes the ids as one array
        (``= ANY``); SQLite as up to ``_ID_CHUNK`` parameters per statement, whose text is the
        same for every full chunk, so the sqlite3 module's statement cache prepares it once."""
        ids = sorted(set(event_ids))
        if not ids:
            return {}
        connection = session.connection()
        if self.is_postgres:
            statement = f"SELECT event_id, digest FROM {_ACCEPTED.name} WHERE event_id = ANY(%s)"
            return {event_id: digest for event_id, digest in connection.exec_driver_sql(statement, (ids,))}
        found: dict[str, str] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = tuple(ids[start : start + _ID_CHUNK])
            found.update((i, d) for i, d in connection.exec_driver_sql(_digests_in(len(chunk)), chunk))
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
        """The highest accepted sequence of each of ``sources`` that has one (asked on every
        batch). One ``max()`` per source, each its own scalar subquery, all in one statement:
        a lone ``max(sequence) WHERE source = ?`` is one seek to the end of the chain index
        ``(source, sequence)`` on SQLite and PostgreSQL alike, where the former ``max() ...
        WHERE source IN (...) GROUP BY source`` read every entry of each chain (neither
        database takes its min/max shortcut for a grouped aggregate): 112 ms of CPU per batch
        for an agency with a 1,000,000-event chain, the whole of what made a batch cost more in
        a large ledger (issue 13, bench/growth.py's ledger sizes)."""
        names = sorted(set(sources))
        found: dict[str, int] = {}
        for start in range(0, len(names), _SOURCES_PER_QUERY):
            arms = [
                select(
                    literal(name, String).label("source"),
                    select(func.max(AcceptedEvent.sequence))
                    .where(AcceptedEvent.source == name)
                    .scalar_subquery()
                    .label("highest"),
                )
                for name in names[start : start + _SOURCES_PER_QUERY]
            ]
            query = arms[0] if len(arms) == 1 else union_all(*arms)
            rows = session.execute(query)
            found.update({source: highest for source, highest in rows if highest is not None})
        return found

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
    def record(self, session: Session, accepted: Sequence[Acceptance], accepted_at: datetime) -> list[int]:
        """Append accepted events to their agencies' streams and index them, in ``session``; their
        positions (notification ids), in order: the one-process projector hands the events to
        the child side with them instead of reading them back (``views.projection.Recorded``).

        The rows are exactly what the library's recorder would write, written the cheapest way
        the database offers (issue 13: recording was a third of the intake stage's CPU): the
        library's table lock and notification around them (``insert_events`` takes and sends
        them), the next notification ids taken as the column's own default takes them
        (``_next_positions``), the stored state made by the library's transcoder without a
        domain event object per event (``_stored_states``), and both tables' rows inserted with
        ``insert_rows`` (COPY on PostgreSQL, the driver's executemany on SQLite)."""
        if not accepted:
            return []
        table = self.recorder.events_record_cls.__table__
        self.recorder._lock_table(session)
        positions = self._next_positions(session, len(accepted))
        states = self._stored_states(accepted, accepted_at)
        insert_rows(session, table, _event_rows(accepted, positions, states))
        self.recorder._notify_channel(session)
        insert_rows(session, _ACCEPTED, _index_rows(accepted, positions, accepted_at), bound=_STORED_TIMES)
        return positions

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
        states = self._stored_states(accepted, accepted_at)
        insert_rows(session, table, _event_rows(accepted, positions, states))
        insert_rows(session, _ACCEPTED, _index_rows(accepted, positions, accepted_at), bound=_STORED_TIMES)

    def end_load(self, session: Session) -> None:
        """After ``load``: PostgreSQL's id sequence of ``ledger_events`` moves past the loaded
        positions, so that a later ``record`` continues after them (SQLite does that itself)."""
        if self.is_postgres:
            table = self.recorder.events_record_cls.__table__.name
            session.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
            )

    def _next_positions(self, session: Session, count: int) -> list[int]:
        """The ids ``ledger_events``' own default would give the next ``count`` rows, taken by
        the caller, who holds the table's lock (``_lock_table``; on SQLite the writer lock):
        PostgreSQL's column sequence advanced ``count`` times; on SQLite one past the largest
        id, as SQLite gives a rowid (the column has no AUTOINCREMENT, and ids are far below
        2**63 - 1, where SQLite would pick at random instead). Why not let the database assign
        them and read them back: SQLite returns the ids of an INSERT only one row at a time, and
        a COPY returns none."""
        if self.is_postgres:
            if self._sequence is None:
                name = self.recorder.events_record_cls.__table__.name
                self._sequence = session.scalar(text(f"SELECT pg_get_serial_sequence('{name}', 'id')"))
            taken = session.scalars(
                text("SELECT nextval(:sequence) FROM generate_series(1, :count)"),
                {"sequence": self._sequence, "count": count},
            )
            return sorted(taken)
        table = self.recorder.events_record_cls.__table__
        last = session.scalar(select(func.max(table.c.id))) or 0
        return list(range(last + 1, last + count + 1))

    def _stored_states(self, accepted: Sequence[Acceptance], accepted_at: datetime) -> list[bytes]:
        """The ``state`` column of each event: what the library's mapper makes of an
        ``EventAccepted(timestamp=accepted_at, envelope=dict(event))`` (no compression or
        cipher is configured), which its transcoder writes as the JSON object
        ``{"timestamp": <accepted_at transcoded>, "envelope": <the envelope>}``. The part
        before the envelope is the same for every event of the batch, so the transcoder writes
        it once and each envelope with its own encoder (the one it would use inside the object:
        JSON is written member by member), without a domain event and a stored event object
        per event (issue 13: a sixth of recording). tests/ledger/test_record.py checks the
        bytes against the mapper's on every kind of event."""
        transcoder = cast(JSONTranscoder, self.app.mapper.transcoder)
        if self.app.mapper.compressor is not None or self.app.mapper.cipher is not None:
            raise RuntimeError("the ledger's mapper compresses or encrypts: _stored_states does not")
        if not same_settings(transcoder.encoder):
            raise RuntimeError("the ledger's transcoder writes JSON unlike ledger.stored")
        whole = transcoder.encode({"timestamp": accepted_at, "envelope": None})
        head = whole[: -len(_NULL_CLOSE)]
        if not whole.endswith(_NULL_CLOSE):
            raise RuntimeError(f"the transcoder wrote an unexpected state: {whole!r}")
        return [
            b"%b%b}" % (head, envelope_json(a.event) if a.envelope is None else a.envelope) for a in accepted
        ]

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


_NULL_CLOSE = b"null}"
# The index columns ``_index_rows`` gives as stored (UTCTime's text), not to be bound again.
_STORED_TIMES = frozenset({"time", "recordedtime", "accepted_at"})
# Ids per SQLite statement of ``digests_by_id`` (far below SQLite's 32,766 parameters).
_ID_CHUNK = 500


@lru_cache(maxsize=64)
def _digests_in(count: int) -> str:
    """``digests_by_id``'s SQLite statement for ``count`` ids."""
    marks = ",".join("?" * count)
    return f"SELECT event_id, digest FROM {_ACCEPTED.name} WHERE event_id IN ({marks})"


def _event_rows(
    accepted: Sequence[Acceptance], positions: Sequence[int], states: Sequence[bytes]
) -> list[dict[str, Any]]:
    """The ``ledger_events`` rows of events given these positions (notification ids) and
    stored states: each agency's chain is one stream, versioned by the event's sequence."""
    return [
        {
            "id": position,
            "originator_id": stream_id(a.event["source"]),
            "originator_version": a.event["sequence"],
            "topic": _TOPIC,
            "state": state,
        }
        for a, position, state in zip(accepted, positions, states, strict=True)
    ]


def _index_rows(
    accepted: Sequence[Acceptance], positions: Sequence[int], accepted_at: datetime
) -> list[dict[str, Any]]:
    """The ``ledger_accepted`` rows of events given these positions, with their times as
    stored (``_STORED_TIMES``: bound already; the batch's acceptance time made once)."""
    accepted_text = utc_text(accepted_at)
    return [
        {
            "event_id": a.event["id"],
            "position": position,
            "source": a.event["source"],
            "sequence": a.event["sequence"],
            "subject": a.event["subject"],
            "type": a.event["type"],
            "time": times[0],
            "recordedtime": times[1],
            "accepted_at": accepted_text,
            "digest": a.digest,
            "envelope": a.canonical.decode("utf-8"),
            "over_hole": a.over_hole,
        }
        for a, position in zip(accepted, positions, strict=True)
        for times in (a.times or stored_times(a.event),)
    ]
