"""Issue 9 item 1: no message, however crafted, stops the projector.

Each test here is one crash an adversarial review found (``Applier.apply`` raised, the runner
retried the same batch forever and no later event of any agency was projected). After the fix
each message is quarantined with a reason and the rest of the batch is applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from consumers.projector.applier import Applier, Message
from ledger.signing import sign_event
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from policies.base import Finding
from policies.view import ChildView
from tests.consumers.test_applier import Clock
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership


@pytest.fixture
def partnership() -> Partnership:
    return Partnership()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.engine.dispose()


@pytest.fixture
def applier(ledger: Ledger, partnership: Partnership) -> Applier:
    return Applier(ledger, partnership.root_key, clock=Clock(T0 + timedelta(days=30)))


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def entries(ledger: Ledger) -> list[tuple[str, str, str]]:
    with ledger.read() as session:
        return [
            (q.status, q.reason, q.detail)
            for q in session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id))
        ]


def accepted(ledger: Ledger) -> set[str]:
    with ledger.read() as session:
        return set(session.scalars(select(AcceptedEvent.event_id)))


def resigned(chain: Chain, event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The event with ``changes`` and a signature that verifies over them."""
    altered = {k: v for k, v in event.items() if k != "signature"} | changes
    altered["signature"] = sign_event(altered, chain.key)
    return altered


@pytest.fixture
def police(applier: Applier, partnership: Partnership) -> Chain:
    police = Chain("police/avon-somerset")
    applier.apply([Message(raw(partnership.register(police)))])
    return police


