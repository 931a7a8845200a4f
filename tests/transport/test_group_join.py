"""A group member that works between short polls still joins (transport/kafka_join.py).

Without the fix, kafka-python 3.0 throws away a JoinGroup that completed while the application
was busy and sends another one, so a busy member can join forever and consume nothing: on tansu
(which holds a join for half the session timeout) this test consumed 0 of 12 records in 60 s in
every run.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from transport.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer, subscribe

pytestmark = pytest.mark.kafka

WORK_S = 1.2  # longer than the join is held (1 s at the tests' 2 s session), shorter than a session


def test_busy_members_join_and_share_every_record(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topics.gap_flags
    ensure_topics(kafka_settings, [topic])
    producer = make_producer(kafka_settings)
    for i in range(6):
        producer.send(topic, key=f"child-{i}".encode(), value=b"first")
    producer.flush()

    group = f"busy-{uuid.uuid4().hex[:8]}"
    seen: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def member() -> None:
        consumer = make_consumer(kafka_settings, group, [])
        try:
            subscribe(consumer, [topic])
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                records = [m for messages in batches.values() for m in messages]
                if records:
                    with lock:
                        seen.extend(m.key for m in records)
                    consumer.commit()
                time.sleep(WORK_S)  # the member's own work: applying a batch, sending mail
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            consumer.close(autocommit=False)

    threads = [threading.Thread(target=member, daemon=True) for _ in range(2)]
    threads[0].start()
    time.sleep(1.5)
    threads[1].start()  # a rebalance while the first member is busy
    for i in range(6, 12):
        producer.send(topic, key=f"child-{i}".encode(), value=b"second")
    producer.flush()
    producer.close()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors
    assert sorted(seen) == sorted(f"child-{i}".encode() for i in range(12))


def test_a_member_whose_topic_appears_while_it_joins_consumes_it(kafka_settings: KafkaSettings) -> None:
    """A pattern subscription (``subscribe``) that finds no topic joins with none (the projector
    against a broker that restarted empty), and the relay creates the topics while that join is
    held. The leader's assignment then already covers the new topic, so the rebalance that
    follows is asked for only by the subscription's change, and once its JoinGroup is sent
    nothing in kafka-python 3.0 says a rebalance is under way: a poll whose timeout ran out in
    it left the join unfinished for good (no assignment, no heartbeats, nothing consumed; seen as
    the projector of test_outages.py's broker restart consuming nothing for 120 s in about one
    run of six)."""
    topic = kafka_settings.topics.gap_flags
    consumer = make_consumer(kafka_settings, f"late-{uuid.uuid4().hex[:8]}", [])
    try:
        subscribe(consumer, [topic])
        joining = time.monotonic() + 0.4  # the first JoinGroup is sent; tansu holds it ~1 s
        while time.monotonic() < joining:
            assert consumer.poll(timeout_ms=100) == {}
        ensure_topics(kafka_settings, [topic])
        producer = make_producer(kafka_settings)
        for i in range(3):
            producer.send(topic, key=f"child-{i}".encode(), value=b"late")
        producer.flush()
        producer.close()
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=100)  # shorter than a join: the timeout runs out in it
            seen += [m.key for messages in batches.values() for m in messages]
        assert sorted(seen) == [f"child-{i}".encode() for i in range(3)]
    finally:
        consumer.close(autocommit=False)
