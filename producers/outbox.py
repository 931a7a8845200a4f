"""The durable local outbox: an agency's events are committed here before Kafka sees them.

Why: publishing must succeed while Kafka is down and lose nothing, and an agency's chain
(``sequence`` 1, 2, 3 ... and ``prevhash``) must never fork, even with several processes
publishing for one agency. So the head of each chain and the signed event bytes are written in
one transaction that holds a write lock: ``BEGIN IMMEDIATE`` on SQLite (WAL, synchronous=FULL so
a committed publish survives power loss), a row lock on the head in PostgreSQL. Any SQLAlchemy URL
works; the relay reads the same tables.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ledger.envelope import SignedEvent
from ledger.store.private import private_sqlite

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class ChainHead(Base):
    """The last event an agency published: what the next one's sequence and prevhash follow."""

    __tablename__ = "outbox_heads"

    agency: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    last_digest: Mapped[str] = mapped_column(String(64), default="")


class OutboxRow(Base):
    """One signed event, exactly the bytes that go to Kafka; ``sent_at`` is set only after the
    broker acknowledged it (with where it landed)."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("agency", "sequence", name="uq_outbox_agency_sequence"),
        Index("ix_outbox_unsent", "sent_at", "agency", "sequence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    kafka_partition: Mapped[int | None] = mapped_column(Integer, default=None)
    kafka_offset: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RelayCluster(Base):
    """The Kafka cluster (by id) that acknowledged the rows marked sent: one row."""

    __tablename__ = "outbox_relay_cluster"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[str] = mapped_column(String(200))


# The execution option that marks a read-only transaction (``Outbox._reads``, ``_engine``).
READ_ONLY = "sgledger_outbox_read_only"

# Entries looked up (for ids already stored) per query: bounded IN lists, see ``_chunks``; and
# the most items ``Outbox.append_each`` reads before it signs them (fewer when its source says
# that nothing more is ready: ``IDLE``).
LOOKUP = 500
# What a source of items for ``Outbox.append_each`` yields, between items, when it has nothing
# ready (the gateway's draft worker is still preparing the next chunk): the items read so far
# are signed at once and the rows signed so far inserted, filling the wait (issue 11).
IDLE: Final = None
# Rows per executemany while an append signs. Why (issue 11): the gateway's batches inserted
# every row after the last signature, about 25 ms of a 3,000-event batch (~8 us a row on
# SQLite) while the draft worker had finished and its core idled; inserted as they are signed,
# they fill the serving process's waits for the worker's next chunk, and only the last few go
# in after the last signature (about 2 ms). Not on a thread of its own: sqlite3 releases the
# GIL at every row, and the hand-offs between the signing thread and an insert thread cost more
# CPU than the overlap saved on two busy cores (measured: 38-55 against 34-42 us an event).
INSERT_ROWS = 256

# With ``checkpoint_in_background`` (the gateway): rows appended between two pokes of the
# checkpointing thread (about 4 MB of the write-ahead log at ~1 KB a row with its index entries:
# SQLite's own default, 1,000 of its default 4 KiB pages), and the log's size, in pages, past
# which a committing connection checkpoints itself after all (should the thread not keep up: a
# reader holding an old snapshot, a slow disk): the write-ahead log stays bounded either way.
CHECKPOINT_ROWS = 4_000
SAFETY_AUTOCHECKPOINT_PAGES = 4_096  # 64 MiB of the outbox's 16 KiB pages (16 MiB of older 4 KiB)

# The page size of a new SQLite outbox (``_engine``).
PAGE_BYTES = 16_384

# The columns ``Outbox.append`` writes, in the order of its row tuples.
ROW_COLUMNS = ("agency", "sequence", "event_id", "topic", "key", "payload", "created_at")

# The table itself: rows go in through Core (``Outbox.append``), not as ORM objects.
_EVENTS = cast(Table, OutboxRow.__table__)

# The columns ``Outbox.pending`` reads, in the order of ``Pending``'s fields.
PENDING_COLUMNS = ("id", "agency", "sequence", "event_id", "topic", "key", "payload")

_ANY_PENDING = select(literal(1)).where(_EVENTS.c.sent_at.is_(None)).limit(1)

# ``Outbox.mark_sent``'s statement; its SQLite form binds positionally in this order:
# topic, sent, partition, offset, row (the table's column order; ``_positional`` checks it).
_MARK_SENT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("row"))
    .values(
        sent_at=bindparam("sent"),
        topic=bindparam("topic"),
        kafka_partition=bindparam("partition"),
        kafka_offset=bindparam("offset"),
    )
)
_MARK_SENT_ORDER = ("topic", "sent", "partition", "offset", "row")


class Pending(NamedTuple):
    """An unsent event, detached from any session so the relay can hold it across a send (a
    tuple: the relay makes one per event, and a frozen dataclass cost three times as much)."""

    id: int
    agency: str
    sequence: int
    event_id: str
    topic: str
    key: str
    payload: bytes


class DuplicateEventId(ValueError):
    """An event id already used for a different event: ids are the ledger's idempotency key."""


