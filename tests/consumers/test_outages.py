"""Outages of what the services depend on (issue 9 item 6, issue 12 item 2): nothing lost,
nothing applied twice, and the services resume by themselves, without a restart.

- PostgreSQL stopped (as by a crash: ``pg_ctl -m immediate``) in the middle of projection and
  started again: a private server the test owns, so other tests keep theirs.
- The broker restarted while events wait in the outbox and in topics but are not yet projected:
  tansu (the embedded default) comes back empty, so the relay must send again what the new
  cluster has never seen; the ledger ignores what it already holds.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from producers.outbox import Outbox
from producers.relay import Relay
from producers.sdk import Draft, Producer
from tests.conftest import PARTNERSHIP, allow_connections, unavailable
from tests.consumers.kafka_helpers import ProjectorProcess, count, send_events, story, wait_for_count
from tests.ledger.factory import INCIDENT
from tests.private_postgres import PrivatePostgres, postgres_bin
from transport.broker import EmbeddedBroker, free_port
from transport.kafka import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
BURST = 400
TOTAL = 1 + 40 + BURST + 40  # the key registration, then the police force's events


def _ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT event_id FROM ledger_accepted")).scalars())
    engine.dispose()
    return ids


@pytest.mark.postgres
def test_postgres_stopped_mid_projection_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    if postgres_bin() is None:
        unavailable("no /usr/lib/postgresql/*/bin/initdb: run `bash scripts/services postgres`")
    events = story(keystore, children=60, incidents_per_child=3)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    with PrivatePostgres() as postgres:
        send_events(kafka_settings, first)
        projector = ProjectorProcess(
            kafka_settings, postgres.url, keystore.directory, "pg", tmp_path / "p.log"
        )
        try:
            wait_for_count(postgres.url, len(first), 120, projector)
            postgres.stop("immediate")
            # Events keep arriving while the database is down: the projector polls them, fails
            # to write them, and must neither skip nor half-apply them.
            send_events(kafka_settings, second)
            time.sleep(4)  # several failed batches (the projector retries every 2 s)
            projector.check_alive()
            postgres.start()
            wait_for_count(postgres.url, len(events), 120, projector)
            time.sleep(1)  # a batch applied twice would show up now
            projector.check_alive()
        finally:
            projector.stop()
        ids = _ids(postgres.url)
        assert len(ids) == len(set(ids)) == len(events)
        assert set(ids) == {e["id"] for e in events}
        assert count(postgres.url, "SELECT count(*) FROM ledger_events") == len(events)
        assert count(postgres.url, "SELECT count(*) FROM ledger_quarantine WHERE status <> 'readmitted'") == 0


def test_embedded_broker_restart_with_events_unsent_and_unprojected(
    keystore: Keystore, tmp_path: Path
) -> None:
    """tansu on a fixed port (an operator's restart keeps the address); the relay and the
    projector keep running across it."""
    port = free_port()
    broker = EmbeddedBroker(tmp_path / "tansu", port=port).start()
    settings = KafkaSettings(
        broker.bootstrap_servers,
        topic_prefix=f"r{uuid.uuid4().hex[:8]}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=10_000,
        request_timeout_ms=3000,
        max_block_ms=3000,
        delivery_timeout_ms=6000,
        bootstrap_timeout_ms=3000,
    )
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    partnership = Producer(PARTNERSHIP, keystore, outbox, topics=settings.topics)
    police = "police/avon-somerset"
    public = keystore.create_agency_key(police).public_key()
    partnership.publish(
        "agency.key.registered",
        police,
        {"agency": police, "kid": key_id(public), "public_key": public_key_text(public)},
    )
    producer = Producer(police, keystore, outbox, topics=settings.topics)

    def publish(start: int, n: int) -> None:
        producer.publish_many(
            [
                Draft("incident.reported", f"C-{i:03d}", {**INCIDENT, "incident_ref": f"INC-{i}"})
                for i in range(start, start + n)
            ]
        )

    stop = threading.Event()
    relay = Relay(outbox, settings)
    relay_thread = threading.Thread(
        target=relay.run, args=(stop,), kwargs={"poll_interval_s": 0.1, "max_backoff_s": 1.0}
    )
    projector: ProjectorProcess | None = None
    try:
        publish(0, 40)
        relay_thread.start()
        projector = ProjectorProcess(settings, ledger_url, keystore.directory, "restart", tmp_path / "p.log")
        wait_for_count(ledger_url, 41, 60, projector)
        # A burst the relay sends while the projector is paused: when the broker stops, all of
        # it is in the topics and none in the ledger. (It used to rely on the projector being
        # slower than the relay, which stopped holding as the projector got faster.)
        projector.pause()
        publish(40, BURST)
        deadline = time.monotonic() + 20
        while outbox.pending_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert outbox.pending_count() == 0
        broker.stop()
        assert count(ledger_url, "SELECT count(*) FROM ledger_accepted") == 41
        projector.resume()
        publish(40 + BURST, 40)  # the broker is down: these stay in the outbox
        broker = EmbeddedBroker(tmp_path / "tansu", port=port).start()  # empty: a new cluster
        wait_for_count(ledger_url, TOTAL, 120, projector)
        time.sleep(1)  # anything applied twice would show up now
        projector.check_alive()  # neither service was restarted
        assert relay_thread.is_alive()
    finally:
        stop.set()
        relay_thread.join(30)
        relay.close()
        if projector is not None:
            projector.stop()
        broker.stop()
    ids = _ids(ledger_url)
    expected = {r.event_id for a in (PARTNERSHIP, police) for r in outbox.events(a)}
    assert len(ids) == len(set(ids)) == len(expected) == TOTAL
    assert set(ids) == expected
    assert count(ledger_url, "SELECT count(*) FROM ledger_quarantine WHERE status <> 'readmitted'") == 0


@pytest.mark.postgres
def test_a_database_outage_is_one_line_per_retry_not_a_traceback(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path, postgres_server: str, postgres_db: str
) -> None:
    """The projector retried every 2 s with a full traceback each time: an operator's log
    filled with pages of SQLAlchemy internals around the one line that said what was wrong."""
    events = story(keystore, children=4, incidents_per_child=1)
    first, second = events[:3], events[3:]
    database = make_url(postgres_db).database or ""
    log = tmp_path / "p.log"
    send_events(kafka_settings, first)
    projector = ProjectorProcess(kafka_settings, postgres_db, keystore.directory, "outage", log)
    try:
        wait_for_count(postgres_db, len(first), 120, projector)
        allow_connections(postgres_server, database, False)
        send_events(kafka_settings, second)
        time.sleep(5)  # two or three failed batches
        projector.check_alive()
        allow_connections(postgres_server, database, True)
        wait_for_count(postgres_db, len(events), 120, projector)
    finally:
        allow_connections(postgres_server, database, True)
        projector.stop()
    text_log = log.read_text()
    failures = [line for line in text_log.splitlines() if "projector batch failed" in line]
    assert failures and all("OperationalError" in line for line in failures), text_log[-3000:]
    assert "Traceback" not in text_log
