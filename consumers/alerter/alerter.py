"""The alerter: consumer group ``sgledger-alerter`` on the gap-flags topic, turning flag changes
into mail rows (store.apply_batch) and sending due mail (sender.send_due).

Order per poll: records -> one DB transaction (mail rows + positions) -> Kafka commit. The DB is
the truth: on assignment the consumer seeks to the stored positions, so a lost Kafka commit (or a
broker that forgot everything) replays nothing twice, and a replay from offset 0 adds no mail.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.escalation import digest_due, escalate_due
from consumers.alerter.sender import BACKOFF_BASE, SendReport, send_due
from consumers.alerter.store import AlertStore, Record
from ledger.store.errors import database_outage, error_line
from transport.kafka import KafkaSettings, assign_all, cluster_id, ensure_topics, make_consumer, subscribe

log = logging.getLogger(__name__)

GROUP_ID = "sgledger-alerter"
FIRST_PAUSE_S, MAX_PAUSE_S = 2.0, 30.0  # after a failed step (an outage), doubling
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, alerter: Alerter) -> None:
        self.alerter = alerter

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.alerter.seek_to_stored(list(assigned))


class Alerter:
    def __init__(
        self,
        settings: KafkaSettings,
        config: PartnershipConfig,
        database_url: str,
        *,
        clock: Clock = utc_now,
        group_id: str | None = GROUP_ID,
        smtp_password: str | None = None,
        backoff_base: timedelta = BACKOFF_BASE,
    ) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock
        self.group_id = group_id
        self.topic = settings.topics.gap_flags
        self.store = AlertStore(database_url)
        self.backoff_base = backoff_base
        if smtp_password is None and config.smtp.password_env:
            smtp_password = os.environ.get(config.smtp.password_env)
        self.smtp_password = smtp_password
        self._consumer: KafkaConsumer | None = None
        self._cluster: str | None = None

    @property
    def cluster(self) -> str:
        if self._cluster is None:
            self._cluster = cluster_id(self.settings)
        return self._cluster

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            ensure_topics(self.settings, [self.topic])
            consumer = make_consumer(self.settings, self.group_id, [])
            self._consumer = consumer
            if self.group_id is None:
                # A lone in-process alerter (the demo): take every partition directly instead of
                # waiting for a group join; the positions in the database say where to start.
                self.seek_to_stored(assign_all(consumer, [self.topic]))
            else:
                subscribe(consumer, [self.topic], listener=_SeekToStored(self))
        return self._consumer

    def seek_to_stored(self, partitions: list[TopicPartition], *, unstored_from_start: bool = False) -> None:
        """Seek to the positions the database holds; a partition without one stays where the
        group left it, or with ``unstored_from_start`` starts again from its first record (a
        replay adds no mail)."""
        stored = self.store.positions(self.topic, self.cluster)
        for tp in partitions:
            if tp.topic == self.topic and tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            elif tp.topic == self.topic and unstored_from_start:
                self.consumer.seek_to_beginning(tp)

    def consume_once(self, timeout_ms: int = 500) -> int:
        """One poll: apply the batch in one DB transaction, then commit Kafka offsets. Returns
        the number of new mail rows."""
        batches = self.consumer.poll(timeout_ms=timeout_ms)
        records = [
            Record(m.topic, m.partition, m.offset, m.value) for messages in batches.values() for m in messages
        ]
        if not records:
            return 0
        created = self.store.apply_batch(records, self.config, self.clock(), self.cluster)
        if self.group_id is None:
            return created
        try:
            self.consumer.commit()
        except Exception as exc:  # the DB holds the truth; a lost commit only costs a re-read
            log.warning("Kafka offset commit failed (positions are in the database): %s", exc)
        return created

    def send_once(self) -> SendReport:
        return send_due(self.store, self.config.smtp, self.smtp_password, self.clock(), self.backoff_base)

    def schedule_once(self) -> int:
        """Escalations and today's digest that are due by the clock: new mail rows."""
        now = self.clock()
        return escalate_due(self.store, self.config, now) + digest_due(self.store, self.config, now)

    def step(self, timeout_ms: int = 500) -> SendReport:
        self.consume_once(timeout_ms)
        self.schedule_once()
        return self.send_once()

    def run(
        self,
        stop: threading.Event,
        timeout_ms: int = 1000,
        on_step: Callable[[SendReport], None] | None = None,
    ) -> None:
        """Consume, schedule and send until ``stop``; ``on_step`` hears each step's mail report
        (metrics). A failed step (the database or the broker down) is logged in one line and
        retried, pausing longer each time up to ``MAX_PAUSE_S``; the consumer is
        rewound to the positions the database holds before the next poll, so nothing polled but
        not applied is skipped. (Not a new consumer: tansu's group coordinator took a leave and
        a join of the same group to mean endless rebalances.)"""
        pause, rewind = FIRST_PAUSE_S, False
        while not stop.is_set():
            try:
                if rewind:
                    self.seek_to_stored(list(self.consumer.assignment()), unstored_from_start=True)
                    rewind = False
                report = self.step(timeout_ms)
            except Exception as exc:
                log.error(
                    "alerter step failed, retrying in %.0f s: %s", pause, error_line(exc),
                    exc_info=not database_outage(exc),
                )  # fmt: skip
                rewind = True
                stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
                continue
            pause = FIRST_PAUSE_S
            if report.sent or report.failed:
                log.info(
                    "mail: %d sent, %d deferred, %d failed",
                    report.sent, report.deferred, report.failed,
                    extra={"sent": report.sent, "deferred": report.deferred, "failed": report.failed},
                )  # fmt: skip
            if on_step is not None:
                on_step(report)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        self.store.close()
