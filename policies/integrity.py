"""Ledger integrity flags, partnership-wide (no child): lost events and equivocation.

DESIGN.md invariant 2: a missing sequence number that stays missing past a grace period is a
lost-event flag for that agency; two different events at one (source, sequence) are an
equivocation. Pure, like the child rules: the projector supplies what it observed.

The projector holds an event whose predecessor is missing for up to an hour, then accepts it over
the hole, so ``lost-event`` is due at ``noticed_at`` + 1 h: a hole filled before then was only
reordering and raises nothing; one filled later is resolved by the event that filled it (from
its acceptance). ``equivocation`` is due when detected and stays open until a named person
dismisses it: no later event can make two signed claims to one sequence number consistent. Both
concern the agency whose chain it is (the flag has no child).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from policies.base import Finding, Severity
from policies.engine import Evaluation, Flag, make_flag

GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class SequenceHole:
    source: str
    missing: tuple[int, int]  # first and last missing sequence numbers, inclusive
    noticed_at: datetime  # when a later sequence of this source was first received
    later_event: str  # id of that later event (evidence)
    filled_at: datetime | None = None  # when the last missing sequence was accepted
    filled_by: str | None = None


@dataclass(frozen=True)
class Equivocation:
    source: str
    sequence: int
    accepted_event: str
    conflicting_event: str
    detected_at: datetime


class LostEvent:
    id: ClassVar[str] = "lost-event"
    version: ClassVar[int] = 1
    severity: ClassVar[Severity] = Severity.HIGH
    title: ClassVar[str] = "An agency's events are missing from the ledger"
    source: ClassVar[str] = "DESIGN.md invariant 2; CSPR Child Charlie 1.5 (only one agency knew)"
    explanation: ClassVar[str] = (
        "An agency's chain has a hole that has stayed open for an hour after a later event "
        "arrived: something the agency recorded has not reached the partnership, and nobody "
        "else can know what it said."
    )
    action: ClassVar[str] = "Ask the agency to re-send from its outbox (sgledger relay --resend-from N)."


class EquivocationRule:
    id: ClassVar[str] = "equivocation"
    version: ClassVar[int] = 1
    severity: ClassVar[Severity] = Severity.HIGH
    title: ClassVar[str] = "An agency signed two different events for one place in its chain"
    source: ClassVar[str] = "DESIGN.md invariant 2"
    explanation: ClassVar[str] = (
        "Two different signed events claim the same sequence number of one agency: either its "
        "system is broken or its key is misused. Both are kept; the second is quarantined."
    )
    action: ClassVar[str] = (
        "Investigate the agency's system and key; revoke the key if it may be compromised."
    )


def integrity_flags(
    holes: Sequence[SequenceHole],
    equivocations: Sequence[Equivocation],
    as_of: datetime,
    lifecycle: Mapping[str, Mapping[str, Any]] | None = None,
) -> Evaluation:
    state = lifecycle or {}
    flags: list[Flag] = []
    pending: list[datetime] = []
    for hole in holes:
        due = hole.noticed_at + GRACE
        filled = hole.filled_at is not None and hole.filled_at <= as_of
        if filled and hole.filled_at is not None and hole.filled_at < due:
            continue
        if due > as_of:
            pending.append(due)
            continue
        first, last = hole.missing
        finding = Finding(
            key=f"{hole.source}|{first}",
            due=due,
            evidence=(hole.later_event,),
            concerns=(hole.source,),
            detail=f"{hole.source} sequence {first}" + (f"-{last}" if last != first else "") + " missing",
            resolved_by=hole.filled_by if filled else None,
            resolved_at=hole.filled_at if filled else None,
        )
        flags.append(make_flag(LostEvent, None, finding, state))
    for q in equivocations:
        if q.detected_at > as_of:
            continue
        finding = Finding(
            key=f"{q.source}|{q.sequence}",
            due=q.detected_at,
            evidence=tuple(e for e in (q.accepted_event, q.conflicting_event) if e),
            concerns=(q.source,),
            detail=f"{q.source} sequence {q.sequence} signed twice",
        )
        flags.append(make_flag(EquivocationRule, None, finding, state))
    return Evaluation.of(flags, min(pending) if pending else None)