def _unknown(stored: Mapping[str, Any]) -> bool:
    """``Entry.same`` when nothing says whether a stored event is this one: a clash."""
    return False


class Entry(NamedTuple):
    """One event to append. ``sign(sequence, prevhash)`` builds the signed event (with its
    canonical bytes) for the chain position the outbox assigns; ``same(stored)`` says whether an
    event already stored under ``event_id`` is this one (a retried publish) rather than a clash.

    A tuple rather than a frozen dataclass: the gateway makes one per event of a batch on its
    critical path, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) cost
    about 1.3 us against 0.45 (issue 11)."""

    topic: str
    sign: Callable[[int, str], SignedEvent]
    event_id: str | None = None
    same: Callable[[Mapping[str, Any]], bool] = _unknown


def _entry_sign(entry: Entry, sequence: int, prevhash: str) -> SignedEvent:
    return entry.sign(sequence, prevhash)


def _entry_same(entry: Entry, stored: Mapping[str, Any]) -> bool:
    return entry.same(stored)


class Appendable(Protocol):
    """What ``Outbox.append_each`` reads of an item itself: the topic its row is filed under
    and the id a caller gave it (None: a new id, nothing to look up)."""

    @property
    def topic(self) -> str: ...

    @property
    def event_id(self) -> str | None: ...


A = TypeVar("A", bound=Appendable)


