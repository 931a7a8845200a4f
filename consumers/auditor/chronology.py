"""The multi-agency chronology a review author needs, computed from the ledger as of a time.

Reviews rebuild by hand, agency by agency, who knew what and when. Here each event about the
child comes with its time, recorded time, agency and a plain-language summary
(``views.summaries``, the same sentences the web timeline shows); which agencies knew of it (its
source when recorded, each agency a ``notification.sent`` named it to, by id or by reference) and
when; and, for the whole period, every flag as a span (raised, then resolved, dismissed or still
open) and every notification with its acknowledgement.

Governance events (the keys of the agencies involved, who looked at the record, people's decisions
about flags, the latest tree head) are kept apart from practice events: a review reads what
happened to the child first, and how the record itself was handled second.

Flags are evaluated ONCE, as of the chronology's time (``flags_as_of``), and each entry's "flags
open when it was recorded" is read off those spans. Evaluating at every recorded time (as this
module first did) costs one full evaluation per event, quadratic in the child's history; the
spans give the same answer for every flag whose life is one span. What the single evaluation
cannot show is a flag that was resolved and later reopened: it appears as one span from its
first due time, still open; the flag's own history (``flags explain``) has every change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from ledger.timeutil import parse_time
from views.queries import flags_as_of
from views.summaries import event_name, event_refs, summarise

KEY_TYPES = ("agency.key.registered", "agency.key.revoked")
TREE_HEAD = "ledger.tree-head"
# About the record rather than the child: listed apart from practice events.
GOVERNANCE_TYPES = (*KEY_TYPES, TREE_HEAD, "access.recorded", "flag.acknowledged", "flag.dismissed")


@dataclass(frozen=True)
class Knowledge:
    agency: str
    since: datetime
    via: str  # "source" or "notified"


@dataclass
class Entry:
    id: str
    time: datetime
    recordedtime: datetime
    agency: str
    type: str
    summary: str
    known_by: list[Knowledge] = field(default_factory=list)
    open_flags: list[str] = field(default_factory=list)  # rule ids open when it was recorded


@dataclass(frozen=True)
class FlagPeriod:
    id: str
    rule: str
    title: str
    severity: str
    detail: str
    opened: datetime  # when it fell due
    closed: datetime | None  # resolved or dismissed at; None while still open at the as-of time
    status: str
    open_for: timedelta
    closed_how: str = ""  # "resolved by ..." / "dismissed by ...: reason"

    def open_at(self, when: datetime) -> bool:
        return self.opened <= when and (self.closed is None or when < self.closed)


@dataclass(frozen=True)
class NotificationRecord:
    id: str
    sent: datetime
    sender: str
    to: str
    about: tuple[str, ...]
    acknowledged: datetime | None


@dataclass
class Chronology:
    child: str
    as_of: datetime
    entries: list[Entry]  # practice events
    flags: list[FlagPeriod]
    notifications: list[NotificationRecord]
    aware: list[Knowledge]  # every agency aware of the child, and since when
    governance: list[Entry] = field(default_factory=list)  # keys, reads, flag decisions, tree head


def _entry(event: Mapping[str, Any], child: str, names: Mapping[str, str]) -> Entry:
    return Entry(
        event["id"],
        parse_time(event["time"]),
        parse_time(event["recordedtime"]),
        event["source"],
        event["type"],
        summarise(event["type"], event["source"], event["data"], subject=child, names=names),
    )


def _order(event: Mapping[str, Any]) -> tuple[datetime, datetime, str]:
    return (parse_time(event["time"]), parse_time(event["recordedtime"]), str(event["id"]))


def build_chronology(ledger: Ledger, root: RootKey, child: str, as_of: datetime) -> Chronology:
    with ledger.read() as session:
        about = [e for e in ledger.events_about(session, child) if parse_time(e["recordedtime"]) <= as_of]
        events = sorted((e for e in about if e["type"] not in GOVERNANCE_TYPES), key=_order)
        agencies = sorted({e["source"] for e in events})
        record = [e for e in about if e["type"] in GOVERNANCE_TYPES]
        record += _keys_and_head(session, agencies, as_of)
    names = {e["id"]: event_name(e["type"], e["data"]) for e in events}
    entries = [_entry(e, child, names) for e in events]
    by_name: dict[str, Entry] = {}
    for entry, event in zip(entries, events, strict=True):
        entry.known_by.append(Knowledge(entry.agency, entry.recordedtime, "source"))
        for name in {event["id"], *event_refs(event["data"])}:
            by_name.setdefault(name, entry)
    notifications = _notifications(events)
    for note in notifications:
        for name in note.about:
            named = by_name.get(name)
            if named is not None and all(k.agency != note.to for k in named.known_by):
                named.known_by.append(Knowledge(note.to, note.sent, "notified"))
    said = {entry.id: entry.summary for entry in entries}
    periods = _flag_periods(ledger, root, child, as_of, record, said)
    for entry in entries:
        entry.open_flags = sorted(p.rule for p in periods if p.open_at(entry.recordedtime))
    flag_names = {p.id: f"{p.id[:8]} ({p.rule})" for p in periods}
    governance = [_entry(e, child, flag_names) for e in sorted(record, key=_order)]
    return Chronology(
        child, as_of, entries, periods, notifications, _aware(entries, notifications), governance
    )


def _keys_and_head(session: Session, agencies: list[str], as_of: datetime) -> list[dict[str, Any]]:
    """Registrations and revocations of the involved agencies' keys, and the latest tree head by
    ``as_of``: what an auditor needs to check this chronology's events from the root key."""
    keys = session.scalars(
        select(AcceptedEvent.envelope).where(
            AcceptedEvent.type.in_(KEY_TYPES),
            AcceptedEvent.subject.in_(agencies),
            AcceptedEvent.recordedtime <= as_of,
        )
    )
    head = session.scalar(
        select(AcceptedEvent.envelope)
        .where(AcceptedEvent.type == TREE_HEAD, AcceptedEvent.recordedtime <= as_of)
        .order_by(AcceptedEvent.position.desc())
        .limit(1)
    )
    return [json.loads(k) for k in keys] + ([json.loads(head)] if head else [])


