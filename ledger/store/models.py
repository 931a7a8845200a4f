"""Tables the ledger keeps beside eventsourcing's ``ledger_events``.

``ledger_events`` (the library's table) is the append-only record: one stream per agency whose
version is the agency's ``sequence``, so the unique (stream, version) index is the database's own
guard against two events at one place in a chain. The tables here index that record for the
questions asked on every message (seen this id? what is at sequence n-1?) and keep what was
refused, so nothing is ever silently dropped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledger.store.types import UTCTime


class Base(DeclarativeBase):
    """Declarative base of every table the service owns (views and alerts use their own)."""


class AcceptedEvent(Base):
    """One row per accepted event: the index over ``ledger_events``."""

    __tablename__ = "ledger_accepted"
    __table_args__ = (
        UniqueConstraint("source", "sequence", name="ledger_accepted_chain"),
        Index("ledger_accepted_subject", "subject", "time"),
        # A child projection reads a child's events accepted after the last position it read
        # (views.projection.load_events): a seek, not a pass over all the child's rows (0009).
        Index("ledger_accepted_subject_position", "subject", "position"),
        # The key registry reads only key events, and first only their ids and positions
        # (Ledger.key_registry): covering, so that costs the same at 10k and at 1M events.
        Index("ledger_accepted_type", "type", "position", "event_id"),
    )

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)  # ledger_events notification id
    source: Mapped[str] = mapped_column(String(200))
    # BigInteger: a sequence may be any JSON-exact integer (up to 2**53 - 1); PostgreSQL's
    # INTEGER stops at 2**31 - 1, and a refused INSERT would abort the batch's transaction.
    sequence: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCTime)
    recordedtime: Mapped[datetime] = mapped_column(UTCTime)
    accepted_at: Mapped[datetime] = mapped_column(UTCTime)
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[str] = mapped_column(Text)  # the event as received, canonical JSON
    over_hole: Mapped[bool] = mapped_column(default=False)  # accepted before its predecessor


class QuarantineEntry(Base):
    """A message that was not applied, with why, and its exact bytes.

    ``status``: ``held`` (may clear by itself: a missing predecessor or key), ``quarantined``
    (needs a person), ``readmitted`` (accepted later), ``duplicate-of`` never appears here:
    redeliveries of accepted events are idempotent and only counted.
    """

    __tablename__ = "ledger_quarantine"
    __table_args__ = (Index("ledger_quarantine_status", "status", "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCTime)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    source: Mapped[str | None] = mapped_column(String(200), default=None)
    sequence: Mapped[int | None] = mapped_column(BigInteger, default=None)
    subject: Mapped[str | None] = mapped_column(String(128), default=None)
    type: Mapped[str | None] = mapped_column(String(64), default=None)
    kid: Mapped[str | None] = mapped_column(String(64), default=None)
    origin: Mapped[str] = mapped_column(String(300), default="")  # topic/partition/offset
    resolved_at: Mapped[datetime | None] = mapped_column(UTCTime, default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    published: Mapped[bool] = mapped_column(default=False)


class SequenceHoleRow(Base):
    """A gap in an agency's chain: noticed when a later sequence arrived first."""

    __tablename__ = "ledger_holes"
    # Every projector batch reads the open holes, and every batch's partnership flags the holes
    # filled then (views.queries): without this index both scanned every hole ever noticed.
    __table_args__ = (Index("ledger_holes_filled", "filled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    first_missing: Mapped[int] = mapped_column(BigInteger)
    last_missing: Mapped[int] = mapped_column(BigInteger)
    noticed_at: Mapped[datetime] = mapped_column(UTCTime)
    later_event: Mapped[str] = mapped_column(String(36))
    filled_at: Mapped[datetime | None] = mapped_column(UTCTime, default=None)
    filled_by: Mapped[str | None] = mapped_column(String(36), default=None)


class EquivocationRow(Base):
    __tablename__ = "ledger_equivocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(BigInteger)
    accepted_event: Mapped[str] = mapped_column(String(36))
    conflicting_event: Mapped[str] = mapped_column(String(64))
    detected_at: Mapped[datetime] = mapped_column(UTCTime)


class WriterLock(Base):
    """One row; updating it first thing makes a SQLite transaction the single writer at once.

    Without it a deferred SQLite transaction that reads then writes can fail with SQLITE_BUSY
    when another projector process committed in between. PostgreSQL uses an advisory lock.
    """

    __tablename__ = "ledger_writer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