class _Checkpointer:
    """A thread that checkpoints a SQLite outbox's write-ahead log when poked, on a connection
    of its own (``Outbox(checkpoint_in_background=True)``).

    Why (issue 11): SQLite checkpoints in the connection whose commit takes the log past 1,000
    pages: the gateway's batch commit, on the core that signs the agency's chain, every second
    3,000-event batch (copying ~4 MB of pages into the database file and syncing it, while the
    request waits for the sync before its 202; measured on 3,000-row appends, the appending
    thread's CPU per row 12.9-14.8 us with this thread against 13.2-16.4 without, on a host at
    load 8-13, and its wall time lower by about the sync). A PASSIVE
    checkpoint runs beside writers (they keep appending to the log) and sqlite3 releases the GIL
    while it runs, so here it overlaps the next batch instead. Durability is unchanged: a commit
    is synced to the log before it returns; a checkpoint only moves pages already safe there."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._closed = False
        self.checkpoints = 0  # completed (tests, diagnostics)
        self._thread = threading.Thread(target=self._run, name="sgledger-outbox-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(30)

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closed:
                    return
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # the safety net (SAFETY_AUTOCHECKPOINT_PAGES) holds
                    log.warning("outbox checkpoint failed (%s); the next commit past the limit does it", exc)
        finally:
            connection.close()


class Outbox:
    def __init__(
        self, url: str, *, busy_timeout_s: float = 60.0, checkpoint_in_background: bool = False
    ) -> None:
        """``busy_timeout_s``: how long a SQLite writer waits for another's lock before failing
        (a service answering HTTP would rather say "retry" than hold its client for a minute).
        ``checkpoint_in_background``: a SQLite file's write-ahead log is checkpointed by a
        thread of this object (``_Checkpointer``), not by the appending commits; for a
        long-running service (the gateway), ignored for other databases."""
        self.url = url
        private_sqlite(url)
        database = make_url(url).database
        file = url.startswith("sqlite") and database not in (None, "", ":memory:")
        background = checkpoint_in_background and file
        self.engine = _engine(url, busy_timeout_s, SAFETY_AUTOCHECKPOINT_PAGES if background else None)
        self._checkpointer = _Checkpointer(str(database)) if background else None
        self._unchecked_rows = 0  # appended since the checkpointer was last poked
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reads (the relay's ``pending`` above all) begin a deferred transaction: see ``_engine``.
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self._reads = sessionmaker(self._read_engine, expire_on_commit=False)
        self._heads: set[str] = set()  # agencies whose head row is known to exist
        dialect = self.engine.dialect
        sqlite = dialect.name == "sqlite"
        # This object's SQLite writers take turns here before ``BEGIN IMMEDIATE`` (``_turn``).
        # Why (issue 11): SQLite's busy handler polls a held write lock with sleeps of up to
        # 100 ms, so a second gateway request waiting for the first one's commit started
        # signing up to that long after it could have; a lock in the process hands over at
        # once. Writers in other processes still meet SQLite's own wait; PostgreSQL's row lock
        # on the head wakes its waiter itself and lets appends for different agencies run
        # together.
        self._writers = threading.Lock() if sqlite else None
        self._busy_timeout_s = busy_timeout_s
        self._driver_insert = (
            str(insert(_EVENTS).compile(dialect=dialect, column_keys=list(ROW_COLUMNS))) if sqlite else None
        )
        created_at = _EVENTS.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._bind_created_at = created_at if sqlite else None
        self._driver_mark_sent = _positional(_MARK_SENT, dialect, _MARK_SENT_ORDER) if sqlite else None

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._turn(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This writer's turn among the object's SQLite writers, waited for no longer than
        SQLite's own busy timeout, and failing as SQLite does ("database is locked": callers
        already answer it, the gateway with a 503 and Retry-After)."""
        if self._writers is None:
            yield
            return
        if not self._writers.acquire(timeout=self._busy_timeout_s):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        try:
            yield
        finally:
            self._writers.release()

    def append(
        self,
        agency: str,
        entries: Iterable[Entry],
        *,
        also: Callable[[Session, list[SignedEvent]], None] | None = None,
    ) -> list[SignedEvent]:
        """Chain, sign and store the entries in one transaction: ``append_each`` with each
        entry's own ``sign`` and ``same``."""
        return self.append_each(agency, entries, _entry_sign, _entry_same, also=also)

    def append_each(
        self,
        agency: str,
        items: Iterable[A | None],
        sign: Callable[[A, int, str], SignedEvent],
        same: Callable[[A, Mapping[str, Any]], bool],
        *,
        also: Callable[[Session, list[SignedEvent]], None] | None = None,
    ) -> list[SignedEvent]:
        """Chain, sign and store the items in one transaction: all or nothing, one commit
        (fsync) per call; returns the signed events. ``sign(item, sequence, prevhash)`` builds
        an item's signed event (with its canonical bytes) for the chain position the outbox
        assigns; ``same(item, stored)`` says whether an event already stored under the item's
        ``event_id`` is this one (a retried publish) rather than a clash. An item whose
        ``event_id`` is already stored (or earlier in the same call) gets that event, so a
        retried publish never takes a second sequence. ``also(session, events)`` writes more
        rows in the same transaction (the gateway's idempotency record commits with the events
        it names, or not at all).

        Why two functions for all items rather than one ``Entry`` (two closures) per item: the
        gateway's batches pass thousands of prepared drafts straight in (``Producer.append_prepared``),
        and building an ``Entry`` and its closures per event cost about 1 us of the serving
        process's CPU, the one core the chain runs on (issue 11).

        ``items`` is read lazily inside the transaction, up to ``LOOKUP`` at a time and no
        further than an ``IDLE`` in it: the gateway's batch path passes a stream that another
        process is still preparing (producers/gateway/worker.py), so preparing and signing
        overlap; anything it raises rolls everything back. Why stop at ``IDLE`` (issue 11):
        reading ``LOOKUP`` items before signing any made the serving process wait for the
        worker's first 500 drafts (~22 ms of a 3,000-draft request) with nothing signed, and
        the worker idle as long after its last one.

        The rows go in ``INSERT_ROWS`` at a time as they are signed, and whenever the source is
        ``IDLE`` (its wait is spent storing them rather than later), all with the transaction's
        time (why: ``INSERT_ROWS``); ids repeated inside one call are found in ``known``, which
        holds the stored payloads of every id the items name and gains each new event as it is
        signed."""
        self._ensure_head(agency)
        results: list[SignedEvent] = []
        now = self._created_at(datetime.now(UTC))
        with self._transaction() as session:
            head = session.scalars(
                select(ChainHead).where(ChainHead.agency == agency).with_for_update()
            ).one()
            sequence, digest = head.last_sequence, head.last_digest
            known: dict[str, bytes] = {}
            rows: list[tuple[Any, ...]] = []
            for chunk in _ready_runs(items):
                if not chunk:  # the source is waiting for more: store what is signed meanwhile
                    if rows:
                        self._insert(session, rows)
                        rows = []
                    continue
                named = [e.event_id for e in chunk if e.event_id and e.event_id not in known]
                if named:
                    known.update(self._stored_payloads(session, named))
                for item in chunk:
                    stored = known.get(item.event_id) if item.event_id else None
                    if stored is not None:
                        results.append(self._existing(stored, same, item))
                        continue
                    sequence += 1
                    signed = sign(item, sequence, digest)
                    digest = signed.digest
                    rows.append(
                        (agency, sequence, signed.event_id, item.topic, agency, signed.payload, now)
                    )  # in the order of ROW_COLUMNS; keyed by agency (ledger.topics.record_key)
                    known[signed.event_id] = signed.payload
                    results.append(signed)
                    if len(rows) == INSERT_ROWS:
                        self._insert(session, rows)
                        rows = []
            if rows:
                self._insert(session, rows)
            appended = sequence - head.last_sequence
            if appended:
                head.last_sequence, head.last_digest = sequence, digest
            if also is not None:
                also(session, results)
        if self._checkpointer is not None:
            self._unchecked_rows += appended
            if self._unchecked_rows >= CHECKPOINT_ROWS:
                self._unchecked_rows = 0
                self._checkpointer.poke()
        return results

    def _insert(self, session: Session, rows: list[tuple[Any, ...]]) -> None:
        """Rows (``ROW_COLUMNS``) as one executemany. On SQLite straight to the driver, with the
        statement SQLAlchemy compiled from the table and ``created_at`` already in its stored
        form (``_created_at``): Core's per-row parameter processing cost about 4 us a row, a
        fifth of a signature on the gateway's critical path (ORM objects cost 60: Core is kept
        for other databases)."""
        if self._driver_insert is not None:
            session.connection().exec_driver_sql(self._driver_insert, rows)
        else:
            session.execute(insert(_EVENTS), [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows])

    def _created_at(self, now: datetime) -> Any:
        """``now`` as the value ``_insert`` passes: what SQLAlchemy would bind, for the driver."""
        return now if self._bind_created_at is None else self._bind_created_at(now)

    @staticmethod
    def _stored_payloads(session: Session, event_ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in _chunks(sorted(set(event_ids)), 500):
            query = select(OutboxRow.event_id, OutboxRow.payload).where(OutboxRow.event_id.in_(chunk))
            found.update((event_id, payload) for event_id, payload in session.execute(query))
        return found

    def _existing(self, payload: bytes, same: Callable[[A, Mapping[str, Any]], bool], item: A) -> SignedEvent:
        stored = self.decode(payload)
        if not same(item, stored):
            raise DuplicateEventId(
                f"event id {stored['id']} is already used, with other content, by "
                f"{stored['source']} sequence {stored['sequence']} ({stored['type']})"
            )
        return SignedEvent.of(stored, payload)

    @staticmethod
    def decode(payload: bytes) -> dict[str, Any]:
        """The event in a stored (and sent) payload."""
        event: dict[str, Any] = json.loads(payload)
        return event

    def _ensure_head(self, agency: str) -> None:
        """Create the head row in its own transaction, tolerating a concurrent creator, so the
        appending transaction always has an existing row to lock."""
        if agency in self._heads:
            return
        try:
            with self._transaction() as session:
                if session.get(ChainHead, agency) is None:
                    session.add(ChainHead(agency=agency, last_sequence=0, last_digest=""))
        except IntegrityError:
            pass  # another process created it first
        self._heads.add(agency)

    def head(self, agency: str) -> tuple[int, str]:
        """(last sequence, digest of the last event); (0, "") before the first publish."""
        with self._reads() as session:
            row = session.get(ChainHead, agency)
            return (0, "") if row is None else (row.last_sequence, row.last_digest)

    def pending(self, limit: int = 500) -> list[Pending]:
        """Unsent events in (agency, sequence) order: each agency's chain leaves in order.

        Read as plain rows, not ORM objects: the relay reads every event once, and loading
        ``OutboxRow`` instances (identity map, instance state) was a fifth of its CPU per event."""
        with self._reads() as session:
            rows = session.execute(
                select(*(_EVENTS.c[name] for name in PENDING_COLUMNS))
                .where(_EVENTS.c.sent_at.is_(None))
                .order_by(_EVENTS.c.agency, _EVENTS.c.sequence)
                .limit(limit)
            ).tuples()
            return [Pending(*row) for row in rows]

    def has_pending(self) -> bool:
        """Is any row unsent? The relay asks this every ``poll_interval_s`` while idle, so it is
        one cached Core statement on a pooled connection: through a Session it cost ~450 us of
        CPU, most of an idle relay's (~3% of a core), and charged to every event of a run in
        which the relay waits for the projector (issue 13); this costs about a quarter."""
        with self._read_engine.connect() as connection:
            return connection.execute(_ANY_PENDING).first() is not None

    def pending_count(self) -> int:
        with self._reads() as session:
            return (
                session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None)))
                or 0
            )

    def mark_sent(self, acks: list[tuple[int, str, int, int]]) -> None:
        """Record broker acknowledgements: (row id, topic, partition, offset). The topic is
        recorded too: the relay sends a row stored for a legacy family topic to the intake
        topic (``Relay.destination``).

        One executemany of a Core UPDATE by primary key (on SQLite straight to the driver, as
        ``_insert``): the ORM's bulk update by primary key cost ~40 us a row in the relay."""
        if not acks:
            return
        now = self._created_at(datetime.now(UTC))  # sent_at has created_at's column type
        with self._transaction() as session:
            if self._driver_mark_sent is not None:
                rows = [(topic, now, partition, offset, row) for row, topic, partition, offset in acks]
                session.connection().exec_driver_sql(self._driver_mark_sent, rows)
            else:
                session.execute(
                    _MARK_SENT,
                    [{"row": i, "sent": now, "topic": t, "partition": p, "offset": o} for i, t, p, o in acks],
                )

    def sent_event_ids(self) -> set[str]:
        """Ids of every event the broker acknowledged (to find those a consumer never got)."""
        with self._reads() as session:
            return set(session.scalars(select(OutboxRow.event_id).where(OutboxRow.sent_at.is_not(None))))

    def mark_unsent(
        self,
        event_ids: Collection[str] | None = None,
        *,
        agency: str | None = None,
        from_sequence: int = 1,
    ) -> int:
        """Queue sent events again: those named, or an agency's (or everyone's) from a sequence.
        Needed because the embedded broker forgets everything on restart; consumers deduplicate
        on event id. Returns how many rows were re-queued."""
        conditions = [OutboxRow.sent_at.is_not(None), OutboxRow.sequence >= from_sequence]
        if agency is not None:
            conditions.append(OutboxRow.agency == agency)
        selections = (
            [conditions]
            if event_ids is None
            else [[*conditions, OutboxRow.event_id.in_(chunk)] for chunk in _chunks(sorted(event_ids), 500)]
        )
        requeued = 0
        with self._transaction() as session:
            for where in selections:
                result = session.execute(
                    update(OutboxRow).where(*where)
                    .values(sent_at=None, kafka_partition=None, kafka_offset=None)
                )  # fmt: skip
                requeued += int(result.rowcount)  # type: ignore[attr-defined]
        return requeued

    def rows(self, event_ids: Collection[str]) -> dict[str, OutboxRow]:
        """Stored rows by event id (those not in the outbox are absent)."""
        found: dict[str, OutboxRow] = {}
        with self._reads() as session:
            for chunk in _chunks(sorted(event_ids), 500):
                found.update(
                    (row.event_id, row)
                    for row in session.scalars(select(OutboxRow).where(OutboxRow.event_id.in_(chunk)))
                )
        return found

    def switch_cluster(self, cluster_id: str, *, requeue: bool = True) -> int:
        """Record that rows are now sent to ``cluster_id``; returns how many sent rows were
        queued again because a different cluster had acknowledged them.

        A different id means the old cluster's data is not there: tansu keeps nothing across a
        restart (each start is a new cluster), and an Apache Kafka cluster rebuilt from scratch
        has a new id too. Nothing tells the relay which of those events the ledger holds, so
        all are sent again and the ledger ignores the ones it has (idempotent on event id).
        ``requeue=False`` is for a caller that re-queued what was missing itself."""
        with self._transaction() as session:
            row = session.get(RelayCluster, 1)
            if row is not None and row.cluster_id == cluster_id:
                return 0
            requeued = 0
            if row is not None and requeue:
                result = session.execute(
                    update(OutboxRow).where(OutboxRow.sent_at.is_not(None))
                    .values(sent_at=None, kafka_partition=None, kafka_offset=None)
                )  # fmt: skip
                requeued = int(result.rowcount)  # type: ignore[attr-defined]
            if row is None:
                session.add(RelayCluster(id=1, cluster_id=cluster_id))
            else:
                row.cluster_id = cluster_id
            return requeued

    def events(self, agency: str) -> list[OutboxRow]:
        """An agency's outbox rows in chain order (for inspection and tests)."""
        with self._reads() as session:
            return list(
                session.scalars(
                    select(OutboxRow).where(OutboxRow.agency == agency).order_by(OutboxRow.sequence)
                )
            )

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()


