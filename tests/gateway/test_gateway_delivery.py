"""The gateway with a broker: 202 while Kafka is down, delivered once it is back, and the
partnership's verdict visible through GET /v1/events/{id}."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer

from consumers.projector.applier import Applier
from consumers.projector.runner import Projector
from ledger.envelope import ChainSigner
from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from tests.consumers.kafka_helpers import send_events
from tests.gateway.conftest import AGENCY, INCIDENT, GatewayProcess, draft, new_token, start_gateway
from transport.broker import EmbeddedBroker, free_port
from transport.kafka import KafkaSettings

pytestmark = pytest.mark.kafka


def wait_for(condition: object, what: str, gateway: GatewayProcess, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}; gateway log: {gateway.log.read_text()[-2000:]}"
        time.sleep(0.2)


@pytest.mark.slow  # waits out the relay's back-off while the broker is down
def test_broker_down_answers_202_and_delivers_each_event_once_when_it_is_back(
    data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = KafkaSettings(f"127.0.0.1:{port}", topic_prefix="gw", partitions=3)
    gateway = start_gateway(
        data_dir, f"--bootstrap-servers={settings.bootstrap_servers}", "--topic-prefix=gw",
        env={"SGLEDGER_KAFKA_PARTITIONS": "3", "SGLEDGER_KAFKA_REQUEST_TIMEOUT_MS": "2000",
             "SGLEDGER_KAFKA_BOOTSTRAP_TIMEOUT_MS": "2000", "SGLEDGER_KAFKA_MAX_BLOCK_MS": "2000"},
    )  # fmt: skip
    token = new_token(data_dir)
    try:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
            answers = [
                http.post("/v1/events", json=draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}))
                for n in range(5)
            ]
            assert [a.status_code for a in answers] == [202] * 5
            ids = [a.json()["id"] for a in answers]
            assert http.get(f"/v1/events/{ids[0]}").json()["status"] == "queued"
            with EmbeddedBroker(tmp_path / "tansu", port=port):
                wait_for(
                    lambda: all(http.get(f"/v1/events/{i}").json()["status"] == "sent" for i in ids),
                    "not delivered after the broker came back",
                    gateway,
                )
                consumer = KafkaConsumer(
                    settings.topics.for_type("incident.reported"),
                    bootstrap_servers=settings.bootstrap_servers,
                    auto_offset_reset="earliest",
                    consumer_timeout_ms=3000,
                )
                delivered = [m.value for m in consumer]
                consumer.close()
        assert sorted(json.loads(v)["id"] for v in delivered) == sorted(ids)  # each once
    finally:
        gateway.stop()


def test_status_reports_accepted_held_and_quarantined(
    data_dir: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    keystore = Keystore(data_dir / "keys")
    ledger_url = f"sqlite:///{tmp_path / 'partnership.sqlite'}"
    ledger = Ledger(ledger_url)
    gateway = start_gateway(
        data_dir,
        f"--bootstrap-servers={kafka_settings.bootstrap_servers}",
        f"--topic-prefix={kafka_settings.topic_prefix}",
        f"--partnership-database-url={ledger_url}",
        env={"SGLEDGER_KAFKA_PARTITIONS": str(kafka_settings.partitions)},
    )
    projector = Projector(Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=None)
    token = new_token(data_dir)
    try:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
            first = http.post("/v1/events", json=draft()).json()["id"]

            def status() -> str:
                projector.poll_once(timeout_ms=100)
                return str(http.get(f"/v1/events/{first}").json()["status"])

            wait_for(lambda: status() == "held", "not held for its unregistered key", gateway)
            assert http.get(f"/v1/events/{first}").json()["reason"] == "unknown-key"
            root = ChainSigner("partnership/test", keystore.root_private_key())
            key = keystore.agency_private_key(AGENCY).public_key()
            registration = root.sign(
                "agency.key.registered",
                {"agency": AGENCY, "kid": key_id(key), "public_key": public_key_text(key),
                 "valid_from": "2024-01-01T00:00:00+00:00"},
                subject=AGENCY, at=datetime.now(UTC),
            )  # fmt: skip
            send_events(kafka_settings, [registration])
            wait_for(lambda: status() == "accepted", "not accepted once its key was registered", gateway)
            revocation = root.sign(
                "agency.key.revoked", {"agency": AGENCY, "kid": key_id(key), "reason": "laptop stolen"},
                subject=AGENCY, at=datetime.now(UTC),
            )  # fmt: skip
            send_events(kafka_settings, [revocation])
            applied = lambda: projector.poll_once(timeout_ms=100) and ledger.count() == 3  # noqa: E731
            wait_for(applied, "revocation not applied", gateway)
            first = http.post("/v1/events", json=draft(data={**INCIDENT, "incident_ref": "INC-late"})).json()[
                "id"
            ]
            wait_for(lambda: status() == "quarantined", "not quarantined after revocation", gateway)
            late = http.get(f"/v1/events/{first}").json()
            assert late["reason"] == "key-not-valid-at-recordedtime" and "revoked" in late["detail"]
    finally:
        projector.close()
        gateway.stop()
        ledger.engine.dispose()
