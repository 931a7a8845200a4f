"""The producers' partitioner keeps kafka-python's default answer (murmur2 of the key over all
the topic's partitions, as the Java client) while computing it once per key: an agency's chain
must land on the partition every other Kafka client would choose for its key, or a consumer
reading that partition would miss part of the chain (docs/envelope.md)."""

from __future__ import annotations

import pytest
from kafka.partitioner.default import murmur2

from transport.kafka import KafkaSettings, KeyPartitioner, ensure_topics, make_producer


def _default(key: bytes, partitions: int) -> int:
    """The Java client's and kafka-python's choice for a keyed record, written out."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@pytest.mark.kafka
def test_keyed_records_land_where_the_default_partitioner_puts_them(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topics.intake
    ensure_topics(kafka_settings, [topic])
    producer = make_producer(kafka_settings)
    keys = [f"police/force-{n}".encode() for n in range(40)]
    try:
        futures = [(key, producer.send(topic, key=key, value=b"x")) for key in keys * 2]
        producer.flush(10)
        landed = {(key, future.get(timeout=10).partition) for key, future in futures}
    finally:
        producer.close(timeout=5)
    assert landed == {(key, _default(key, kafka_settings.partitions)) for key in keys}
    assert len({partition for _, partition in landed}) > 1  # the keys did spread


class _Cluster:
    """The two questions the partitioner asks of kafka-python's cluster metadata."""

    def __init__(self, partitions: int) -> None:
        self.partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


def test_the_memo_is_bounded_and_follows_a_change_of_partition_count() -> None:
    partitioner = KeyPartitioner(limit=5)
    six, three = _Cluster(6), _Cluster(3)
    keys = [f"C-{n}".encode() for n in range(50)]
    for cluster, count in ((six, 6), (three, 3), (six, 6)):
        answers = [partitioner.partition("t", key, key, None, None, cluster) for key in keys]
        assert answers == [_default(key, count) for key in keys]
        assert len(partitioner._memo) <= 5