def _notifications(events: list[dict[str, Any]]) -> list[NotificationRecord]:
    acknowledged = {
        e["data"]["notification"]: parse_time(e["recordedtime"])
        for e in events
        if e["type"] == "notification.acknowledged"
    }
    return [
        NotificationRecord(
            e["id"],
            parse_time(e["recordedtime"]),
            e["source"],
            e["data"]["to"],
            tuple(str(a) for a in e["data"].get("about", [])),
            acknowledged.get(e["id"]),
        )
        for e in events
        if e["type"] == "notification.sent"
    ]


def _flag_periods(
    ledger: Ledger,
    root: RootKey,
    child: str,
    as_of: datetime,
    record: list[dict[str, Any]],
    said: Mapping[str, str],
) -> list[FlagPeriod]:
    """Every flag raised by ``as_of`` as one span. A resolved span names what resolved it (that
    event's sentence, ``said``); a dismissal closes the span when the latest ``flag.dismissed``
    about it was recorded (the flag itself carries who and why, not when)."""
    dismissed_at: dict[str, datetime] = {}
    for event in record:
        if event["type"] == "flag.dismissed":
            when = parse_time(event["recordedtime"])
            flag_id = str(event["data"].get("flag"))
            dismissed_at[flag_id] = max(when, dismissed_at.get(flag_id, when))
    periods = []
    for flag in flags_as_of(ledger, root, as_of, child=child):
        closed: datetime | None = None
        how = ""
        if flag.status == "resolved":
            closed = flag.resolved_at
            how = f"resolved: {said.get(flag.resolved_by or '', 'by a later event')}"
        elif flag.status == "dismissed":
            closed = dismissed_at.get(flag.id, as_of)
            how = f"dismissed by {flag.dismissed_by}: {flag.dismissed_reason}"
        end = closed or as_of
        periods.append(
            FlagPeriod(
                flag.id,
                flag.rule,
                flag.title,
                str(flag.severity),
                flag.detail,
                flag.due,
                closed,
                flag.status,
                max(end - flag.due, timedelta(0)),
                how,
            )
        )
    return sorted(periods, key=lambda p: (p.opened, p.rule, p.id))


def _aware(entries: list[Entry], notifications: list[NotificationRecord]) -> list[Knowledge]:
    """Agencies aware of the child: those that recorded something, and those notified about it
    (whether or not the notification named a particular event)."""
    first: dict[str, Knowledge] = {}
    told = [Knowledge(n.to, n.sent, "notified") for n in notifications]
    for entry in entries:
        for knowledge in [*entry.known_by, *told]:
            if knowledge.agency not in first or knowledge.since < first[knowledge.agency].since:
                first[knowledge.agency] = knowledge
    return sorted(first.values(), key=lambda k: (k.since, k.agency))
