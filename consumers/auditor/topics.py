"""Read every event topic from offset 0 with a fresh consumer that belongs to no group.

The event topics are the intake topic and whichever of the first layout's family topics still
exist (``Topics.events``; docs/envelope.md, "Upgrading from the family topics"): ``assign_all``
assigns only partitions the cluster has, so a family topic that does not exist is not created.

No group means no committed offsets are touched and no running projector is rebalanced: the
audit is a pure reader. tansu's ``end_offsets`` is wrong, so the end is each partition's
highwater mark as reported by fetches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from transport.kafka import KafkaSettings, assign_all, make_consumer


@dataclass(frozen=True)
class TopicMessage:
    origin: str  # topic/partition/offset
    value: bytes
    timestamp_ms: int | None = None  # the record's time: when the partnership received it


def read_topics(settings: KafkaSettings, idle_timeout_s: float = 5.0) -> list[TopicMessage]:
    """All messages of the event topics, in partition order."""
    consumer = make_consumer(settings, None, [])
    try:
        partitions = assign_all(consumer, settings.topics.events())
        consumer.seek_to_beginning(*partitions)
        messages: list[TopicMessage] = []
        last_progress = time.monotonic()
        while time.monotonic() - last_progress < idle_timeout_s:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for records in batch.values():
                messages.extend(
                    TopicMessage(f"{r.topic}/{r.partition}/{r.offset}", r.value, r.timestamp) for r in records
                )
            if batch:
                last_progress = time.monotonic()
            if _caught_up(consumer, partitions):
                break
        return messages
    finally:
        consumer.close()


def _caught_up(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or consumer.position(tp) < highwater:
            return False
    return True
