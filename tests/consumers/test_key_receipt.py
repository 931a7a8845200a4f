"""Key validity at receipt, through the real broker: the back-dating attack is quarantined."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from consumers.auditor.verify import verify
from consumers.projector.applier import Applier
from consumers.projector.runner import Projector
from ledger.store.ledger import Ledger
from tests.consumers.kafka_helpers import send_events
from tests.ledger.factory import Chain, Partnership
from transport.kafka import KafkaSettings

pytestmark = pytest.mark.kafka

CLOSURE = {
    "referral_ref": "R-1",
    "outcome": "nfa",
    "reason": "no further concerns",
    "persons_contacted": ["P-m"],
    "worked_by": "SW-1",
    "authorised_by": "TM-1",
}


def test_a_closure_signed_after_revocation_and_dated_before_it_is_quarantined(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    partnership = Partnership()
    csc = Chain("csc/somerset")
    now = datetime.now(UTC)
    referral = csc.event(
        "referral.made",
        {"referral_ref": "R-1", "to": "csc/somerset", "reason": "incident"},
        at=now - timedelta(hours=3),
    )
    send_events(kafka_settings, [partnership.register(csc, at=now - timedelta(days=2)), referral])
    revoked_from = datetime.now(UTC) + timedelta(milliseconds=200)  # after the referral arrived
    revocation = partnership.root.event(
        "agency.key.revoked",
        {
            "agency": csc.source,
            "kid": csc.kid,
            "reason": "laptop stolen",
            "effective": revoked_from.isoformat(),
        },
        subject=csc.source,
        at=now,
    )
    time.sleep(0.4)
    # The thief, after the revocation, dates a closure an hour before it.
    forged = csc.event("referral.closed", CLOSURE, at=revoked_from - timedelta(hours=1))
    send_events(kafka_settings, [revocation, forged])

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    projector = Projector(Applier(ledger, partnership.root_key), kafka_settings, group_id=None)
    try:
        deadline = time.monotonic() + 60
        while _rows(url, "SELECT count(*) FROM ledger_quarantine")[0][0] < 1 or ledger.count() < 3:
            assert time.monotonic() < deadline, "projector did not catch up"
            projector.poll_once(timeout_ms=200)
    finally:
        projector.close()
    accepted = {r[0] for r in _rows(url, "SELECT event_id FROM ledger_accepted")}
    assert referral["id"] in accepted and forged["id"] not in accepted
    quarantined = _rows(url, "SELECT event_id, status, reason FROM ledger_quarantine")
    assert quarantined == [(forged["id"], "quarantined", "key-revoked-at-receipt")]
    assert _rows(url, "SELECT count(*) FROM flags WHERE rule = 'closure-without-father-contact'") == [(0,)]
    # The auditor reading the topics judges the key at receipt too: the forged closure is one of
    # the messages rightly refused, not "a valid event missing from the ledger".
    report = verify(ledger, partnership.root_key, kafka=kafka_settings, workers=1)
    assert report.ok, [f.detail for f in report.findings]
    assert report.topic_rejected == 1
    ledger.engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()
