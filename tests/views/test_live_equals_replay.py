"""A long history projected live, one event per batch (how live traffic arrives), leaves exactly
the flags a replay of the same ledger writes, on SQLite and PostgreSQL: no flag that only the
live projector ever raised (issue 13, DESIGN.md invariant 4).

The history has what moved flag keys before repeat-incidents v3: domestic-abuse incidents
reported late (they happened before incidents already recorded), referrals that answer the
pattern and closures that end them, over a few hundred events. Everything arrives in recorded
order and nothing is corrected or withdrawn: then what was known at each moment never changes,
so every flag raised live must be a flag the replay raises too, with the same status.

A second history comes from tests/policies/generated.py (every event type the rules read: GP
changes, school enrolment and leaving, links and statuses that change, MARAC plans, back-dated
events), signed and projected the same way: the rules that judged a *current* fact dropped
flags on it until they judged spells of what was known (issue 13, rules)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from bench.audit import write_batch
from bench.growth import PARTNERSHIP, T0, Signers
from consumers.auditor.diff import diff
from consumers.auditor.replay import replay
from consumers.projector.applier import Applier, Message
from ledger.envelope import ChainSigner
from ledger.store.ledger import Acceptance, Ledger, normalise_url
from ledger.validation import validate_event
from ledger.vocabulary import is_amendment
from tests.policies.generated import REGISTERED, history

CHILD = "C-LATE-1"
EVENTS = 240


def story(signers: Signers, seed: int) -> list[dict[str, Any]]:
    """A child whose police force records a domestic-abuse incident every few days, a third of
    them reported late (up to 40 days after they happened); social care now and then takes a
    referral and closes it; health visits."""
    rng = random.Random(seed)
    police, csc = signers.agencies["police/avon-somerset"], signers.agencies["csc/somerset"]
    phn = signers.agencies["phn/somerset"]
    mother, father = f"P-{CHILD}-m", f"P-{CHILD}-f"
    at = T0
    events = [csc.sign("child.registered", {"dob": "2023-11-01", "mother": mother, "father": father},
                       subject=CHILD, at=at)]  # fmt: skip
    referrals: list[str] = []
    for n in range(1, EVENTS):
        at += timedelta(hours=rng.choice((6, 30, 70)))
        kind = rng.random()
        if kind < 0.55:
            happened = at - timedelta(days=rng.choice((0, 0, 3, 12, 40)))
            data = {
                "incident_ref": f"INC-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": [{"person": mother, "role": "victim"}, {"person": father, "role": "perpetrator"}],
            }
            events.append(police.sign("incident.reported", data, subject=CHILD, at=happened, recorded=at))
        elif kind < 0.65:
            referrals.append(f"REF-{n}")
            data = {"referral_ref": f"REF-{n}", "to": "csc/somerset", "reason": "domestic abuse"}
            events.append(police.sign("referral.made", data, subject=CHILD, at=at))
        elif kind < 0.78 and referrals:
            data = {
                "referral_ref": referrals.pop(0),
                "outcome": "nfa",
                "reason": "no further action",
                "persons_contacted": [mother, father],
                "worked_by": "W-1",
                "authorised_by": "TM-1",
            }
            events.append(csc.sign("referral.closed", data, subject=CHILD, at=at))
        else:
            data = {"person": mother, "practitioner": "HV-1", "mode": "in-person"}
            events.append(phn.sign("contact.recorded", data, subject=CHILD, at=at))
    return events


def rows(url: str, query: str) -> list[Any]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)))
    finally:
        engine.dispose()


def latest_changes(url: str) -> dict[str, tuple[str, str]]:
    """Flag id -> (its last change, the status that change announced)."""
    found: dict[str, tuple[str, str]] = {}
    query = "SELECT flag_id, change, message FROM flag_changes ORDER BY id"
    for flag_id, change, message in rows(url, query):
        found[flag_id] = (change, json.loads(message)["flag"]["status"])
    return found


def generated(signers: Signers, seed: int) -> list[dict[str, Any]]:
    """A generated history (no corrections or withdrawals: they change what was known, and the
    live table rightly keeps what was raised before them) signed by its agencies in recorded
    order; events the generator makes that the contract's schemas refuse are left out."""
    events = sorted(
        (e for e in history(f"C-GEN-{seed}", 200, seed) if not is_amendment(e.type)),
        key=lambda e: (e.recordedtime, e.id),
    )
    signed = []
    for event in events:
        signer = signers.agencies.get(event.source)
        if signer is None:
            continue
        chain = (signer.sequence, signer.prevhash)
        envelope = signer.sign(
            event.type,
            dict(event.data),
            subject=event.subject,
            at=event.time,
            recorded=event.recordedtime,
            event_id=event.id,  # notifications name incidents by id
        )
        if validate_event(envelope):
            signer.sequence, signer.prevhash = chain
            continue
        signed.append(envelope)
    return signed


@pytest.mark.parametrize("seed", [1, 2])
def test_live_one_event_per_batch_leaves_the_flags_a_replay_leaves(
    live_url: str, tmp_path: Path, seed: int
) -> None:
    signers = Signers.fresh()
    live_equals_replay(live_url, tmp_path, signers, story(signers, seed))
    live_flags = rows(live_url, "SELECT rule FROM flags WHERE rule = 'repeat-incidents'")
    assert len(live_flags) >= 3, "the story must raise the pattern several times"


@pytest.mark.parametrize("seed", [3, 10])
def test_a_generated_history_with_practice_school_and_link_changes_projects_as_it_replays(
    live_url: str, tmp_path: Path, seed: int
) -> None:
    signers = Signers(
        ChainSigner(PARTNERSHIP, Ed25519PrivateKey.generate()),
        {agency: ChainSigner(agency, Ed25519PrivateKey.generate()) for agency in REGISTERED},
    )
    events = generated(signers, seed)
    assert len(events) > 150
    live_equals_replay(live_url, tmp_path, signers, events)
    rules = {rule for (rule,) in rows(live_url, "SELECT DISTINCT rule FROM flags")}
    assert {"gp-not-notified", "school-not-notified", "marac-plan-not-shared"} <= rules


def live_equals_replay(live_url: str, tmp_path: Path, signers: Signers, events: list[dict[str, Any]]) -> None:
    """Project ``events`` live one per batch (the clock a minute after each was recorded), then
    replay the ledger and compare flags, views and the flags' last announced statuses."""
    ledger = Ledger(live_url)
    write_batch(ledger, [Acceptance.of(e) for e in signers.registrations()], T0)
    now = [T0]
    applier = Applier(ledger, signers.root_key(), clock=lambda: now[0])
    for event in events:
        now[0] = datetime.fromisoformat(event["recordedtime"]) + timedelta(minutes=1)
        stats = applier.apply([Message(json.dumps(event).encode())])
        assert stats.accepted == 1, stats

    replayed = f"sqlite:///{tmp_path / 'replay.db'}"
    replay(ledger, signers.root_key(), now[0], replayed)
    assert diff(replayed, live_url) == []  # flags (id, rule, version, status, due) and views
    # Every flag the live projector ever announced is one the replay has, with the status its
    # last announcement gave; live, a flag may also have been announced raised and then
    # resolved. (A replay writes flags, not a lifecycle: views.flags.FlagSync ``fresh``.)
    live = latest_changes(live_url)
    again = {str(fid): str(status) for fid, status in rows(replayed, "SELECT id, status FROM flags")}
    assert {fid: status for fid, (_, status) in live.items()} == again
    assert not rows(replayed, "SELECT flag_id FROM flag_changes")
    ledger.engine.dispose()
