"""Rebuild the per-child views and flags as they stood at a past time, into another database.

A replay is the projector run again: the accepted envelopes recorded by T, in ledger position
order, through a fresh ``Applier`` whose clock is fixed at T. Re-using the projector's own code
(rather than a second implementation) is what makes "replay as of now equals the live views" a
meaningful determinism check. Key events are replayed whatever their recorded time, as
``flags_as_of`` reads the whole key registry: which agencies exist is not part of the story.

The source ledger is read page by page and each page applied before the next is read: the
eventsourcing extension keeps one transaction per thread, so the two databases' transactions
must never overlap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers.auditor.stored import pages_of_envelopes
from consumers.projector.applier import Applier, ApplyStats, Message
from ledger.keyregistry import RootKey
from ledger.store.ledger import KEY_EVENT_TYPES, Ledger
from ledger.timeutil import parse_time


@dataclass(frozen=True)
class ReplayResult:
    events: int  # events fed to the fresh projector
    accepted: int
    quarantined: int
    children: int
    into_url: str


def recorded_by(ledger: Ledger, as_of: datetime) -> Iterator[list[dict[str, Any]]]:
    """Pages of stored envelopes recorded by ``as_of`` (key events always), in position order."""
    for page in pages_of_envelopes(ledger):
        kept = [
            envelope
            for _, envelope in page
            if envelope["type"] in KEY_EVENT_TYPES or parse_time(envelope["recordedtime"]) <= as_of
        ]
        if kept:
            yield kept


def replay(
    ledger: Ledger,
    root: RootKey,
    as_of: datetime,
    into_url: str,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    target = Ledger(into_url)
    if target.count():
        raise ValueError(f"{into_url} already holds a ledger; replay into an empty database")
    applier = Applier(target, root, clock=lambda: as_of)
    stats, fed = ApplyStats(), 0
    for page in recorded_by(ledger, as_of):
        stats.add(applier.apply([Message(json.dumps(e).encode(), f"replay/{e['id']}") for e in page]))
        fed += len(page)
        if progress is not None:
            progress(fed)
    return ReplayResult(fed, stats.accepted, stats.quarantined + stats.held, len(stats.children), into_url)
