"""The alerter's own tables (prefix ``alert_``) in the service database.

A consumed batch, the mail rows it creates and the Kafka positions it reaches are written in ONE
transaction: after a crash either all of it is there or none, so each (change, recipient) is mailed
once across restarts, rebalances and replays (``alert_mail_changes`` records which mail carried each
(change, recipient), so a replayed change is a no-op however the replay's polls are cut).

Several changes about one child for one recipient in one batch (one incident can raise five flags
at once) become ONE message; a change that no lead is routed for goes to the partnership's
fallback address, is logged, and is kept in ``alert_unrouted`` for `alerts pending --unrouted`
and `alerts resend`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.message import build_batch_message, build_message
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


class MailChange(AlertBase):
    """Which mail (by its key) carried a flag change to a recipient: the exactly-once record per
    (change, recipient), whether the change went alone or in a batch with others."""

    __tablename__ = "alert_mail_changes"

    change_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    mail_key: Mapped[str] = mapped_column(String(64))  # OutgoingMail.change_id


class UnroutedChange(AlertBase):
    """A flag change no lead was routed for: sent to the fallback address, kept here so that a
    lead routed later can be sent what they missed (`alerts pending --unrouted`, `alerts resend`)."""

    __tablename__ = "alert_unrouted"

    change_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flag_id: Mapped[str] = mapped_column(String(36))
    child: Mapped[str | None] = mapped_column(String(128), default=None)
    rule: Mapped[str] = mapped_column(String(100))
    concerns: Mapped[str] = mapped_column(Text)  # JSON list of agency ids
    changed_at: Mapped[datetime] = mapped_column(UTCTime, index=True)
    change: Mapped[str] = mapped_column(Text)  # the minimal change, JSON (what a message may show)


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
EVIDENCE_FIELDS = ("id", "source", "type", "time", "recordedtime", "refs")


def minimal(change: dict[str, Any]) -> dict[str, Any]:
    """Only what messages may show: nothing else from a change is kept by the alerter."""
    return {
        "change_id": change["change_id"], "change": change["change"], "changed_at": change["changed_at"],
        "flag": {k: change["flag"].get(k) for k in FLAG_FIELDS},
        "evidence_detail": [
            {k: e.get(k) for k in EVIDENCE_FIELDS} for e in change.get("evidence_detail") or []
        ],
    }  # fmt: skip


# changes to mail in one batch: (child, recipient) -> change id -> change
Groups = dict[tuple[str, str], dict[str, dict[str, Any]]]


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
            groups: Groups = {}
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
                    self._add_change(session, change, config, groups)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("skipping unreadable flag change %s/%s@%s: %s", *key, rec.offset, exc)
                    session.merge(SkippedRecord(topic=rec.topic, partition=rec.partition,
                                                offset=rec.offset, reason=repr(exc)[:1000]))  # fmt: skip
            for (_, recipient), changes in groups.items():
                created += self.mail_changes(session, list(changes.values()), recipient, config, now)
        return created

    def _add_change(
        self,
        session: Session,
        change: dict[str, Any],
        config: PartnershipConfig,
        groups: Groups,
    ) -> None:
        """Track the flag and put the change in the (child, recipient) groups it is mailed in."""
        if not isinstance(change, dict) or not isinstance(change.get("flag"), dict):
            raise ValueError("not a flag change message")
        change_id, flag = str(change["change_id"]), change["flag"]
        str(flag["id"])  # a change without a flag id is unreadable: fail here, not when mailing
        self._track_flag(session, change)
        routed = route(change, config)
        recipients = routed.immediate
        if not routed.recipients:
            recipients = (config.fallback,)
            self._record_unrouted(session, change)
            log.warning(
                "flag change %s (%s, concerns %s) has no routed lead: sent to the fallback %s",
                change_id, flag.get("rule"), flag.get("concerns"), config.fallback,
            )  # fmt: skip
        for recipient in recipients:
            groups.setdefault((str(flag.get("child")), recipient), {})[change_id] = change

    @staticmethod
    def _record_unrouted(session: Session, change: dict[str, Any]) -> None:
        flag = change["flag"]
        kept = minimal(change)
        session.merge(UnroutedChange(
            change_id=str(change["change_id"]), flag_id=str(flag["id"]), child=flag.get("child"),
            rule=str(flag.get("rule", "")), concerns=json.dumps(kept["flag"]["concerns"] or []),
            changed_at=parse_time(str(change["changed_at"])), change=json.dumps(kept),
        ))  # fmt: skip

    def mail_changes(
        self,
        session: Session,
        changes: Sequence[dict[str, Any]],
        recipient: str,
        config: PartnershipConfig,
        now: datetime,
    ) -> int:
        """One mail to ``recipient`` with those of ``changes`` (all about one child) not yet mailed
        to them: the change's own message if one is left, a batch message if several. Returns 1
        if a mail row was created."""
        fresh = [c for c in changes if session.get(MailChange, (str(c["change_id"]), recipient)) is None]
        if not fresh:
            return 0
        build: Callable[[], EmailMessage]
        if len(fresh) == 1:
            key, flag_id = str(fresh[0]["change_id"]), str(fresh[0]["flag"]["id"])
            build = partial(build_message, fresh[0], recipient, config)
        else:
            ids = "\n".join(sorted(str(c["change_id"]) for c in fresh))
            key, flag_id = f"batch:{hashlib.sha256(ids.encode()).hexdigest()[:40]}", "batch"
            build = partial(build_batch_message, fresh, recipient, config, key)
        created = self.add_mail(session, key, recipient, flag_id, build, now)
        session.add_all(
            MailChange(change_id=str(c["change_id"]), recipient=recipient, mail_key=key) for c in fresh
        )
        return int(created)

    def queue(
        self, recipient: str, changes: Sequence[dict[str, Any]], config: PartnershipConfig, now: datetime
    ) -> int:
        """Mail ``changes`` to ``recipient`` (one message per child; each change at most once to
        them, as for the consumed topic). Returns the number of new mail rows."""
        by_child: dict[str, list[dict[str, Any]]] = {}
        for change in changes:
            by_child.setdefault(str(change["flag"].get("child")), []).append(change)
        with Session(self.engine) as session, session.begin():
            return sum(
                self.mail_changes(session, group, recipient, config, now) for group in by_child.values()
            )

    def unrouted(self, since: datetime | None = None) -> list[UnroutedChange]:
        """Flag changes no lead was routed for (oldest first), since ``since`` if given."""
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(UnroutedChange).order_by(UnroutedChange.changed_at, UnroutedChange.change_id)
            if since is not None:
                query = query.where(UnroutedChange.changed_at >= since)
            return list(session.scalars(query))

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
