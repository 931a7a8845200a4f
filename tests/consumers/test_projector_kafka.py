"""The projector against the real broker (tansu, or KAFKA_BOOTSTRAP) and real databases."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from consumers.projector.applier import Applier, ApplyStats, Message, Prepared
from consumers.projector.runner import Projector
from consumers.projector.verifier import Verifier
from ledger.keystore import Keystore
from ledger.signing import public_key_text
from ledger.store.ledger import Ledger
from tests.consumers.kafka_helpers import (
    ProjectorProcess,
    count,
    send_events,
    send_raw,
    snapshot,
    story,
    wait_for_count,
)
from tests.ledger.factory import INCIDENT, T0, Chain
from tests.ledger.test_turns import greedy
from transport.kafka import KafkaSettings

pytestmark = pytest.mark.kafka


def run_until(projector: Projector, condition: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "projector did not catch up"
        projector.poll_once(timeout_ms=200)


def consume_all(settings: KafkaSettings, topic: str, expected: int) -> list[dict[str, object]]:
    return [value for _, value in consume_keyed(settings, topic, expected)]


def consume_keyed(settings: KafkaSettings, topic: str, expected: int) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    records = [(m.key, json.loads(m.value)) for m in consumer]
    consumer.close()
    assert len(records) >= expected
    return records


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_signed_events_and_bad_input_through_the_broker(
    backend: str,
    kafka_settings: KafkaSettings,
    keystore: Keystore,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = (
        request.getfixturevalue("postgres_db")
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'l.sqlite'}"
    )
    events = story(keystore, children=3, incidents_per_child=3)
    send_events(kafka_settings, events)
    topic = kafka_settings.topics.for_type("incident.reported")
    police = Chain("police/avon-somerset")  # never registered
    send_raw(
        kafka_settings,
        [
            (topic, b"C-0000", b"\x00\x01 definitely not json"),
            (topic, b"C-0000", json.dumps({"specversion": "1.0"}).encode()),
            (topic, b"C-0000", b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'),
            (
                topic,
                b"C-0000",
                json.dumps(police.event("incident.reported", INCIDENT, subject="C-0000")).encode(),
            ),
        ],
    )
    ledger = Ledger(url)
    projector = Projector(
        Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=f"g-{uuid.uuid4().hex[:8]}"
    )
    try:
        run_until(
            projector,
            lambda: (
                ledger.count() == len(events)
                and count(url, "SELECT count(*) FROM ledger_quarantine WHERE status <> 'readmitted'") == 4
            ),
        )
        projector.poll_once(timeout_ms=200)
    finally:
        projector.close()
    reasons = {
        tuple(r)
        for r in _rows(url, "SELECT status, reason FROM ledger_quarantine WHERE status <> 'readmitted'")
    }
    assert reasons == {
        ("quarantined", "not-json"),
        ("quarantined", "schema-invalid"),
        ("quarantined", "oversized"),
        ("held", "unknown-key"),
    }
    keyed = consume_keyed(kafka_settings, kafka_settings.topics.gap_flags, expected=3)
    assert {f["flag"]["rule"] for _, f in keyed} >= {"gp-not-notified"}
    # keyed by the flag's child (one child's changes in order on one partition)
    assert all(key == f["flag"]["child"].encode() for key, f in keyed)
    notices = consume_all(kafka_settings, kafka_settings.topics.quarantine, expected=4)
    assert {n["reason"] for n in notices} == {"not-json", "schema-invalid", "oversized", "unknown-key"}
    ledger.engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


def test_sigkill_at_several_points_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    events = story(keystore, children=40, incidents_per_child=4)
    send_events(kafka_settings, events)
    total = len(events)
    crashed = f"sqlite:///{tmp_path / 'crashed.sqlite'}"
    log = tmp_path / "projector.log"
    for stop_at in (total // 5, total // 2, (4 * total) // 5):
        process = ProjectorProcess(kafka_settings, crashed, keystore.directory, "crashy", log)
        wait_for_count(crashed, stop_at, 120, process)
        process.kill()
    process = ProjectorProcess(kafka_settings, crashed, keystore.directory, "crashy", log)
    try:
        wait_for_count(crashed, total, 180, process)
    finally:
        process.stop()
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    process = ProjectorProcess(kafka_settings, clean, keystore.directory, "uninterrupted", log)
    try:
        wait_for_count(clean, total, 180, process)
    finally:
        process.stop()
    after_crashes, uninterrupted = snapshot(crashed), snapshot(clean)
    assert after_crashes["events"] == [(total,)]  # every event recorded exactly once
    assert after_crashes == uninterrupted


def test_two_projector_processes_share_the_partitions(
    kafka_settings: KafkaSettings, keystore: Keystore, postgres_db: str, tmp_path: Path
) -> None:
    events = story(keystore, children=30, incidents_per_child=3)
    send_events(kafka_settings, events)
    first = ProjectorProcess(kafka_settings, postgres_db, keystore.directory, "shared", tmp_path / "1.log")
    second = ProjectorProcess(kafka_settings, postgres_db, keystore.directory, "shared", tmp_path / "2.log")
    try:
        wait_for_count(postgres_db, len(events), 180, first, second)
    finally:
        first.stop()
        second.stop()
    assert count(postgres_db, "SELECT count(*) FROM ledger_events") == len(events)
    assert count(postgres_db, "SELECT count(*) FROM ledger_quarantine WHERE status <> 'readmitted'") == 0


def test_every_kind_of_bad_input_is_quarantined_with_its_reason(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    """Issue 2's list, through the real broker; the projector keeps running and
    `sgledger quarantine list` shows each with a reason a person can act on."""
    root = Chain(keystore.root_info().partnership, keystore.root_private_key())
    police, csc, revoked = Chain("police/avon-somerset"), Chain("csc/somerset"), Chain("idva/somerset")
    # reading the quarantine is an audited read, signed by the partnership's registered service key
    service = Chain("partnership/service", keystore.create_agency_key("partnership/service"))
    registrations = [
        root.event("agency.key.registered", _registration(c), subject=c.source, at=T0 - timedelta(days=2))
        for c in (police, csc, revoked, service)
    ]
    revocation = root.event(
        "agency.key.revoked",
        {"agency": revoked.source, "kid": revoked.kid, "reason": "key compromised"},
        subject=revoked.source,
        at=T0 - timedelta(days=1),
    )
    good = police.event("incident.reported", INCIDENT)
    tampered = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})
    tampered["data"] = {**tampered["data"], "domestic_abuse": False}
    bad_signature = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-3"})
    bad_signature["signature"] = csc.event("referral.made", {"referral_ref": "R", "to": "x", "reason": "y"})[
        "signature"
    ]
    schema_bad = police.event("incident.reported", {"incident_ref": "INC-4"})
    unknown_type = police.event("incident.imagined", {"what": "nothing"})
    other_agency = Chain("csc/somerset", key=police.key).event(
        "referral.made", {"referral_ref": "R-1", "to": "csc/somerset", "reason": "DA"}
    )
    by_revoked = revoked.event("referral.made", {"referral_ref": "R-2", "to": "csc/somerset", "reason": "DA"})
    unknown_key = Chain("police/avon-somerset").event("incident.reported", INCIDENT)
    replayed = police.event("incident.reported", INCIDENT, event_id=good["id"])
    fork = Chain("police/avon-somerset", key=police.key)
    equivocation = fork.event("incident.reported", {**INCIDENT, "incident_ref": "INC-FORK"})
    police.event("incident.reported", INCIDENT)  # signed but never sent: the next one has a gap
    after_gap = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-9"})
    topic = kafka_settings.topics.for_type("incident.reported")
    send_events(kafka_settings, [*registrations, revocation, good])
    send_events(
        kafka_settings,
        [tampered, bad_signature, schema_bad, other_agency, by_revoked, unknown_key, replayed, equivocation],
    )
    send_raw(kafka_settings, [(topic, b"C-1", json.dumps(unknown_type).encode())])
    send_events(kafka_settings, [after_gap])
    send_raw(
        kafka_settings, [(topic, b"C-1", b"\xff not json"), (topic, b"C-1", b'"' + b"x" * 1_100_000 + b'"')]
    )
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    projector = Projector(
        Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=f"g-{uuid.uuid4().hex[:8]}"
    )
    try:
        run_until(projector, lambda: count(url, "SELECT count(*) FROM ledger_quarantine") >= 12)
    finally:
        projector.close()
    listed = subprocess.run(  # its own data directory: the access record's outbox is the test's own
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path / "cli"), "--database-url", url,
         "--keys-dir", str(keystore.directory), "quarantine", "list", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    reasons = sorted(entry["reason"] for entry in json.loads(listed.stdout))
    assert reasons == sorted(
        [
            "bad-signature",  # tampered payload
            "bad-signature",  # signed by another key
            "schema-invalid",
            "unknown-type",
            "key-of-other-agency",
            "key-not-valid-at-recordedtime",  # revoked
            "unknown-key",
            "replayed-id",
            "equivocation",
            "sequence-gap",
            "not-json",
            "oversized",
        ]
    )
    assert all(entry["detail"] for entry in json.loads(listed.stdout))
    accepted = {row[0] for row in _rows(url, "SELECT event_id FROM ledger_accepted")}
    assert good["id"] in accepted
    assert not accepted & {e["id"] for e in (tampered, bad_signature, schema_bad, other_agency, by_revoked)}
    ledger.engine.dispose()


def _registration(chain: Chain) -> dict[str, str]:
    public = chain.key.public_key()
    return {"agency": chain.source, "kid": chain.kid, "public_key": public_key_text(public)}


class _FailsOnce(Applier):
    """The database refusing one transaction (an outage), then coming back."""

    failed = False

    def apply_prepared(self, prepared: Prepared, track: Mapping[str, int] | None = None) -> ApplyStats:
        if not self.failed:
            self.failed = True
            raise OperationalError("SELECT 1", {}, Exception("database is unavailable"))
        return super().apply_prepared(prepared, track)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_failed_batch_is_polled_again_not_skipped(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path, workers: int
) -> None:
    """With verification workers, the batch polled and verified while the failed one was being
    applied is dropped and polled again too (``Projector._rewind``)."""
    events = story(keystore, children=5, incidents_per_child=2)
    send_events(kafka_settings, events)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    verifier = Verifier(workers)
    applier = _FailsOnce(ledger, keystore.root_info().root_key(), verifier=verifier)
    projector = Projector(applier, kafka_settings, group_id=None, max_batch=4)
    try:
        with pytest.raises(OperationalError):
            while True:
                projector.poll_once(timeout_ms=200)
        run_until(projector, lambda: ledger.count() == len(events))
    finally:
        projector.close()
        verifier.close()
    ledger.engine.dispose()


def test_marking_what_was_published_takes_its_turn_for_the_sqlite_write_lock(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    """Intake marks the flag changes it published in a write transaction of its own. Against a
    writer in another process that takes SQLite's write lock again as soon as it has committed
    (a child shard does, batch after batch; here the turns test's greedy writer), waiting in
    SQLite's busy handler lost every time, for the greedy writer's whole 20 s: the marking now
    takes its turn (``Ledger.updating``) and gets the lock at the writer's next commit."""
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    ledger = Ledger(url)
    root = keystore.root_info().root_key()
    events = story(keystore, children=2, incidents_per_child=2)
    Applier(ledger, root).apply([Message(json.dumps(e).encode()) for e in events])
    unpublished = "SELECT count(*) FROM flag_changes WHERE NOT published"
    assert count(url, unpublished) > 0
    projector = Projector(Applier(ledger, root), kafka_settings, group_id=None)
    writer = greedy(url)
    try:
        started = time.monotonic()
        sent = projector.publish_outbox()
        waited = time.monotonic() - started
        assert writer.poll() is None  # the greedy writer was at it throughout
    finally:
        writer.kill()
        writer.wait()
        projector.close()
        ledger.engine.dispose()
    assert sent > 0 and count(url, unpublished) == 0
    assert waited < 5, f"marking waited {waited:.1f} s for a writer that holds the lock 50 ms at a time"
