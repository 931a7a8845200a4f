"""The projector's Kafka loop: poll, apply in one transaction, then commit offsets and publish.

Positions live in the database (eventsourcing tracking records, written in the same transaction
as the batch), so a projector killed at any point resumes exactly after the last committed batch:
Kafka's committed offsets are only a hint for tools. Tracking names include the broker's cluster
id: tansu keeps nothing across a restart, and a fresh broker's offset 5 is not the old one's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import select, update

from consumers.projector.applier import Applier, ApplyStats, Message, Prepared
from consumers.projector.collector import collect_less
from ledger.store.errors import database_outage, error_line
from ledger.store.models import QuarantineEntry
from transport.kafka import (
    KafkaSettings,
    assign_all,
    cluster_id,
    ensure_topics,
    make_consumer,
    make_producer,
    subscribe,
)
from views.models import FlagChangeRow, FlagRow

log = logging.getLogger(__name__)
GROUP_ID = "sgledger-projector"


def tracking_name(cluster: str, topic: str, partition: int) -> str:
    """<= 32 characters (the tracking table's limit), unique per cluster incarnation + topic."""
    digest = hashlib.sha256(f"{cluster}|{topic}".encode()).hexdigest()[:24]
    return f"{digest}:{partition}"


class _SeekToTracked(ConsumerRebalanceListener):
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to flush: every applied batch is already committed in the database. (A
        rebalance happens inside a poll, and ``poll_once`` holds no unapplied batch in ``_next``
        while it polls: a batch in hand is applied, its redelivered records are duplicates.)"""

    def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            self.projector.seek_assigned(assigned)
        except Exception:
            self.projector.resync = True  # the database is down: seek once it answers again
            raise


@dataclass
class _Polled:
    """A polled batch: what applying it tracks and commits, and its verification."""

    track: dict[str, int]
    offsets: dict[TopicPartition, Any]
    prepared: Prepared


class Projector:
    """With verification workers (``Applier.verifier``), batches overlap: the records already
    waiting are polled and handed to the workers before the batch in hand is applied, so its
    successor is verified on the other core meanwhile. Only the application is serial (one
    writer); a batch polled but not applied when the process dies was never committed, and the
    next start reads it again from the database's positions, as any unapplied record."""

    def __init__(
        self,
        applier: Applier,
        settings: KafkaSettings,
        *,
        group_id: str | None = GROUP_ID,
        max_batch: int = 5000,
        sweep_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        collect_less()  # this process's collector walked its growing heap: a quarter of its CPU
        self.applier = applier
        self.settings = settings
        self.group_id = group_id
        self.max_batch = max_batch
        self.sweep_every_s = sweep_every_s
        self.clock = clock
        self.topics = settings.topics
        ensure_topics(settings, self.topics.all())
        self.cluster = cluster_id(settings)
        self.consumer: KafkaConsumer = make_consumer(settings, group_id, [])
        if group_id is None:
            # A lone in-process projector (scenario runs, the demo): take every partition
            # directly instead of waiting for a group join.
            self.seek_assigned(assign_all(self.consumer, self.topics.events()))
        else:
            subscribe(self.consumer, self.topics.events(), listener=_SeekToTracked(self))
        self.producer: KafkaProducer = make_producer(settings)
        self._last_sweep = float("-inf")
        # True when the consumer's positions may not match the database's (a batch failed, or
        # an assignment could not read its positions): poll_once seeks from the database first.
        self.resync = False
        self.overlap = applier.verifier.workers > 0
        self._next: _Polled | None = None  # polled and being verified, applied next

    def seek_assigned(self, assigned: Any) -> None:
        """Seek each partition to after the database's position for it. The cluster id is read
        again first: after a memory-only broker restarts, the new cluster's partitions start
        again at 0 and must be read from their beginning under new tracking names."""
        if assigned:
            self.cluster = cluster_id(self.settings)
        for tp in assigned:
            position = self.applier.ledger.tracked_position(
                tracking_name(self.cluster, tp.topic, tp.partition)
            )
            if position is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, position + 1)

    def poll_once(self, timeout_ms: int = 500) -> ApplyStats:
        """One poll -> one transaction -> offsets committed -> outbox published (with overlap:
        the next batch's verification started before this one is applied)."""
        if self.resync:
            self.seek_assigned(self.consumer.assignment())  # raises while the database is down
            self.resync = False
        stats = ApplyStats()
        current, self._next = self._next, None
        if current is None:  # nothing was verified ahead: this process takes its share
            current = self._prepare(self._poll_batch(timeout_ms))
        if current is not None:
            if self.overlap:
                self._next = self._prepare(self._poll_batch(0), after=current)
            try:
                stats = self.applier.apply_prepared(current.prepared, current.track)
            except Exception:
                self._rewind()
                raise
            self._commit(current.offsets)
        if self.clock() - self._last_sweep >= self.sweep_every_s:
            stats.add(self.applier.sweep())
            self._last_sweep = self.clock()
        self.publish_outbox()
        return stats

    def _prepare(
        self, records: dict[TopicPartition, list[Any]], *, after: _Polled | None = None
    ) -> _Polled | None:
        """Start verifying polled records (None if there are none). ``after``: the batch in
        hand, applied meanwhile, whose keys this one is checked with (``Applier.prepare``).
        Either way this process checks what the workers have not begun when it asks for the
        verdicts (``Verifier``): at once for a batch with nothing verified ahead (a replay's
        first, each one of a steady stream), after applying the batch in hand otherwise."""
        if not records:
            return None
        messages: list[Message] = []
        track: dict[str, int] = {}
        offsets: dict[TopicPartition, Any] = {}
        now = self.applier.clock()
        # A record's receipt time by its timestamp: the records of one produce request share
        # one, and making a datetime per record was ~1% of a replay's projector process.
        arrivals: dict[int | None, datetime] = {}
        for tp, batch in records.items():
            place = f"{tp.topic}/{tp.partition}/"
            for record in batch:
                arrival = arrivals.get(record.timestamp)
                if arrival is None:
                    arrival = arrivals[record.timestamp] = received_at(record.timestamp, now)
                messages.append(Message(record.value or b"", f"{place}{record.offset}", arrival))
            track[tracking_name(self.cluster, tp.topic, tp.partition)] = batch[-1].offset
            offsets[tp] = batch[-1].offset + 1
        try:
            prepared = self.applier.prepare(messages, after=after.prepared if after is not None else None)
        except Exception:
            self._rewind()
            raise
        return _Polled(track, offsets, prepared)

    def _rewind(self) -> None:
        """A batch failed: the consumer's position already moved past its records (and past
        the next batch's, polled meanwhile); without rewinding, the next poll would skip them
        until a restart. The database's positions are the truth: forget the batch polled ahead
        and seek every assigned partition from them before the next poll (``poll_once``, which
        raises, and so polls nothing, until the database answers again).

        This replaced seeking each partition back to the first record polled of the failed
        batches (and then from the database as well): the second seek made the first redundant,
        since nothing is polled before it succeeds."""
        self.drop_next()
        self.resync = True

    def drop_next(self) -> None:
        """Forget the batch polled but not applied (a rewind, closing)."""
        if self._next is not None:
            self._next.prepared.pending.cancel()
            self._next = None

    def _poll_batch(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        """Up to ``max_batch`` records, polling again while records are ready.

        An agency's chain is one partition of the intake topic (``ledger.topics``), read in
        order, so each event meets its predecessor in the same or an earlier batch whatever the
        batch's size; only the first layout's family topics (keyed by child, drained after an
        upgrade) spread a chain over partitions, where a larger batch lets more events meet
        their predecessor instead of being held.

        A batch grows only while records are waiting (a backlog: a replay, catching up after an
        outage), so its size does not delay anything at a steady rate, where each poll returns
        what arrived since the last. Under a backlog, each touched child is re-evaluated once
        per batch, so 5,000 (about 6 s of work) instead of 2,000 made a 10,000-event replay
        12-17% cheaper in CPU per event (issue 13).

        Tried and not kept (issue 13): taking from each partition in proportion to its backlog
        (half of a 10,000-event replay is held, mostly because the registration topic with the
        keys is drained after the others) by pausing a partition that has given its share. With
        kafka-python 3.0.12 a paused partition whose parsed records were parked was never
        returned again after ``resume`` (its fetcher restores parked records only while no
        exhausted record set occupies the in-line slot, and does not fetch a parked partition):
        the replay stalled for good. Seeking back instead would re-fetch and re-decode (pure
        Python) the excess every time.
        """
        records: dict[TopicPartition, list[Any]] = {}
        collected, wait = 0, timeout_ms
        while collected < self.max_batch:
            polled = self.consumer.poll(timeout_ms=wait, max_records=self.max_batch - collected)
            if not polled:
                break
            for tp, batch in polled.items():
                records.setdefault(tp, []).extend(batch)
                collected += len(batch)
            wait = 0
        return records

    def _commit(self, offsets: Mapping[TopicPartition, Any]) -> None:
        if self.group_id is None:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except Exception as exc:  # the database holds the true position
            log.warning("Kafka offset commit failed (%s); positions are safe in the database", exc)

    def publish_outbox(self) -> int:
        """Send flag changes and quarantine notices committed by earlier transactions."""
        ledger = self.applier.ledger
        with ledger.read() as session:
            # Core rows, not ORM objects: a flag change is read once and marked once, and loading
            # and updating one ORM object per change was an eighth of the projector's CPU.
            # Each message is keyed by its flag's child, read from the flag's row (joined on its
            # primary key) rather than by parsing the message: ~7 us of JSON per change, and a
            # replay raises 1.5 changes per event (issue 13). A change whose flag row is missing
            # (none is ever deleted) is keyed from its message, as before.
            changes = session.execute(
                select(FlagChangeRow.id, FlagChangeRow.message, FlagRow.id.is_not(None), FlagRow.child)
                .outerjoin(FlagRow, FlagRow.id == FlagChangeRow.flag_id)
                .where(FlagChangeRow.published.is_(False))
                .order_by(FlagChangeRow.id)
                .limit(1000)
            ).all()
            notices = session.scalars(
                select(QuarantineEntry)
                .where(QuarantineEntry.published.is_(False))
                .order_by(QuarantineEntry.id)
                .limit(1000)
            ).all()
            gap_flags = self.topics.gap_flags
            sends = [
                (gap_flags, _child_key(child) if found else _flag_key(m), m.encode())
                for _, m, found, child in changes
            ]
            sends += [(self.topics.quarantine, (q.subject or "").encode(), _notice(q)) for q in notices]
            change_ids = [i for i, *_ in changes]
            notice_ids = [q.id for q in notices]
        if not sends:
            return 0
        futures = [self.producer.send(topic, key=key, value=value) for topic, key, value in sends]
        self.producer.flush(timeout=self.settings.request_timeout_ms / 1000)
        for future in futures:
            future.get(timeout=0)  # raises if the broker did not acknowledge: retried next poll
        with ledger.updating() as session:  # SQLite's write lock in turn (the shards write too)
            if change_ids:
                session.execute(
                    update(FlagChangeRow).where(FlagChangeRow.id.in_(change_ids)).values(published=True),
                    execution_options={"synchronize_session": False},
                )
            for entry in session.scalars(select(QuarantineEntry).where(QuarantineEntry.id.in_(notice_ids))):
                entry.published = True
        return len(sends)

    def run(self, stop: threading.Event, on_batch: Callable[[ApplyStats, float], None] | None = None) -> None:
        """Poll until ``stop``; ``on_batch`` hears each completed batch and how long it took
        (metrics and logs), failures are logged and retried after a pause."""
        while not stop.is_set():
            started = self.clock()
            try:
                stats = self.poll_once()
            except Exception as exc:
                log.error(
                    "projector batch failed; retrying after a pause: %s", error_line(exc),
                    exc_info=not database_outage(exc),
                )  # fmt: skip
                stop.wait(2.0)
                continue
            if on_batch is not None:
                on_batch(stats, self.clock() - started)

    def close(self) -> None:
        self.drop_next()
        self.consumer.close()
        self.producer.close(timeout=5)


def received_at(timestamp_ms: int | None, now: datetime) -> datetime:
    """When the partnership received a record: its Kafka timestamp, but never later than the
    projector's clock (a record cannot arrive in the future). Topics should use broker time
    (``message.timestamp.type=LogAppendTime``, deploy/): a producer-set time is the sender's
    claim, and an earlier one only makes the key check stricter if the sender is honest."""
    if timestamp_ms is None or timestamp_ms <= 0:
        return now
    return min(datetime.fromtimestamp(timestamp_ms / 1000, UTC), now)


def _flag_key(message: str) -> bytes:
    """The key of a gap-flag message whose flag row is missing: its flag's child, from the message."""
    return _child_key(json.loads(message)["flag"]["child"])


def _child_key(child: str | None) -> bytes:
    """A gap-flag message's key: its flag's child, or "partnership" for the partnership-wide
    integrity flags (no child), so one child's flag changes stay in one partition in order."""
    return (child or "partnership").encode()


def _notice(entry: QuarantineEntry) -> bytes:
    return json.dumps(
        {
            "quarantine_id": entry.id,
            "reason": entry.reason,
            "detail": entry.detail,
            "status": entry.status,
            "event_id": entry.event_id,
            "source": entry.source,
            "sequence": entry.sequence,
            "type": entry.type,
            "origin": entry.origin,
            "received_at": entry.received_at.isoformat() if isinstance(entry.received_at, datetime) else None,
            "bytes": len(entry.raw),
            "sha256": hashlib.sha256(entry.raw).hexdigest(),
        },
        sort_keys=True,
    ).encode()