def _positional(statement: Any, dialect: Any, order: tuple[str, ...]) -> str:
    """``statement`` compiled for ``dialect`` (a positional one), checked to bind its parameters
    in ``order``, so that rows of plain tuples in that order can go straight to the driver."""
    compiled = statement.compile(dialect=dialect)
    if tuple(compiled.positiontup or ()) != order:
        raise RuntimeError(f"{statement} binds {compiled.positiontup}, not {order}")
    return str(compiled)


def _ready_runs(items: Iterable[A | None]) -> Iterator[list[A]]:
    """``items`` as runs of at most ``LOOKUP``, each ending early where the source is ``IDLE``,
    which comes out as an empty run (``Outbox.append_each``: sign what is ready, then store)."""
    run: list[A] = []
    for item in items:
        if item is None:  # IDLE
            if run:
                yield run
                run = []
            yield []
            continue
        run.append(item)
        if len(run) == LOOKUP:
            yield run
            run = []
    if run:
        yield run


def _chunks(items: list[str], size: int) -> list[list[str]]:
    """Bounded IN lists (SQLite limits bound parameters)."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def sqlite_file_settings(dbapi_connection: Any) -> None:
    """What every connection to a SQLite outbox file sets first, whichever engine opens it (the
    outbox's, the gateway's token store in the same file, ``gateway token create`` often being
    what makes the file): a write-ahead log, synced at every commit, and 16 KiB pages for a new
    file (SQLite ignores the page size for a file that has pages already, which keeps its own
    and works as before). Why the pages (issue 11): a row is ~0.5 KB of signed event plus its
    three index entries, and a 3,000-event commit wrote its log 4 KiB a frame: 2.5 us of CPU a
    row to commit against 0.4 with 16 KiB (inserting 3.3 against 3.0), ~2 us less per event on
    the gateway's signing core."""
    dbapi_connection.execute(f"PRAGMA page_size={PAGE_BYTES}")
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=FULL")


def _engine(url: str, busy_timeout_s: float, autocheckpoint_pages: int | None = None) -> Engine:
    """``autocheckpoint_pages``: SQLite's ``wal_autocheckpoint`` for every connection (None:
    SQLite's default, 1,000)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let the "begin" hook below issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN,
        # which takes the write lock only at the first write: two publishers would read the same
        # head and one would then fail with "database is locked" instead of waiting its turn.
        dbapi_connection.isolation_level = None
        sqlite_file_settings(dbapi_connection)
        if autocheckpoint_pages is not None:
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # ... except for the outbox's reads (``Outbox._reads``): in WAL mode a deferred read sees
        # the last commit and never waits for a writer, while BEGIN IMMEDIATE made the relay's
        # every look for pending rows queue behind each publisher's transaction (which holds
        # the write lock while it signs its whole batch), and the publishers behind the relay's
        # looks (issue 13).
        read = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine
