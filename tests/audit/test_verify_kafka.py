"""`audit verify --from-kafka` against the real broker: the topics and the ledger hold the same
accepted events; a valid event that reached the topics but not the ledger is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.auditor.verify import verify
from consumers.projector.applier import Applier, Message
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from tests.consumers.kafka_helpers import send_events, story
from transport.kafka import KafkaSettings

pytestmark = pytest.mark.kafka


def test_topics_and_ledger_agree_then_a_missing_event_is_reported(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    events = story(keystore, children=5, incidents_per_child=3)
    *accepted, withheld = events
    send_events(kafka_settings, events)
    root = keystore.root_info().root_key()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    Applier(ledger, root).apply([Message(json.dumps(e).encode()) for e in accepted])
    send_events(kafka_settings, accepted[:3])  # redeliveries are not findings

    report = verify(ledger, root, kafka=kafka_settings, workers=2)
    assert report.topic_messages == len(events) + 3
    missing = [f for f in report.findings if f.check == "topics"]
    assert [(f.event_id, f.source, f.sequence) for f in missing] == [
        (withheld["id"], withheld["source"], withheld["sequence"])
    ]
    assert "not in the ledger" in missing[0].detail
    assert len(report.findings) == 1
