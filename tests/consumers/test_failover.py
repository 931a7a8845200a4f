"""Broker failover on Apache Kafka: a three-broker KRaft cluster (replication factor 3,
``min.insync.replicas=2``) loses one broker to SIGKILL while the relay publishes and the
projector (a real `sgledger project` process) projects, and gets it back later.

What must hold, counted in the database rather than trusted from logs: every event the outbox
holds is in the ledger exactly once (rows and distinct ids), nothing is quarantined, and the
relay and the projector were never restarted.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from producers.outbox import Outbox
from producers.relay import Relay
from producers.sdk import Draft, Producer
from tests.apache_kafka import KafkaCluster, kafka_available
from tests.conftest import PARTNERSHIP, unavailable
from tests.consumers.kafka_helpers import ProjectorProcess, count, wait_for_count
from tests.ledger.factory import INCIDENT
from transport.kafka import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

AGENCIES = ("police/avon-somerset", "gp/L85001")


def _register(keystore: Keystore, outbox: Outbox, settings: KafkaSettings) -> None:
    partnership = Producer(PARTNERSHIP, keystore, outbox, topics=settings.topics)
    for agency in AGENCIES:
        public = keystore.create_agency_key(agency).public_key()
        partnership.publish(
            "agency.key.registered",
            agency,
            {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)},
        )


def _round(producers: dict[str, Producer], n: int, per_round: int) -> None:
    """``per_round`` incidents and GP registrations, spread over children (so partitions)."""
    police, gp = producers[AGENCIES[0]], producers[AGENCIES[1]]
    children = [f"C-{n:03d}-{i:02d}" for i in range(per_round // 2)]
    police.publish_many(
        [Draft("incident.reported", c, {**INCIDENT, "incident_ref": f"INC-{c}"}) for c in children]
    )
    gp.publish_many([Draft("gp.registered", c, {"person": c, "practice": "L85001"}) for c in children])


def test_a_broker_killed_mid_stream_loses_and_doubles_nothing(keystore: Keystore, tmp_path: Path) -> None:
    reason = kafka_available()
    if reason:
        unavailable(reason)
    with KafkaCluster(tmp_path / "kafka", nodes=3, heap_mb=320) as cluster:
        settings = KafkaSettings(
            cluster.bootstrap_servers,
            topic_prefix=f"f{uuid.uuid4().hex[:8]}",
            partitions=6,
            replication_factor=3,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            max_poll_interval_ms=10_000,
            request_timeout_ms=5000,
            max_block_ms=5000,
            delivery_timeout_ms=30_000,
            bootstrap_timeout_ms=5000,
        )
        assert settings.topic_configs()["min.insync.replicas"] == "2"
        outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
        ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        _register(keystore, outbox, settings)
        producers = {a: Producer(a, keystore, outbox, topics=settings.topics) for a in AGENCIES}

        stop = threading.Event()
        relay = Relay(outbox, settings, batch_size=50)
        relay_thread = threading.Thread(
            target=relay.run, args=(stop,), kwargs={"poll_interval_s": 0.1, "max_backoff_s": 1.0}
        )
        relay_thread.start()
        projector = ProjectorProcess(settings, ledger_url, keystore.directory, "failover", tmp_path / "p.log")
        try:
            published = len(AGENCIES)
            for n in range(24):
                if n == 8:
                    # Mid-stream: some events projected, some relayed but not projected, some
                    # still in the outbox. Node 1 is also the first bootstrap address.
                    wait_for_count(ledger_url, published // 2, 60, projector)
                    cluster.kill(1)
                if n == 16:
                    cluster.restart(1)
                _round(producers, n, per_round=20)
                published += 20
                time.sleep(0.25)
            wait_for_count(ledger_url, published, 120, projector)
            time.sleep(1.0)  # anything applied twice would show up now
            projector.check_alive()  # never restarted: it rode out the failover by itself
            assert relay_thread.is_alive()
        finally:
            stop.set()
            relay_thread.join(30)
            relay.close()
            projector.stop()

        outbox_ids = {r.event_id for a in (PARTNERSHIP, *AGENCIES) for r in outbox.events(a)}
        assert len(outbox_ids) == published
        assert outbox.pending_count() == 0
        assert count(ledger_url, "SELECT count(*) FROM ledger_accepted") == published
        assert count(ledger_url, "SELECT count(DISTINCT event_id) FROM ledger_accepted") == published
        assert count(ledger_url, "SELECT count(*) FROM ledger_events") == published
        assert count(ledger_url, "SELECT count(*) FROM ledger_quarantine WHERE status <> 'readmitted'") == 0
        engine = create_engine(ledger_url)
        with engine.connect() as conn:
            ledger_ids = set(conn.execute(text("SELECT event_id FROM ledger_accepted")).scalars())
        engine.dispose()
        assert ledger_ids == outbox_ids
