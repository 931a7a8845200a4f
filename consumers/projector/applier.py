"""Apply a batch of raw messages to the ledger, the child views and the flags, atomically.

Kafka-free on purpose: the runner feeds it what it polled, a replay feeds it what it read, a
test feeds it bytes. Signature verification (the CPU cost) runs before the write transaction so
several projector processes verify in parallel; acceptance itself is serialised by the ledger's
writer lock so that chain decisions always see each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.canonical import event_digest
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.store.ledger import KEY_EVENT_TYPES, Ledger
from ledger.store.models import (
    AcceptedEvent,
    EquivocationRow,
    QuarantineEntry,
    SequenceHoleRow,
)
from ledger.verification import (
    DUPLICATE,
    SELF_CLEARING,
    Reason,
    Rejection,
    check_chain,
    check_event,
    parse_message,
)
from policies.base import Policy
from policies.engine import evaluate
from policies.integrity import Equivocation, SequenceHole, integrity_flags
from policies.registry import ALL_POLICIES
from policies.view import ChildView, Event
from views.flags import sync_flags
from views.models import ChildRow
from views.projection import rebuild_child

LOST_EVENT_GRACE = timedelta(hours=1)
# Events that are about the partnership's own bookkeeping, not about the child's life.
NOT_CHILD_EVENTS = frozenset({*KEY_EVENT_TYPES, "ledger.tree-head", "access.recorded"})
INTEGRITY_RULES = ("lost-event", "equivocation")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Message:
    raw: bytes
    origin: str = ""  # "topic/partition/offset", for people reading the quarantine


@dataclass
class ApplyStats:
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    held: int = 0
    readmitted: int = 0
    children: set[str] = field(default_factory=set)

    def add(self, other: ApplyStats) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.held += other.held
        self.readmitted += other.readmitted
        self.children |= other.children


class Applier:
    def __init__(
        self,
        ledger: Ledger,
        root: RootKey,
        *,
        policies: Sequence[Policy] = ALL_POLICIES,
        clock: Callable[[], datetime] = utc_now,
        hole_grace: timedelta = LOST_EVENT_GRACE,
    ) -> None:
        self.ledger = ledger
        self.root = root
        self.policies = policies
        self.clock = clock
        self.hole_grace = hole_grace

    # -- entry points ---------------------------------------------------------------------
    def apply(self, messages: Sequence[Message], track: Mapping[str, int] | None = None) -> ApplyStats:
        """Apply a batch; ``track`` maps tracking names to the positions the batch reaches."""
        with self.ledger.read() as session:
            registry = self.ledger.key_registry(session, self.root)
        checked = sorted(
            ((m, self._check(m.raw, registry)) for m in messages), key=lambda pair: _chain_order(pair[1])
        )
        stats = ApplyStats()
        with self.ledger.writer() as session:
            registry = self.ledger.key_registry(session, self.root)
            now = self.clock()
            triggers: dict[str, str] = {}
            for message, pre in checked:
                self._one(session, registry, message, pre, now, stats, triggers)
            self._evaluate(session, registry, now, triggers, stats)
            for name, offset in (track or {}).items():
                self.ledger.track(session, name, offset)
        return stats

    def sweep(self) -> ApplyStats:
        """Work that falls due with time rather than with messages: held events whose hole
        outlived the grace period are accepted over it, and children with a passed deadline
        are evaluated again (absence flags are raised by nobody acting)."""
        stats = ApplyStats()
        with self.ledger.writer() as session:
            registry = self.ledger.key_registry(session, self.root)
            now = self.clock()
            triggers: dict[str, str] = {}
            overdue = session.scalars(
                select(QuarantineEntry)
                .where(
                    QuarantineEntry.status == "held",
                    QuarantineEntry.reason == Reason.SEQUENCE_GAP,
                    QuarantineEntry.received_at <= now - self.hole_grace,
                )
                .order_by(QuarantineEntry.source, QuarantineEntry.sequence)
            ).all()
            for entry in overdue:
                self._retry(session, registry, entry, now, stats, triggers, over_hole=True)
            for child in session.scalars(select(ChildRow.child).where(ChildRow.next_due <= now)):
                triggers.setdefault(child, "")
            self._evaluate(session, registry, now, triggers, stats)
        return stats

    def readmit(self, entry_id: int) -> QuarantineEntry:
        """Re-verify one quarantined message (after its cause was fixed); accepted or not, the
        entry says what happened."""
        stats = ApplyStats()
        with self.ledger.writer() as session:
            entry = session.get(QuarantineEntry, entry_id)
            if entry is None:
                raise KeyError(f"no quarantine entry {entry_id}")
            if entry.status == "readmitted":
                raise ValueError(f"quarantine entry {entry_id} was already readmitted")
            registry = self.ledger.key_registry(session, self.root)
            now = self.clock()
            triggers: dict[str, str] = {}
            self._retry(session, registry, entry, now, stats, triggers, over_hole=False)
            self._evaluate(session, registry, now, triggers, stats)
            session.expunge(entry)
            return entry

    # -- one message ----------------------------------------------------------------------
    @staticmethod
    def _check(raw: bytes, registry: KeyRegistry) -> dict[str, Any] | Rejection:
        parsed = parse_message(raw)
        if isinstance(parsed, Rejection):
            return parsed
        return check_event(parsed, registry) or parsed

    def _one(
        self,
        session: Session,
        registry: KeyRegistry,
        message: Message,
        pre: dict[str, Any] | Rejection,
        now: datetime,
        stats: ApplyStats,
        triggers: dict[str, str],
    ) -> None:
        if isinstance(pre, Rejection) and pre.reason == Reason.UNKNOWN_KEY:
            pre = self._check(message.raw, registry)  # a key may have arrived in this batch
        if isinstance(pre, Rejection):
            self._quarantine(session, message.raw, message.origin, pre, now, stats)
            return
        self._admit(session, registry, pre, message.raw, message.origin, now, stats, triggers)

    def _admit(
        self,
        session: Session,
        registry: KeyRegistry,
        event: dict[str, Any],
        raw: bytes,
        origin: str,
        now: datetime,
        stats: ApplyStats,
        triggers: dict[str, str],
        *,
        over_hole: bool = False,
        entry: QuarantineEntry | None = None,
    ) -> Rejection | str | None:
        """Chain checks, then record. Returns what ``check_chain`` decided; a refusal updates
        ``entry`` (a message being re-verified) instead of quarantining it a second time."""
        outcome = check_chain(event, self.ledger.chain_facts(session, event))
        if outcome == DUPLICATE:
            stats.duplicates += 1
            return outcome
        if isinstance(outcome, Rejection) and not (over_hole and outcome.reason == Reason.SEQUENCE_GAP):
            self._quarantine(session, raw, origin, outcome, now, stats, event, entry)
            return outcome
        successor_mismatch = self._successor_mismatch(session, event)
        if successor_mismatch is not None:
            self._quarantine(session, raw, origin, successor_mismatch, now, stats, event, entry)
            return successor_mismatch
        self.ledger.record(session, event, now, over_hole=over_hole)
        stats.accepted += 1
        self._fill_holes(session, event, now)
        if event["type"] in KEY_EVENT_TYPES:
            registry.apply(event)
        if event["type"] not in NOT_CHILD_EVENTS:
            triggers[event["subject"]] = event["id"]
        self._release_waiting(session, registry, event, now, stats, triggers)
        return None

    def _successor_mismatch(self, session: Session, event: Mapping[str, Any]) -> Rejection | None:
        """An event accepted over a hole names its predecessor's hash; a late predecessor must
        match it, or the chain was forked."""
        successor = session.scalar(
            select(AcceptedEvent).where(
                AcceptedEvent.source == event["source"],
                AcceptedEvent.sequence == event["sequence"] + 1,
            )
        )
        if successor is None:
            return None
        if json.loads(successor.envelope)["prevhash"] != event_digest(event):
            return Rejection(
                Reason.CHAIN_BROKEN,
                f"accepted {event['source']} sequence {event['sequence'] + 1} "
                "names a different predecessor hash",
            )
        return None

    def _release_waiting(
        self,
        session: Session,
        registry: KeyRegistry,
        event: Mapping[str, Any],
        now: datetime,
        stats: ApplyStats,
        triggers: dict[str, str],
    ) -> None:
        """Held messages that this event may unblock: its successor, or events signed by the
        key it registers."""
        conditions = [
            (QuarantineEntry.reason == Reason.SEQUENCE_GAP)
            & (QuarantineEntry.source == event["source"])
            & (QuarantineEntry.sequence == event["sequence"] + 1)
        ]
        if event["type"] == "agency.key.registered":
            conditions.append(
                (QuarantineEntry.reason == Reason.UNKNOWN_KEY) & (QuarantineEntry.kid == event["data"]["kid"])
            )
        for condition in conditions:
            waiting = session.scalars(
                select(QuarantineEntry)
                .where(QuarantineEntry.status == "held", condition)
                .order_by(QuarantineEntry.sequence, QuarantineEntry.id)
            ).all()
            for entry in waiting:
                self._retry(session, registry, entry, now, stats, triggers, over_hole=False)

    def _retry(
        self,
        session: Session,
        registry: KeyRegistry,
        entry: QuarantineEntry,
        now: datetime,
        stats: ApplyStats,
        triggers: dict[str, str],
        *,
        over_hole: bool,
    ) -> None:
        pre = self._check(entry.raw, registry)
        if isinstance(pre, Rejection):
            self._quarantine(session, entry.raw, entry.origin, pre, now, stats, None, entry)
            return
        entry.status = "readmitting"  # keeps a recursive release from picking it up again
        outcome = self._admit(
            session,
            registry,
            pre,
            entry.raw,
            entry.origin,
            now,
            stats,
            triggers,
            over_hole=over_hole,
            entry=entry,
        )
        if outcome is None or outcome == DUPLICATE:
            entry.status, entry.resolved_at = "readmitted", now
            entry.resolution = (
                "already in the ledger"
                if outcome == DUPLICATE
                else "accepted over a sequence hole after the grace period"
                if over_hole
                else "accepted on re-verification"
            )
            stats.readmitted += outcome is None

    def _quarantine(
        self,
        session: Session,
        raw: bytes,
        origin: str,
        rejection: Rejection,
        now: datetime,
        stats: ApplyStats,
        event: Mapping[str, Any] | None = None,
        entry: QuarantineEntry | None = None,
    ) -> None:
        status = "held" if rejection.reason in SELF_CLEARING else "quarantined"
        if entry is not None:  # re-verified and still refused: one entry per message
            entry.reason, entry.detail, entry.status = rejection.reason, rejection.detail, status
            return
        fields = _identity(raw) if event is None else _fields(event)
        entry = QuarantineEntry(
            received_at=now,
            reason=rejection.reason,
            detail=rejection.detail,
            status=status,
            raw=raw,
            origin=origin,
            # A chain hole is announced by the lost-event flag if it lasts, not per held message.
            published=rejection.reason == Reason.SEQUENCE_GAP,
            **fields,
        )
        session.add(entry)
        session.flush()
        if status == "held":
            stats.held += 1
        else:
            stats.quarantined += 1
        if rejection.reason == Reason.EQUIVOCATION and event is not None:
            accepted = session.scalar(
                select(AcceptedEvent.event_id).where(
                    AcceptedEvent.source == event["source"],
                    AcceptedEvent.sequence == event["sequence"],
                )
            )
            session.add(
                EquivocationRow(
                    source=event["source"],
                    sequence=event["sequence"],
                    accepted_event=accepted or "",
                    conflicting_event=str(event["id"]),
                    detected_at=now,
                )
            )
        if rejection.reason == Reason.SEQUENCE_GAP and event is not None:
            self._notice_hole(session, event, now)

    # -- holes ----------------------------------------------------------------------------
    def _notice_hole(self, session: Session, event: Mapping[str, Any], now: datetime) -> None:
        source, sequence = event["source"], event["sequence"]
        open_hole = session.scalar(
            select(SequenceHoleRow).where(
                SequenceHoleRow.source == source,
                SequenceHoleRow.filled_at.is_(None),
                SequenceHoleRow.first_missing < sequence,
            )
        )
        if open_hole is not None:
            return  # the hole was noticed earlier; a later arrival does not restart its clock
        highest = self.ledger.chain_facts(session, event).highest_sequence
        session.add(
            SequenceHoleRow(
                source=source,
                first_missing=highest + 1,
                last_missing=sequence - 1,
                noticed_at=now,
                later_event=str(event["id"]),
            )
        )

    def _fill_holes(self, session: Session, event: Mapping[str, Any], now: datetime) -> None:
        for hole in session.scalars(
            select(SequenceHoleRow).where(
                SequenceHoleRow.source == event["source"], SequenceHoleRow.filled_at.is_(None)
            )
        ):
            if not hole.first_missing <= event["sequence"] <= hole.last_missing:
                continue
            present = set(
                session.scalars(
                    select(AcceptedEvent.sequence).where(
                        AcceptedEvent.source == hole.source,
                        AcceptedEvent.sequence.between(hole.first_missing, hole.last_missing),
                    )
                )
            )
            if len(present) == hole.last_missing - hole.first_missing + 1:
                hole.filled_at, hole.filled_by = now, str(event["id"])

    # -- views and flags ------------------------------------------------------------------
    def _evaluate(
        self,
        session: Session,
        registry: KeyRegistry,
        now: datetime,
        triggers: Mapping[str, str],
        stats: ApplyStats,
    ) -> None:
        registered = registry.registered_agencies()
        for child, trigger in sorted(triggers.items()):
            envelopes = self.ledger.events_about(session, child)
            events = [Event.from_envelope(e) for e in envelopes if e["type"] not in NOT_CHILD_EVENTS]
            if not events:
                continue
            view = ChildView.build(child, events, registered)
            evaluation = evaluate(view, now, self.policies)
            rebuild_child(session, view, evaluation.next_due, now)
            detail = {e.id: _evidence(e) for e in view.events}
            sync_flags(
                session,
                child,
                evaluation.flags,
                now,
                trigger or None,
                detail,
                rules=[p.id for p in self.policies],
            )
            stats.children.add(child)
        self._evaluate_integrity(session, now)

    def _evaluate_integrity(self, session: Session, now: datetime) -> None:
        holes = [
            SequenceHole(
                source=h.source,
                missing=(h.first_missing, h.last_missing),
                noticed_at=h.noticed_at,
                later_event=h.later_event,
                filled_at=h.filled_at,
                filled_by=h.filled_by,
            )
            for h in session.scalars(select(SequenceHoleRow))
        ]
        equivocations = [
            Equivocation(
                source=q.source,
                sequence=q.sequence,
                accepted_event=q.accepted_event,
                conflicting_event=q.conflicting_event,
                detected_at=q.detected_at,
            )
            for q in session.scalars(select(EquivocationRow))
        ]
        if not holes and not equivocations:
            return
        evaluation = integrity_flags(holes, equivocations, now)
        sync_flags(session, None, evaluation.flags, now, None, {}, rules=INTEGRITY_RULES)


def _chain_order(checked: dict[str, Any] | Rejection) -> tuple[int, str, int]:
    """Apply a batch in chain order, key registrations first: a poll interleaves partitions
    arbitrarily, and applying in arrival order would hold most events for their predecessor."""
    if isinstance(checked, Rejection):
        return (2, "", 0)
    first = 0 if checked["type"] in KEY_EVENT_TYPES else 1
    return (first, checked["source"], checked["sequence"])


def _evidence(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat(),
        "recordedtime": event.recordedtime.isoformat(),
    }


def _fields(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(event.get("id"))[:64] if event.get("id") is not None else None,
        "source": _text(event.get("source"), 200),
        "sequence": event.get("sequence") if isinstance(event.get("sequence"), int) else None,
        "subject": _text(event.get("subject"), 128),
        "type": _text(event.get("type"), 64),
        "kid": _text(event.get("kid"), 64),
    }


def _identity(raw: bytes) -> dict[str, Any]:
    """Whatever identifying attributes a refused message has, for listing and re-verification
    (a message that is not JSON has none: its sha256 stands in for an id)."""
    parsed = parse_message(raw)
    if isinstance(parsed, Rejection):
        return {"event_id": "sha256:" + hashlib.sha256(raw).hexdigest()[:57]}
    return _fields(parsed)


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None
