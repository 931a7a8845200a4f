"""How soon a consumer polling an idle topic receives a new record (issue 13: publish -> flag
latency). tansu answers a fetch that finds nothing only when the fetch's wait ends, so the
client's default wait (500 ms) alone added up to half a second to every event."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import TopicPartition

from transport.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer

pytestmark = pytest.mark.kafka


def test_a_record_sent_to_an_idle_topic_is_received_within_a_fifth_of_a_second(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topics.for_type("incident.reported")
    ensure_topics(kafka_settings, [topic])
    producer = make_producer(kafka_settings)
    consumer = make_consumer(kafka_settings, None, [])
    sent: dict[int, float] = {}
    delays: list[float] = []
    try:
        producer.send(topic, key=b"C-1", value=b"warm-up").get(timeout=10)
        consumer.assign([TopicPartition(topic, p) for p in range(kafka_settings.partitions)])
        consumer.seek_to_end()
        consumer.poll(timeout_ms=200)

        def send_slowly() -> None:
            for n in range(8):
                time.sleep(0.137)  # unrelated to any fetch wait
                sent[n] = time.monotonic()
                producer.send(topic, key=b"C-1", value=str(n).encode()).get(timeout=10)

        sender = threading.Thread(target=send_slowly)
        sender.start()
        deadline = time.monotonic() + 20
        while len(delays) < 8 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                delays += [time.monotonic() - sent[int(r.value)] for r in records]
        sender.join()
    finally:
        consumer.close()
        producer.close()
    assert len(delays) == 8
    assert max(delays) < 0.2, delays
