"""The partnership's side of witnessing over Kafka: send each new checkpoint, with its consistency
proof, to ``<prefix>.checkpoints``; fold the cosigned copies the agencies' witnesses send back on
``<prefix>.cosignatures`` into the kept checkpoints.

Why Kafka and not HTTP calls to each witness: agencies already consume from the partnership's
cluster, and a witness that is down simply reads the checkpoints later, in order, from the
retained topic; each request's proof runs from the previous checkpoint, so a witness that reads
them all in order always has the size the next proof starts from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ledger.checkpoint import AddCheckpoint
from ledger.checkpoint_store import CheckpointStore
from ledger.notes import NoteError
from transport.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer

log = logging.getLogger(__name__)
SERVICE_GROUP = "checkpoint-service"


def publish_requests(
    settings: KafkaSettings, requests: Sequence[AddCheckpoint], timeout_s: float = 15
) -> None:
    """Send each request keyed by its log's origin (one partition per log keeps them in order)."""
    topics = settings.topics
    ensure_topics(settings, [topics.checkpoints, topics.cosignatures])
    producer = make_producer(settings)
    try:
        for request in requests:
            producer.send(
                topics.checkpoints, key=request.checkpoint.origin.encode(), value=request.body().encode()
            )
        producer.flush(timeout=timeout_s)
    finally:
        producer.close()


def collect_cosignatures(settings: KafkaSettings, store: CheckpointStore, idle_timeout_s: float = 2.0) -> int:
    """Merge every cosigned checkpoint waiting on the topic into ``store``; returns how many new
    signature lines were kept. A copy that is not of a kept checkpoint is logged and skipped:
    it may be for a checkpoint another partnership instance keeps, and is no reason to stop."""
    topics = settings.topics
    ensure_topics(settings, [topics.checkpoints, topics.cosignatures])
    consumer = make_consumer(settings, SERVICE_GROUP, [topics.cosignatures])
    added, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < idle_timeout_s:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        added += store.add_cosignatures(record.value)[1]
                    except (NoteError, UnicodeDecodeError) as exc:
                        log.warning(
                            "cosigned copy at %s/%s skipped: %s", record.partition, record.offset, exc
                        )
            if batch:
                consumer.commit()
            if batch or not consumer.assignment():  # idle time counts only once in the group
                last = time.monotonic()
    finally:
        consumer.close()
    return added
