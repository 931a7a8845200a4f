"""What must hold after any input at all reached ``Applier.apply`` (issue 9 item 1).

1. Nothing escapes: ``apply`` and ``sweep`` return (the caller would otherwise retry forever).
2. Every message is counted once: accepted, duplicate, held or quarantined (ApplyStats).
3. Every message is accounted for in the database: its event is in the ledger with the same
   digest, or its exact bytes are in the quarantine.
4. The ledger only grows by valid events: every accepted event verifies again, in ledger order,
   from the root key alone, and its chain links hold (or it is marked as accepted over a hole).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from consumers.projector.applier import Applier, ApplyStats, Message
from ledger.canonical import event_digest
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.store.ledger import KEY_EVENT_TYPES, Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from ledger.verification import Rejection, check_event, parse_message
from tests.ledger.factory import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(days=30)

    def __call__(self) -> datetime:
        return self.now


def run_case(directory: Path, root: RootKey, batches: Sequence[Sequence[bytes]]) -> None:
    """Apply ``batches`` to a new SQLite ledger in ``directory``, then sweep past the hole grace
    period, and assert every invariant."""
    ledger = Ledger(f"sqlite:///{directory / 'ledger.sqlite'}")
    try:
        clock = Clock()
        applier = Applier(ledger, root, clock=clock)
        for batch in batches:
            stats = applier.apply([Message(raw, f"fuzz/0/{n}") for n, raw in enumerate(batch)])
            assert_counted(len(batch), stats)
        clock.now += timedelta(hours=2)
        swept = applier.sweep()
        assert swept.accepted == swept.readmitted and swept.held == swept.quarantined == 0
        assert_accounted(ledger, [raw for batch in batches for raw in batch])
        assert_ledger_valid(ledger, root)
    finally:
        ledger.engine.dispose()


def assert_counted(messages: int, stats: ApplyStats) -> None:
    counted = stats.accepted - stats.readmitted + stats.duplicates + stats.held + stats.quarantined
    assert counted == messages, f"{messages} messages, counted {counted}: {stats}"


def assert_accounted(ledger: Ledger, inputs: Sequence[bytes]) -> None:
    with ledger.read() as session:
        digests = {i: d for i, d in session.execute(select(AcceptedEvent.event_id, AcceptedEvent.digest))}
        kept = set(session.scalars(select(QuarantineEntry.raw)))
    for raw in inputs:
        if raw in kept:
            continue
        parsed = parse_message(raw)
        assert not isinstance(parsed, Rejection), f"refused but not quarantined: {raw[:200]!r}"
        assert digests.get(str(parsed.get("id"))) == event_digest(parsed), f"lost: {raw[:200]!r}"


def assert_ledger_valid(ledger: Ledger, root: RootKey) -> None:
    registry = KeyRegistry(root)
    accepted: dict[tuple[str, int], tuple[dict[str, Any], bool]] = {}
    columns = (AcceptedEvent.envelope, AcceptedEvent.event_id, AcceptedEvent.digest, AcceptedEvent.over_hole)
    with ledger.read() as session:
        rows = list(session.execute(select(*columns).order_by(AcceptedEvent.position)))
    for envelope, event_id, digest, over_hole in rows:
        event = parse_message(envelope.encode())
        assert not isinstance(event, Rejection)
        assert check_event(event, registry) is None, f"accepted but invalid: {envelope[:300]}"
        assert (event_id, digest) == (event["id"], event_digest(event))
        accepted[(event["source"], event["sequence"])] = (event, over_hole)
        if event["type"] in KEY_EVENT_TYPES:
            registry.apply(event)
    for (source, sequence), (event, over_hole) in accepted.items():
        if sequence == 1:
            assert event["prevhash"] == "" and not over_hole
            continue
        predecessor = accepted.get((source, sequence - 1))
        if predecessor is None:
            assert over_hole, f"{source} {sequence} accepted without its predecessor"
        else:  # a late predecessor must match what the successor named
            assert event["prevhash"] == event_digest(predecessor[0]), f"{source} {sequence}"
