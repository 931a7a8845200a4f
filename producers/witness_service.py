"""``sgledger witness run``: an agency's witness reading the partnership's checkpoints from Kafka
and sending its cosigned copies back (producers/witness.py does the checking).

A request refused with 409 whose checkpoint is no larger than what the witness already cosigned
is a redelivery (the witness restarted before committing its position) and is skipped quietly.
Any other refusal is logged, counted and its request kept in ``<witness dir>/refused/`` as
evidence: a badly signed or inconsistent checkpoint is exactly what a witness exists to catch.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from ledger.checkpoint import AddCheckpoint
from ledger.notes import NoteError
from producers.witness import Witness, WitnessRefusal
from transport.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer

log = logging.getLogger(__name__)


@dataclass
class WitnessStats:
    cosigned: list[str] = field(default_factory=list)  # "origin size"
    refused: list[str] = field(default_factory=list)  # "origin size: status reason"
    already_seen: int = 0


def run_witness(
    settings: KafkaSettings, witness: Witness, stop: threading.Event, *, idle_exit_s: float | None = None
) -> WitnessStats:
    """Cosign until ``stop`` is set, or (``idle_exit_s``) until nothing arrived for that long."""
    topics = settings.topics
    ensure_topics(settings, [topics.checkpoints, topics.cosignatures])
    consumer = make_consumer(settings, f"witness:{witness.name}", [topics.checkpoints])
    producer = make_producer(settings)
    stats, last = WitnessStats(), time.monotonic()
    try:
        while not stop.is_set() and (idle_exit_s is None or time.monotonic() - last < idle_exit_s):
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    reply = _one(witness, record.value, stats)
                    if reply is not None:
                        producer.send(topics.cosignatures, key=record.key, value=reply.encode())
            if batch:
                producer.flush(timeout=15)
                consumer.commit()
            if batch or not consumer.assignment():  # idle time counts only once in the group
                last = time.monotonic()
    finally:
        producer.close()
        consumer.close()
    return stats


def _one(witness: Witness, body: bytes, stats: WitnessStats) -> str | None:
    """The cosigned checkpoint to send back, or None (refused or already cosigned)."""
    try:
        request = AddCheckpoint.parse(body)
    except (NoteError, UnicodeDecodeError) as exc:
        stats.refused.append(f"unreadable request: 400 {exc}")
        witness.keep_refused(body, f"400 {exc}")
        return None
    name = f"{request.checkpoint.origin} {request.checkpoint.size}"
    try:
        line = witness.add_checkpoint(body)
    except WitnessRefusal as exc:
        if exc.status == 409 and exc.body and int(exc.body) >= request.checkpoint.size:
            stats.already_seen += 1
            return None
        log.warning("refused to cosign %s: %s %s", name, exc.status, exc)
        stats.refused.append(f"{name}: {exc.status} {exc}")
        witness.keep_refused(body, f"{exc.status} {exc}")
        return None
    stats.cosigned.append(name)
    return str(request.note.with_signature(line))
