"""Publishing from the CLI: sign into the outbox, then deliver.

With the embedded broker the whole path runs before the command returns (see
``sgledger.pipeline``); with a real Kafka the command relays once and leaves projection to the
running `sgledger project` service, or leaves the event queued in the outbox if Kafka is down.

Exit codes say what happened to the event (issue 9: a publish that exited 1 "database or disk is
full" had in fact stored, sent and had its event accepted, so a retry created a duplicate):
0 delivered as far as this command goes; 2 refused before anything was stored; 1 failed before
anything was stored; 3 stored in the outbox (so it will be delivered, and may already be in the
ledger) but delivery did not complete: the message gives the event id, and publishing again
with ``--id`` that id is safe (the outbox returns the stored event instead of a second one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ledger.keystore import KeystoreError
from ledger.private_files import NotPrivate
from ledger.topics import Topics
from ledger.validation import Problem
from ledger.vocabulary import did_you_mean
from producers.outbox import DuplicateEventId, Outbox
from producers.relay import Relay
from producers.sdk import InvalidEvent, Producer
from producers.service import ServiceProducer
from sgledger.cli.context import AppContext, UserError, console, err_console, print_json
from sgledger.pipeline import Pipeline
from transport.kafka import BrokerUnavailable, KafkaSettings


class NotStored(UserError):
    """The outbox could not store the event: nothing was published."""

    exit_code = 1


class StoredNotDelivered(UserError):
    """The event is committed to the outbox, but delivering it failed: not lost, not to be
    published again as a new event."""

    exit_code = 3

    def __init__(self, event: Mapping[str, Any], error: Exception) -> None:
        self.event = dict(event)
        first_line = (str(error).splitlines() or [""])[0][:300]
        super().__init__(
            f"{event['type']} {event['id']} ({event['source']} #{event['sequence']}) is stored in "
            f"the outbox, but delivering it failed: {type(error).__name__}: {first_line}. It is not "
            "lost: the next publish (or `sgledger relay`, with a cluster) sends it. Do not publish "
            f"it again as a new event; a retry with --id {event['id']} is safe."
        )


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
        raise no_key(app, agency, exc) from exc
    except InvalidEvent as exc:
        raise UserError(f"event refused before signing: {exc}") from exc
    except DuplicateEventId as exc:
        raise UserError(f"{exc}; nothing was stored (a retry must repeat the same event)") from exc
    except (UserError, NotPrivate):
        raise
    except Exception as exc:  # the outbox transaction rolled back
        raise NotStored(f"nothing was stored: {type(exc).__name__}: {exc}") from exc
    return event, deliver_stored(app, event)


def deliver_stored(app: AppContext, event: Mapping[str, Any]) -> str:
    """``deliver`` for an event already committed to the outbox: a failure says so, with the
    event's id (exit code 3), rather than reading like nothing happened."""
    try:
        return deliver(app, event["id"])
    except Exception as exc:
        raise StoredNotDelivered(event, exc) from exc


def no_key(app: AppContext, agency: str, exc: KeystoreError) -> UserError:
    """A mistyped agency id gets a suggestion; a new one, how to create its key."""
    hint = did_you_mean(agency, app.keystore.agencies())
    return UserError(f"{exc}{hint}" if hint else f"{exc} (create it with `sgledger agency add {agency}`)")


