"""The multi-agency chronology a review author needs, computed from the ledger as of a time.

Reviews rebuild by hand, agency by agency, who knew what and when. Here each event about the
child comes with its time, recorded time and agency; which agencies knew of it (its source when
recorded, each agency a ``notification.sent`` named it to, by id or by reference) and when; the
flags open when it was recorded; and, for the whole period, every flag with how long it stayed
open and every notification with its acknowledgement. Flags are recomputed with ``flags_as_of``
at each recorded time, so the chronology says what the partnership's rules showed then, not now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.timeutil import parse_time
from views.queries import CHILD_EXCLUDED_TYPES, flags_as_of


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
    rule: str
    title: str
    severity: str
    opened: datetime  # when it fell due
    closed: datetime | None  # resolved at; None while still open at the as-of time
    status: str
    open_for: timedelta


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
    entries: list[Entry]
    flags: list[FlagPeriod]
    notifications: list[NotificationRecord]
    aware: list[Knowledge]  # every agency aware of the child, and since when


def _refs(data: Mapping[str, Any]) -> set[str]:
    """References an event can be named by besides its id (incident_ref, referral_ref, plan_ref)."""
    return {str(v) for k, v in data.items() if k.endswith("_ref") and v}


def _summary(data: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(data.items()) if not isinstance(v, (dict, list)) or v)


def build_chronology(ledger: Ledger, root: RootKey, child: str, as_of: datetime) -> Chronology:
    with ledger.read() as session:
        events = [
            e
            for e in ledger.events_about(session, child)
            if e["type"] not in CHILD_EXCLUDED_TYPES and parse_time(e["recordedtime"]) <= as_of
        ]
    events.sort(key=lambda e: (parse_time(e["time"]), parse_time(e["recordedtime"]), e["id"]))
    entries = [
        Entry(
            e["id"],
            parse_time(e["time"]),
            parse_time(e["recordedtime"]),
            e["source"],
            e["type"],
            _summary(e["data"]),
        )
        for e in events
    ]
    by_name: dict[str, Entry] = {}
    for entry, event in zip(entries, events, strict=True):
        entry.known_by.append(Knowledge(entry.agency, entry.recordedtime, "source"))
        for name in {event["id"], *_refs(event["data"])}:
            by_name.setdefault(name, entry)
    notifications = _notifications(events)
    for note in notifications:
        for name in note.about:
            named = by_name.get(name)
            if named is not None and all(k.agency != note.to for k in named.known_by):
                named.known_by.append(Knowledge(note.to, note.sent, "notified"))
    for entry in entries:
        entry.open_flags = sorted(
            f.rule for f in flags_as_of(ledger, root, entry.recordedtime, child=child) if f.is_open
        )
    return Chronology(
        child,
        as_of,
        entries,
        _flag_periods(ledger, root, child, as_of),
        notifications,
        _aware(entries, notifications),
    )


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


def _flag_periods(ledger: Ledger, root: RootKey, child: str, as_of: datetime) -> list[FlagPeriod]:
    periods = []
    for flag in flags_as_of(ledger, root, as_of, child=child):
        closed = flag.resolved_at if flag.status == "resolved" else None
        end = closed or as_of
        periods.append(
            FlagPeriod(
                flag.rule,
                flag.title,
                str(flag.severity),
                flag.due,
                closed,
                flag.status,
                max(end - flag.due, timedelta(0)),
            )
        )
    return sorted(periods, key=lambda p: (p.opened, p.rule))


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
