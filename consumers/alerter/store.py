"""The alerter's own tables (prefix ``alert_``) in the service database.

A consumed batch, the mail rows it creates and the Kafka positions it reaches are written in ONE
transaction: after a crash either all of it is there or none, so each (change, recipient) is mailed
once across restarts, rebalances and replays (the unique key makes a replayed change a no-op).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.message import build_message
from consumers.alerter.routing import route
from ledger.store.private import private_sqlite
from ledger.store.types import UTCTime

log = logging.getLogger(__name__)


class AlertBase(DeclarativeBase):
    """The alerter's tables only: creating them never touches the ledger's or the views'."""


class OutgoingMail(AlertBase):
    __tablename__ = "alert_mail"
    __table_args__ = (UniqueConstraint("change_id", "recipient", name="alert_mail_change_recipient"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[str] = mapped_column(String(64))  # "<uuid>" or "<uuid>:escalation"
    recipient: Mapped[str] = mapped_column(String(320))
    flag_id: Mapped[str] = mapped_column(String(36), index=True)
    message_id: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)  # the rendered RFC 5322 message
    status: Mapped[str] = mapped_column(String(8), index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCTime)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCTime, default=None)


class KafkaPosition(AlertBase):
    __tablename__ = "alert_positions"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(Integer)
    # The broker cluster the offset belongs to: the embedded broker forgets everything when it
    # restarts (a new cluster id), so positions from another cluster are ignored, not trusted.
    cluster: Mapped[str] = mapped_column(String(200), default="")


class SkippedRecord(AlertBase):
    """A record on the flags topic that could not be read (kept for inspection, not retried)."""

    __tablename__ = "alert_skipped"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)


class FlagState(AlertBase):
    """The latest change seen per flag: what digests list and escalation watches."""

    __tablename__ = "alert_flags"

    flag_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12), index=True)  # open | acknowledged | closed
    raised_at: Mapped[datetime] = mapped_column(UTCTime)
    changed_at: Mapped[datetime] = mapped_column(UTCTime)
    last_change: Mapped[str] = mapped_column(Text)  # the gap-flags message, JSON
    escalated: Mapped[bool] = mapped_column(default=False)


STATE_AFTER = {"raised": "open", "reopened": "open", "acknowledged": "acknowledged",
               "resolved": "closed", "dismissed": "closed"}  # fmt: skip


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"time without offset: {value!r}")
    return parsed


FLAG_FIELDS = ("id", "rule", "version", "child", "severity", "title", "status", "due", "concerns", "source",
               "action")  # fmt: skip
EVIDENCE_FIELDS = ("id", "source", "type", "time", "recordedtime")


def minimal(change: dict[str, Any]) -> dict[str, Any]:
    """Only what messages may show: nothing else from a change is kept by the alerter."""
    return {
        "change_id": change["change_id"], "change": change["change"], "changed_at": change["changed_at"],
        "flag": {k: change["flag"].get(k) for k in FLAG_FIELDS},
        "evidence_detail": [
            {k: e.get(k) for k in EVIDENCE_FIELDS} for e in change.get("evidence_detail") or []
        ],
    }  # fmt: skip


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class AlertStore:
    def __init__(self, database_url: str) -> None:
        private_sqlite(database_url)
        self.engine: Engine = create_engine(database_url)
        AlertBase.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def positions(self, topic: str, cluster: str = "") -> dict[int, int]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(KafkaPosition).where(KafkaPosition.topic == topic, KafkaPosition.cluster == cluster)
            )
            return {row.partition: row.next_offset for row in rows}

    def apply_batch(
        self, records: Iterable[Record], config: PartnershipConfig, now: datetime, cluster: str = ""
    ) -> int:
        """Turn records into mail rows and advance positions, in one transaction. Returns the
        number of new mail rows. Records at or before a stored position are ignored (replay)."""
        created = 0
        with Session(self.engine) as session, session.begin():
            stored: dict[tuple[str, int], KafkaPosition] = {}
            for rec in records:
                key = (rec.topic, rec.partition)
                pos = stored.get(key) or session.get(KafkaPosition, key)
                if pos is None:
                    pos = KafkaPosition(topic=rec.topic, partition=rec.partition, next_offset=0)
                    pos.cluster = cluster
                    session.add(pos)
                elif pos.cluster != cluster:  # another broker's offsets mean nothing here
                    pos.cluster, pos.next_offset = cluster, 0
                stored[key] = pos
                if rec.offset < pos.next_offset:
                    continue
                pos.next_offset = rec.offset + 1
                try:
                    change = json.loads(rec.value or b"")
                    created += self._add_change(session, change, config, now)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("skipping unreadable flag change %s/%s@%s: %s", *key, rec.offset, exc)
                    session.merge(SkippedRecord(topic=rec.topic, partition=rec.partition,
                                                offset=rec.offset, reason=repr(exc)[:1000]))  # fmt: skip
        return created

    def _add_change(
        self, session: Session, change: dict[str, Any], config: PartnershipConfig, now: datetime
    ) -> int:
        if not isinstance(change, dict) or not isinstance(change.get("flag"), dict):
            raise ValueError("not a flag change message")
        change_id = str(change["change_id"])
        self._track_flag(session, change)
        created = 0
        flag_id = str(change["flag"]["id"])
        for recipient in route(change, config).immediate:
            build = partial(build_message, change, recipient, config)
            created += self.add_mail(session, change_id, recipient, flag_id, build, now)
        return created

    @staticmethod
    def _track_flag(session: Session, change: dict[str, Any]) -> None:
        flag = change["flag"]
        changed_at = parse_time(str(change["changed_at"]))
        state = STATE_AFTER.get(str(change["change"]), "open")
        row = session.get(FlagState, str(flag["id"]))
        if row is None:
            session.add(FlagState(
                flag_id=str(flag["id"]), severity=str(flag.get("severity", "")), state=state,
                raised_at=changed_at, changed_at=changed_at, last_change=json.dumps(minimal(change)),
                escalated=False,
            ))  # fmt: skip
        elif changed_at >= row.changed_at:  # redelivered older changes do not undo newer ones
            if change["change"] == "reopened":
                row.raised_at, row.escalated = changed_at, False
            row.severity, row.state, row.changed_at = str(flag.get("severity", "")), state, changed_at
            row.last_change = json.dumps(minimal(change))

    def add_mail(
        self,
        session: Session,
        key: str,
        recipient: str,
        flag_id: str,
        build: Callable[[], EmailMessage],
        now: datetime,
    ) -> bool:
        """A pending mail row unless (key, recipient) exists already. The message is built only
        for a new row: on a replay, where every row exists, rendering was half the work."""
        exists = session.scalar(
            select(OutgoingMail.id).where(OutgoingMail.change_id == key, OutgoingMail.recipient == recipient)
        )
        if exists is not None:
            return False
        msg = build()
        session.add(
            OutgoingMail(
                change_id=key, recipient=recipient, flag_id=flag_id, message_id=str(msg["Message-ID"]),
                subject=str(msg["Subject"]), message=msg.as_string(), status="pending", attempts=0,
                next_attempt_at=now, created_at=now,
            )
        )  # fmt: skip
        return True

    def mail(self, status: str | None = None) -> list[OutgoingMail]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(OutgoingMail).order_by(OutgoingMail.id)
            if status is not None:
                query = query.where(OutgoingMail.status == status)
            return list(session.scalars(query))