def test_deeply_nested_json_is_refused_without_parsing_and_the_batch_goes_on(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    good = police.event("incident.reported", INCIDENT)
    bombs = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
    stats = applier.apply([Message(b) for b in bombs] + [Message(raw(good))])
    assert good["id"] in accepted(ledger)
    assert [(s, r) for s, r, _ in entries(ledger)] == [("quarantined", "not-json")] * 2
    assert all("nested deeper than" in d for _, _, d in entries(ledger))
    assert stats.quarantined == 2 and stats.accepted == 1


def test_a_signed_event_naming_a_member_twice_is_refused_not_interpreted(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    """Python keeps the last "subject", so the signature verifies over the genuine one; a reader
    that keeps the first would file the event under another child. Such a message has no one
    meaning: quarantined (it was accepted before)."""
    event = police.event("incident.reported", INCIDENT)
    forked = b'{"subject": "C-SOMEONE-ELSE", ' + raw(event)[1:]
    assert json.loads(forked)["subject"] == event["subject"]  # what a last-wins reader sees
    stats = applier.apply([Message(forked)])
    assert event["id"] not in accepted(ledger)
    assert [(s, r) for s, r, _ in entries(ledger)] == [("quarantined", "not-json")]
    assert all('"subject" twice' in d and "not I-JSON" in d for _, _, d in entries(ledger))
    assert stats.quarantined == 1 and stats.accepted == 0


def test_a_correctly_signed_float_sequence_is_a_schema_refusal(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    first = police.event("incident.reported", INCIDENT)
    second = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})
    # RFC 8785 writes 2.0 as 2, so the original signature verifies either way; JSON Schema's
    # "integer" accepts 2.0. Exact types refuse it.
    floated = raw(second).replace(b'"sequence": 2,', b'"sequence": 2.0,')
    assert b'"sequence": 2.0' in floated
    truthy = resigned(police, police.event("incident.reported", INCIDENT), sequence=True)
    stats = applier.apply([Message(floated), Message(raw(truthy)), Message(raw(first))])
    assert first["id"] in accepted(ledger)
    assert [(s, r) for s, r, _ in entries(ledger)] == [("quarantined", "schema-invalid")] * 2
    assert all("/sequence" in d for _, _, d in entries(ledger))
    assert stats.accepted == 1 and stats.quarantined == 2


def test_a_sequence_beyond_2_to_the_53_is_refused_before_sql(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    """RFC 8785 cannot even canonicalise 10**30 (it raised from signature checking); 2**53 is
    the first integer a JSON number cannot hold exactly in every language."""
    first = police.event("incident.reported", INCIDENT)
    huge = dict(police.event("incident.reported", INCIDENT), sequence=10**30)
    edge = dict(police.event("incident.reported", INCIDENT), sequence=2**53)
    applier.apply([Message(raw(huge)), Message(raw(edge)), Message(raw(first))])
    assert first["id"] in accepted(ledger)
    assert [(s, r) for s, r, _ in entries(ledger)] == [("quarantined", "schema-invalid")] * 2


def test_the_largest_exact_sequence_is_held_not_a_crash(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    """2**53 - 1 is valid: it waits for its predecessor like any other (and fits the columns)."""
    top = resigned(police, police.event("incident.reported", INCIDENT), sequence=2**53 - 1)
    applier.apply([Message(raw(top))])
    assert [(s, r) for s, r, _ in entries(ledger)] == [("held", "sequence-gap")]


def test_duplicate_deliveries_of_a_held_event_are_released_together(
    applier: Applier, ledger: Ledger, partnership: Partnership
) -> None:
    """The TypeError of the review. A message held for its key is delivered again with the key's
    registration and its predecessors: the registration re-holds the first copy for its
    predecessor, the second copy was held again (no id until flushed), and the predecessor then
    released both, sorting them by (sequence, id): None < int. A redelivered held message is now
    a duplicate of the held one, and release order no longer needs ids."""
    police = Chain("police/avon-somerset")
    first, second, third = (
        police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(3)
    )
    applier.apply([Message(raw(third))])
    assert [(s, r) for s, r, _ in entries(ledger)] == [("held", "unknown-key")]
    batch = [third, partnership.register(police), first, second]
    stats = applier.apply([Message(raw(e)) for e in batch])
    assert {first["id"], second["id"], third["id"]} <= accepted(ledger)
    assert [(s, r) for s, r, _ in entries(ledger)] == [("readmitted", "sequence-gap")]
    assert (stats.accepted, stats.readmitted, stats.duplicates) == (4, 1, 1)  # 4: with the key
    assert len(batch) == stats.accepted - stats.readmitted + stats.duplicates + stats.held + stats.quarantined


def test_an_unexpected_failure_quarantines_that_message_only(
    applier: Applier, ledger: Ledger, police: Chain
) -> None:
    """A bug we have not found yet (here: a policy that raises on one child) quarantines the
    messages that reach it as internal-error, with the exception class and no traceback, and
    everything else in the batch is applied."""
    from policies.registry import ALL_POLICIES

    class Broken(type(ALL_POLICIES[0])):  # type: ignore[misc]
        def findings(self, view: ChildView, as_of: datetime) -> Iterable[Finding]:
            if view.child == "C-bad":
                raise ZeroDivisionError("division by zero")
            return super().findings(view, as_of)

    broken = Applier(ledger, applier.root, policies=[*ALL_POLICIES[1:], Broken()], clock=applier.clock)
    fine = police.event("incident.reported", INCIDENT)
    poison = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"}, subject="C-bad")
    later = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-3"})
    stats = broken.apply([Message(raw(fine)), Message(raw(poison)), Message(raw(later))])
    assert fine["id"] in accepted(ledger) and poison["id"] not in accepted(ledger)
    [(status, _, detail)] = [e for e in entries(ledger) if e[1] == "internal-error"]
    assert status == "quarantined" and detail.startswith("ZeroDivisionError: division by zero")
    assert "Traceback" not in detail
    # the successor waits for the quarantined one, as it would after any refusal
    assert later["id"] not in accepted(ledger)
    assert stats.accepted == 1 and stats.quarantined == 1 and stats.held == 1


@pytest.mark.postgres
def test_the_largest_exact_sequence_fits_postgresql(postgres_db: str, partnership: Partnership) -> None:
    """PostgreSQL's INTEGER stops at 2**31 - 1: a sequence beyond it aborted the transaction.
    The sequence columns are BIGINT now, and the batch around it is applied."""
    ledger = Ledger(postgres_db)
    try:
        applier = Applier(ledger, partnership.root_key, clock=Clock(T0 + timedelta(days=30)))
        police = Chain("police/avon-somerset")
        first = police.event("incident.reported", INCIDENT)
        top = resigned(police, police.event("incident.reported", INCIDENT), sequence=2**53 - 1)
        applier.apply([Message(raw(partnership.register(police))), Message(raw(top)), Message(raw(first))])
        assert first["id"] in accepted(ledger)
        assert [(s, r) for s, r, _ in entries(ledger)] == [("held", "sequence-gap")]
    finally:
        ledger.engine.dispose()


def test_a_sweep_sets_aside_a_child_whose_evaluation_raises(
    applier: Applier, ledger: Ledger, police: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    """Deadlines fall due with no message to blame: a child whose re-evaluation raises is logged
    and skipped, and the sweep still re-evaluates the others (it used to raise, every sweep)."""
    from policies.registry import ALL_POLICIES

    class Broken(type(ALL_POLICIES[0])):  # type: ignore[misc]
        def findings(self, view: ChildView, as_of: datetime) -> Iterable[Finding]:
            if view.child == "C-bad" and as_of > T0 + timedelta(days=40):
                raise ZeroDivisionError("division by zero")
            return super().findings(view, as_of)

    at = T0 + timedelta(days=35)
    clock = Clock(at)  # deadlines (a working day to triage, ...) still ahead
    broken = Applier(ledger, applier.root, policies=[*ALL_POLICIES[1:], Broken()], clock=clock)
    broken.apply(
        [
            Message(raw(police.event("incident.reported", INCIDENT, subject="C-bad", recorded=at))),
            Message(raw(police.event("incident.reported", INCIDENT, subject="C-2", recorded=at))),
        ]
    )
    clock.now = T0 + timedelta(days=60)
    # A restarted projector: this Broken rule reads as_of, which a rule may not (policies.base);
    # the running projector's Evaluator would rightly reuse its findings and never run it again.
    restarted = Applier(ledger, applier.root, policies=broken.policies, clock=clock)
    stats = restarted.sweep()
    assert stats.children == {"C-2"}
    assert "re-evaluating failed for a child no event here named (re-evaluated for" in caplog.text
    assert "C-bad" not in caplog.text  # logs never carry a child's id (README)
