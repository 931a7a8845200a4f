"""Publishing from the CLI: sign into the outbox, then deliver.

With the embedded broker the whole path runs before the command returns (see
``sgledger.pipeline``); with a real Kafka the command relays once and leaves projection to the
running `sgledger project` service, or leaves the event queued in the outbox if Kafka is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ledger.keystore import KeystoreError
from ledger.topics import Topics
from producers.outbox import Outbox
from producers.relay import Relay
from producers.sdk import InvalidEvent, Producer
from producers.service import ServiceProducer
from sgledger.cli.context import AppContext, UserError
from sgledger.pipeline import Pipeline
from transport.kafka import BrokerUnavailable, KafkaSettings


def producer_for(app: AppContext, agency: str) -> Producer:
    app.settings.ensure_data_dir()
    return Producer(agency, app.keystore, app.settings.outbox_url, topics=Topics(app.settings.topic_prefix))


def publish_event(
    app: AppContext,
    agency: str,
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    time: datetime | None = None,
    recorded: datetime | None = None,
    event_id: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Returns the signed event and a sentence saying where it got to."""
    try:
        event = producer_for(app, agency).publish(
            event_type, subject, data, time=time, recorded=recorded, event_id=event_id
        )
    except KeystoreError as exc:
        raise UserError(f"{exc} (create it with `sgledger agency add {agency}`)") from exc
    except InvalidEvent as exc:
        raise UserError(f"event refused before signing: {exc}") from exc
    return event, deliver(app)


def publish_root_event(app: AppContext, event_type: str, subject: str, data: Mapping[str, Any]) -> str:
    """A key registration or revocation, signed with the partnership root key: the only use of
    the root private key, which can otherwise stay offline."""
    return publish_event(app, app.root_key().partnership, event_type, subject, data)[1]


def service_producer(app: AppContext) -> ServiceProducer:
    """Signs what the partnership's services record (access, flag decisions, tree heads) with
    the service key: no read or decision needs the root private key."""
    app.settings.ensure_data_dir()
    try:
        topics = Topics(app.settings.topic_prefix)
        return ServiceProducer(app.keystore, app.settings.outbox_url, topics=topics)
    except KeystoreError as exc:
        raise UserError(str(exc)) from exc


def deliver(app: AppContext) -> str:
    settings = app.settings
    if settings.embedded:
        with Pipeline(settings, app.ledger, app.root_key()) as pipeline:
            stats = pipeline.sync()
        return f"projected: {stats.accepted} accepted, {stats.quarantined} quarantined, {stats.held} held"
    kafka = KafkaSettings.from_env(
        bootstrap_servers=settings.bootstrap_servers, topic_prefix=settings.topic_prefix
    )
    try:
        sent = Relay(Outbox(settings.outbox_url), kafka).send_pending(timeout_s=15)
    except BrokerUnavailable as exc:
        return f"queued in the outbox; Kafka is unreachable ({exc}); `sgledger relay` will send it"
    return f"sent {len(sent)} event(s) to Kafka"
