"""With Kafka, the web workspace's delivery thread relays what its pages signed (the projector
is the `sgledger project` service's job): a read is sent without the page waiting for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from ledger.topics import Topics
from ledger.vocabulary import SERVICE_AGENCY
from producers.outbox import Outbox
from producers.service import Actor, ServiceProducer, child_target
from sgledger.settings import Settings
from transport.kafka import KafkaSettings
from web.delivery import Delivery

pytestmark = pytest.mark.kafka


def test_reads_are_relayed_to_kafka_in_the_background(
    tmp_path: Path, keystore: Keystore, kafka_settings: KafkaSettings
) -> None:
    keystore.create_agency_key(SERVICE_AGENCY)
    settings = Settings.resolve(
        tmp_path, keys_dir=keystore.directory, bootstrap_servers=kafka_settings.bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
    )  # fmt: skip
    outbox = Outbox(settings.outbox_url)
    producer = ServiceProducer(keystore, outbox, topics=Topics(settings.topic_prefix))
    delivery = Delivery(settings, Ledger(settings.database_url), keystore.root_info().root_key())
    delivery.start()
    try:
        producer.record_access(Actor("local:a@b.example", "lead", "gp/L1"), "web child", child_target("C-1"))
        assert outbox.pending_count() == 1
        assert delivery.deliver(wait_s=30)
        assert outbox.pending_count() == 0
    finally:
        delivery.stop()
