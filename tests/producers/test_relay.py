"""The relay against real brokers: nothing lost while Kafka is down, rows marked sent only after
the broker acknowledged them, and the exact signed bytes arrive, keyed by agency, in order."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy import update

from ledger.canonical import canonical_json
from ledger.envelope import SignedEvent
from ledger.keystore import Keystore
from ledger.signing import signature_valid
from producers.outbox import Entry, Outbox, OutboxRow
from producers.relay import Relay
from producers.sdk import Producer
from tests.ledger.factory import INCIDENT
from tests.producers.conftest import GP, POLICE
from transport.broker import EmbeddedBroker, free_port
from transport.kafka import BrokerUnavailable, KafkaSettings, make_consumer

pytestmark = pytest.mark.kafka


def consume(settings: KafkaSettings, topics: list[str], count: int) -> list[ConsumerRecord]:
    """Read ``count`` records from the beginning of the topics (no group: no join delay)."""
    consumer = make_consumer(settings, None, [])
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(settings.partitions)])
        consumer.seek_to_beginning()
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 20
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def publish_story(keys: Keystore, outbox: Outbox, settings: KafkaSettings, n: int) -> list[dict[str, Any]]:
    police = Producer(POLICE, keys, outbox, topics=settings.topics)
    gp = Producer(GP, keys, outbox, topics=settings.topics)
    events = []
    for i in range(n):
        child = f"C-{i % 3}"
        events.append(police.publish("incident.reported", child, {**INCIDENT, "incident_ref": f"I{i}"}))
        events.append(gp.publish("gp.registered", child, {"person": child, "practice": "L85001"}))
    return events


def chain_order(event: dict[str, Any]) -> tuple[str, int]:
    return event["source"], event["sequence"]


def down(settings: KafkaSettings) -> KafkaSettings:
    """The same settings pointed at a port where no broker listens."""
    return dataclasses.replace(
        settings, bootstrap_servers=f"127.0.0.1:{free_port()}", bootstrap_timeout_ms=500,
        request_timeout_ms=500, max_block_ms=500, delivery_timeout_ms=1000,
    )  # fmt: skip


def test_publish_while_down_then_relay_delivers_exact_bytes_in_order(
    agencies: Keystore, outbox_url: str, kafka_settings: KafkaSettings
) -> None:
    outbox = Outbox(outbox_url)
    events = publish_story(agencies, outbox, kafka_settings, 12)
    with Relay(outbox, down(kafka_settings)) as offline, pytest.raises(BrokerUnavailable):
        offline.send_pending(timeout_s=5)
    assert outbox.pending_count() == len(events)  # nothing marked without an acknowledgement

    with Relay(outbox, kafka_settings) as relay:
        assert relay.send_pending() == [e["id"] for e in sorted(events, key=chain_order)]
        assert relay.send_pending() == []
    assert outbox.pending_count() == 0

    records = consume(kafka_settings, [kafka_settings.topics.intake], len(events))
    assert len(records) == len(events)
    by_id = {e["id"]: e for e in events}
    keys = {POLICE: agencies.agency_private_key(POLICE), GP: agencies.agency_private_key(GP)}
    for record in records:
        event = Outbox.decode(record.value)
        assert record.value == canonical_json(by_id[event["id"]])
        assert record.key == event["source"].encode()
        assert signature_valid(event, keys[event["source"]].public_key())
    # Each agency's chain is one partition, in sequence order with no gap (issue 13: keyed by
    # child, a chain spanned every topic and partition).
    chains: dict[str, list[tuple[int, int, int]]] = {}
    for record in records:
        event = Outbox.decode(record.value)
        chains.setdefault(event["source"], []).append((record.partition, record.offset, event["sequence"]))
    for chain in chains.values():
        assert len({partition for partition, _, _ in chain}) == 1
        assert [sequence for _, _, sequence in sorted(chain)] == list(range(1, len(chain) + 1))
    # The outbox recorded where each event landed.
    landed = {(r.topic, r.partition, r.offset) for r in records}
    rows = outbox.events(POLICE) + outbox.events(GP)
    assert {(r.topic, r.kafka_partition, r.kafka_offset) for r in rows} == landed
    outbox.close()


def test_resend_is_at_least_once_with_the_same_ids(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    events = publish_story(agencies, outbox, kafka_settings, 2)
    with Relay(outbox, kafka_settings) as relay:
        relay.send_pending()
        assert relay.resend(POLICE, from_sequence=2) == 1
        assert len(relay.send_pending()) == 1
        assert relay.resend() == len(events)
        assert len(relay.send_pending()) == len(events)
    received = [Outbox.decode(r.value) for r in consume(kafka_settings, [kafka_settings.topics.intake], 9)]
    ids = [e["id"] for e in received if e["source"] == POLICE]
    police_ids = [e["id"] for e in events if e["source"] == POLICE]
    assert sorted(ids) == sorted(police_ids * 2 + police_ids[1:])


def test_a_row_stored_for_a_family_topic_goes_to_the_intake_topic_keyed_by_agency(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """An outbox written before the upgrade (issue 13) holds rows for the first layout's family
    topics, keyed by child: they must join their agency's chain on the intake topic, and the
    outbox must say where they landed."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    legacy = f"{kafka_settings.topics.prefix}.incident"
    old = Producer(POLICE, agencies, outbox, topics=kafka_settings.topics)
    first = old.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": "I-old"})
    with outbox._transaction() as session:  # as the first layout stored it
        session.execute(update(OutboxRow).values(topic=legacy, key="C-1"))
    second = old.publish("incident.reported", "C-2", {**INCIDENT, "incident_ref": "I-new"})
    with Relay(outbox, kafka_settings) as relay:
        assert relay.send_pending() == [first["id"], second["id"]]
    records = consume(kafka_settings, [kafka_settings.topics.intake], 2)
    assert [Outbox.decode(r.value)["id"] for r in sorted(records, key=lambda r: r.offset)] == [
        first["id"], second["id"],
    ]  # fmt: skip
    assert {r.key for r in records} == {POLICE.encode()}
    assert len({r.partition for r in records}) == 1
    assert {(r.topic, r.kafka_partition) for r in outbox.events(POLICE)} == {
        (kafka_settings.topics.intake, records[0].partition)
    }


