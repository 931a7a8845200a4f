"""The intake layout (issue 13): one intake topic keyed by agency, so that an agency's hash chain
is one ordered stream; the first layout's family topics drained after an upgrade. On both
brokers (tansu and Apache Kafka), with the real SDK, outbox and relay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.auditor.topics import read_topics
from consumers.projector.applier import Applier, ApplyStats
from consumers.projector.runner import Projector
from consumers.projector.verifier import Verifier
from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from producers.outbox import Outbox
from producers.relay import Relay
from producers.sdk import Producer
from tests.consumers.kafka_helpers import count, send_events, send_legacy, story
from tests.ledger.factory import INCIDENT, T0
from transport.kafka import KafkaSettings, admin_client

pytestmark = pytest.mark.kafka

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001")


def publish(
    keystore: Keystore, outbox: Outbox, settings: KafkaSettings, children: int
) -> list[dict[str, Any]]:
    """Keys registered by the partnership, then each child's events from every agency in turn,
    through the SDK and the relay (how a partnership's traffic reaches the broker)."""
    root = keystore.root_info()
    partnership = Producer(root.partnership, keystore, outbox, topics=settings.topics)
    events = []
    for agency in AGENCIES:
        public = keystore.create_agency_key(agency).public_key()
        registration = {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)}
        before = T0 - timedelta(days=1)
        events.append(
            partnership.publish("agency.key.registered", agency, registration, time=before, recorded=before)
        )
    producers = {a: Producer(a, keystore, outbox, topics=settings.topics) for a in AGENCIES}
    for n in range(children):
        child, at = f"C-{n:03d}", T0 + timedelta(hours=n)
        for agency, producer in producers.items():
            data = (
                {**INCIDENT, "incident_ref": f"INC-{n}"}
                if agency.startswith("police/")
                else {"person": child, "practice": "L85001"}
                if agency.startswith("gp/")
                else {"dob": "2023-11-01"}
            )
            kind = {"police": "incident.reported", "gp": "gp.registered", "csc": "child.registered"}
            events.append(producer.publish(kind[agency.split("/")[0]], child, data, time=at, recorded=at))
    with Relay(outbox, settings) as relay:
        assert len(relay.send_pending()) == len(events)
    return events


def replay(
    ledger: Ledger, keystore: Keystore, settings: KafkaSettings, total: int, max_batch: int
) -> ApplyStats:
    """Project the topics from the beginning in batches of ``max_batch``; what the batches did."""
    stats = ApplyStats()
    projector = Projector(
        Applier(ledger, keystore.root_info().root_key(), verifier=Verifier(0)),
        settings, group_id=None, max_batch=max_batch,
    )  # fmt: skip
    try:
        for _ in range(2000):
            if ledger.count() >= total:
                break
            stats.add(projector.poll_once(timeout_ms=200))
    finally:
        projector.close()
    assert ledger.count() == total, "the projector did not catch up"
    return stats


def test_a_replay_of_the_intake_topic_holds_nothing_for_a_predecessor(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    """Keyed by child (before issue 13), each chain spanned every partition, and a replay in
    small batches held most events until their predecessor's partition was read (parsed twice,
    re-sorted, re-checked). Keyed by agency, a chain is read in order: no sequence-gap hold.
    (Events may still wait for their key: the registrations are the partnership's chain, on
    its own partition, which a replay may read after an agency's; docs/envelope.md.)"""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    events = publish(keystore, outbox, kafka_settings, children=12)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    url = str(ledger.engine.url)
    stats = replay(ledger, keystore, kafka_settings, len(events), max_batch=5)
    assert count(url, "SELECT count(*) FROM ledger_quarantine WHERE reason = 'sequence-gap'") == 0
    assert stats.refused[("held", "sequence-gap")] == 0
    assert stats.accepted == len(events)
    ledger.engine.dispose()
    outbox.close()


def test_the_family_topics_of_the_first_layout_are_drained(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    """A partnership upgrading with events still in the family topics (keyed by child): the
    projector reads them with the intake topic, each chain continuing from one to the other,
    and the auditor's topic reader sees both."""
    events = story(keystore, children=4, incidents_per_child=2)
    half = len(events) // 2
    send_legacy(kafka_settings, events[:half])
    send_events(kafka_settings, events[half:])
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    replay(ledger, keystore, kafka_settings, len(events), max_batch=5000)
    origins = {m.origin.split("/")[0] for m in read_topics(kafka_settings, idle_timeout_s=3)}
    assert kafka_settings.topics.intake in origins
    assert origins - {kafka_settings.topics.intake} <= set(kafka_settings.topics.legacy_events())
    assert len(origins) >= 3  # the intake topic and two family topics
    ledger.engine.dispose()


def test_a_new_partnership_has_no_family_topics(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    """Consumers read the family topics only where they exist: starting the projector and the
    auditor's reader must not create them (tansu creates a topic it is asked about by name)."""
    send_events(kafka_settings, story(keystore, children=1, incidents_per_child=1))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    Projector(
        Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=f"g-{uuid.uuid4().hex[:8]}"
    ).close()
    Projector(Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=None).close()
    assert read_topics(kafka_settings, idle_timeout_s=2)
    with admin_client(kafka_settings) as admin:
        names = {n for n in admin.list_topics() if n.startswith(kafka_settings.topics.prefix + ".")}
    assert names == set(kafka_settings.topics.all())
    ledger.engine.dispose()
