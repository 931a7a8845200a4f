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