def test_oversized_event_reaches_the_broker(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """Events over 1 MiB must reach the projector, which quarantines them with a reason."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    topic = kafka_settings.topics.intake
    big = {"id": "big-1", "subject": "C-1", "sequence": 1, "blob": "x" * (2 * 1024 * 1024)}
    outbox.append(POLICE, [Entry(topic, lambda sequence, prevhash: SignedEvent.of(big, canonical_json(big)))])
    with Relay(outbox, kafka_settings) as relay:
        assert relay.send_pending() == ["big-1"]
    [record] = consume(kafka_settings, [topic], 1)
    assert len(record.value) > 2 * 1024 * 1024


def test_run_loop_relays_in_the_background(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    stop = threading.Event()
    with Relay(outbox, kafka_settings) as relay:
        worker = threading.Thread(target=relay.run, args=(stop, 0.05))
        worker.start()
        try:
            publish_story(agencies, outbox, kafka_settings, 3)
            deadline = time.monotonic() + 20
            while outbox.pending_count() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert outbox.pending_count() == 0
        finally:
            stop.set()
            worker.join(10)
    assert not worker.is_alive()


def test_run_loop_sends_what_is_published_while_it_idles_within_a_fraction_of_a_second(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """Issue 13: an idle relay looked at the outbox once a second, which alone made the publish
    -> flag latency up to a second. Events published at phases unrelated to any one-second
    cycle must each leave within half a second (with a one-second look, all five would have to
    fall in the first half of their cycle: about one chance in thirty)."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    police = Producer(POLICE, agencies, outbox, topics=kafka_settings.topics)
    stop = threading.Event()
    delays = []
    with Relay(outbox, kafka_settings) as relay:
        police.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": "I-first"})
        relay.send_pending()  # connected, topics made: what is timed is the idle loop
        worker = threading.Thread(target=relay.run, args=(stop,))
        worker.start()
        try:
            for i in range(5):
                time.sleep(0.37)
                police.publish("incident.reported", "C-1", {**INCIDENT, "incident_ref": f"I{i}"})
                published = time.monotonic()
                while outbox.pending_count() and time.monotonic() - published < 5:
                    time.sleep(0.005)
                delays.append(time.monotonic() - published)
        finally:
            stop.set()
            worker.join(10)
    assert max(delays) < 0.5, delays


def test_run_loop_backs_off_while_the_broker_is_down(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    events = publish_story(agencies, outbox, kafka_settings, 2)
    stop = threading.Event()
    with Relay(outbox, down(kafka_settings)) as relay:
        worker = threading.Thread(target=relay.run, args=(stop, 0.05, 0.2))
        worker.start()
        time.sleep(1.5)  # several failed attempts
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert outbox.pending_count() == len(events)


def test_broker_restart_loses_nothing(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """A private broker (the shared one is never restarted): it dies mid-stream, publishing goes
    on, and after a new (empty, memory-only) broker starts, resend brings it everything."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    with EmbeddedBroker(tmp_path / "first") as first:
        settings = dataclasses.replace(
            kafka_settings, bootstrap_servers=first.bootstrap_servers,
            request_timeout_ms=1000, max_block_ms=1000, delivery_timeout_ms=2000,
            bootstrap_timeout_ms=1000,
        )  # fmt: skip
        relay = Relay(outbox, settings)
        before = publish_story(agencies, outbox, settings, 3)
        assert len(relay.send_pending()) == len(before)
    after = publish_story(agencies, outbox, settings, 2)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        relay.send_pending(timeout_s=30)
    assert time.monotonic() - started < 10  # bounded by delivery_timeout_ms, not by timeout_s
    relay.close()
    assert outbox.pending_count() == len(after)
    with EmbeddedBroker(tmp_path / "second") as second:
        settings = dataclasses.replace(settings, bootstrap_servers=second.bootstrap_servers)
        with Relay(outbox, settings) as relay:
            relay.resend()
            assert len(relay.send_pending()) == len(before) + len(after)
        topics = [settings.topics.intake]
        received = {Outbox.decode(r.value)["id"] for r in consume(settings, topics, 10)}
    assert received == {e["id"] for e in before + after}


def test_kept_relay_notices_a_broker_restarted_on_its_address(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """The relay keeps its admin connection between rounds (producers/relay.py): a broker that
    restarted empty on the same address between two rounds, with nothing failing in between,
    must still be recognised as a new cluster before anything is sent to it, and everything
    acknowledged by the old one sent again."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    broker = EmbeddedBroker(tmp_path / "tansu", port=free_port()).start()
    settings = dataclasses.replace(
        kafka_settings, bootstrap_servers=broker.bootstrap_servers,
        request_timeout_ms=2000, max_block_ms=2000, delivery_timeout_ms=4000, bootstrap_timeout_ms=2000,
    )  # fmt: skip
    try:
        with Relay(outbox, settings) as relay:
            before = publish_story(agencies, outbox, settings, 3)
            assert len(relay.send_pending()) == len(before)
            relay.send_pending()  # a round on the kept connection
            broker.stop()
            broker.start()  # same port, new (empty) cluster
            after = publish_story(agencies, outbox, settings, 1)
            assert len(relay.send_pending()) == len(before) + len(after)
        topics = [settings.topics.intake]
        received = {Outbox.decode(r.value)["id"] for r in consume(settings, topics, len(before) + len(after))}
        assert received == {e["id"] for e in before + after}
    finally:
        broker.stop()


def test_a_broker_gone_longer_than_a_round_is_waited_for_not_fatal(
    agencies: Keystore, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    """With the default delivery timeout (60 s) longer than a round (30 s), a round's flush ends
    with the records still in flight; kafka-python's close() flushes again first and raised
    KafkaTimeoutError out of the relay, which exited (`sgledger relay` on the first broker
    outage with events queued) and left the producer's thread running."""
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    broker = EmbeddedBroker(tmp_path / "tansu", port=free_port()).start()
    settings = dataclasses.replace(
        kafka_settings, bootstrap_servers=broker.bootstrap_servers,
        request_timeout_ms=1000, max_block_ms=1000, bootstrap_timeout_ms=1000,
    )  # fmt: skip
    assert settings.delivery_timeout_ms > 2000
    senders_before = _senders()  # left by earlier tests in this process, if any
    relay = Relay(outbox, settings)
    try:
        before = publish_story(agencies, outbox, settings, 1)
        assert len(relay.send_pending()) == len(before)
        broker.stop()
        after = publish_story(agencies, outbox, settings, 1)
        with pytest.raises(BrokerUnavailable):
            relay.send_pending(timeout_s=2)
        assert outbox.pending_count() == len(after)
        deadline = time.monotonic() + 10  # the closed producer's thread stops (not joined: close_now)
        while not _senders() <= senders_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _senders() <= senders_before
        broker.start()  # the same address, an empty cluster: everything is sent again
        assert len(relay.send_pending()) == len(before) + len(after)
    finally:
        relay.close()
        broker.stop()


def _senders() -> set[threading.Thread]:
    """kafka-python producers' network threads alive now."""
    return {t for t in threading.enumerate() if type(t).__name__ == "Sender" and t.is_alive()}