def publish_batch(app: AppContext, agency: str, text: str, as_json: bool) -> None:
    """Every draft of an NDJSON text, checked first (every problem of every line is reported and
    nothing is stored), then signed and stored in one outbox transaction, then delivered."""
    try:
        producer = producer_for(app, agency)
    except KeystoreError as exc:
        raise no_key(app, agency, exc) from exc
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    started = time.monotonic()
    drafts, problems = [], []
    for done, (number, line) in enumerate(lines, start=1):
        try:
            ready, found = producer.preparer.prepare_json(json.loads(line))
        except ValueError as exc:
            ready, found = None, [Problem("", "one JSON object (a draft)", f"not JSON: {exc}")]
        if ready is not None:
            drafts.append(ready)
        problems += [f"line {number}: {problem}" for problem in found]
        if done % 1000 == 0:
            err_console.print(f"checked {done}/{len(lines)}")
    if problems:
        for problem in problems[:50]:
            err_console.print(problem)
        more = " (first 50 shown)" if len(problems) > 50 else ""
        raise UserError(f"{len(problems)} problem(s) in the batch{more}; nothing was published")
    if not drafts:
        raise UserError("the batch holds no events")
    # Signed events, not dicts: the answer needs only ids and sequences (``append_many``).
    events = producer.append_prepared(drafts)
    seconds = time.monotonic() - started
    err_console.print(
        f"signed and queued {len(events)} event(s) in {seconds:.1f} s ({len(events) / seconds:,.0f}/s)"
    )
    first, last = events[0].sequence, events[-1].sequence
    delivery = deliver_stored(app, events[-1].event)  # stored whatever happens next: exit 3 if undelivered
    if as_json:
        print_json(
            {"count": len(events), "ids": [e.event_id for e in events],
             "sequences": [first, last], "delivery": delivery}
        )  # fmt: skip
    else:
        console.print(f"{len(events)} event(s), {agency} #{first}-#{last}: {delivery}")


def publish_root_event(
    app: AppContext, event_type: str, subject: str, data: Mapping[str, Any]
) -> tuple[dict[str, Any], str]:
    """A key registration or revocation, signed with the partnership root key: the only use of
    the root private key, which can otherwise stay offline. Returns the event and where it got."""
    return publish_event(app, app.root_key().partnership, event_type, subject, data)


def service_producer(app: AppContext) -> ServiceProducer:
    """Signs what the partnership's services record (access, flag decisions, tree heads) with
    the service key: no read or decision needs the root private key."""
    app.settings.ensure_data_dir()
    try:
        topics = Topics(app.settings.topic_prefix)
        return ServiceProducer(app.keystore, app.settings.outbox_url, topics=topics)
    except KeystoreError as exc:
        raise UserError(str(exc)) from exc


def deliver(app: AppContext, event_id: str) -> str:
    """Send what the outbox holds, and say where the event ``event_id`` (the last one just
    published) got to: in Kafka, by this call or before it (a retry of a stored event, or a
    relay running beside this command, sends it first: "sent 0 event(s)" read as if it had not
    been), or still queued for `sgledger relay`. The outbox sends in chain order, so the last
    event in Kafka means every one before it is."""
    settings = app.settings
    if settings.embedded:
        with Pipeline(settings, app.ledger, app.root_key()) as pipeline:
            stats = pipeline.sync()
        return f"projected: {stats.accepted} accepted, {stats.quarantined} quarantined, {stats.held} held"
    kafka = KafkaSettings.from_env(
        bootstrap_servers=settings.bootstrap_servers, topic_prefix=settings.topic_prefix
    )
    outbox = Outbox(settings.outbox_url)
    try:
        try:
            sent = Relay(outbox, kafka).send_pending(timeout_s=DELIVER_S)
        except BrokerUnavailable as exc:
            return f"queued in the outbox; Kafka is unreachable ({exc}); `sgledger relay` will send it"
        row = outbox.rows([event_id]).get(event_id)
        if row is None or row.sent_at is None:
            return (
                f"sent {len(sent)} event(s) to Kafka in {DELIVER_S:.0f} s and {outbox.pending_count()} are "
                "still queued in the outbox, this one among them; `sgledger relay` will send them"
            )
        where = f"{row.topic} partition {row.kafka_partition} offset {row.kafka_offset}"
        if event_id in sent:
            return f"sent {len(sent)} event(s) to Kafka (this one at {where})"
        return f"already in Kafka ({where}), sent before this command (a retry, or a running relay)"
    finally:
        outbox.close()


# How long ``deliver`` sends before leaving the rest to `sgledger relay`.
DELIVER_S = 15.0
