"""The relay: moves outbox rows to Kafka and marks them sent only after the broker acknowledged.

Delivery is at-least-once by design: a row whose acknowledgement was lost is sent again, and the
ledger deduplicates on the event id. What must never happen is a row marked sent that the broker
does not have, so marking follows the acknowledgement (``acks=all``) and nothing else. Used
in-process (scenario runner, demo, tests) and by ``sgledger relay``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError

from ledger.topics import record_key
from producers.outbox import Outbox, Pending
from transport.kafka import (
    BrokerUnavailable,
    KafkaSettings,
    close_now,
    cluster_id_of,
    ensure_topics,
    make_producer,
    open_admin,
)

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        settings: KafkaSettings,
        *,
        batch_size: int = 500,
        requeue_on_new_cluster: bool = True,
    ) -> None:
        """``requeue_on_new_cluster``: when the broker turns out to be a different cluster from
        the one that acknowledged the sent rows (a memory-only broker restarted), send them all
        again (Outbox.switch_cluster). The in-process pipeline passes False: it can see the
        ledger and re-queues only what the ledger lacks."""
        self.outbox = outbox
        self.settings = settings
        self.batch_size = batch_size
        self.requeue_on_new_cluster = requeue_on_new_cluster
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._known_topics: set[str] = set()
        # Asked of every row (``destination``): made once, not a list per row.
        self._legacy_topics = frozenset(settings.topics.legacy_events())
        self._intake_topic = settings.topics.intake

    def send_pending(self, timeout_s: float = 30.0) -> list[str]:
        """Send every unsent row, in (agency, sequence) order, keyed by agency; returns the ids of
        the events the broker acknowledged. Stops early (rows stay queued) once ``timeout_s`` has
        passed. Raises BrokerUnavailable if the broker fails; acknowledged rows are marked first."""
        deadline = time.monotonic() + timeout_s
        sent: list[str] = []
        self._check_cluster()
        while time.monotonic() < deadline:
            batch = self.outbox.pending(self.batch_size)
            if not batch:
                break
            sent += self._send(batch, deadline - time.monotonic())
        return sent

    def _send(self, batch: list[Pending], timeout_s: float) -> list[str]:
        destinations = [self.destination(row) for row in batch]
        producer = self._connected([topic for topic, _ in destinations])
        futures = []
        failure: Exception | None = None
        try:
            for row, (topic, key) in zip(batch, destinations, strict=True):
                futures.append((row, producer.send(topic, key=key, value=row.payload)))
            producer.flush(timeout=max(timeout_s, 0.1))
        except KafkaError as exc:
            failure = exc
        acks = []
        sent = []
        for row, future in futures:
            if future.is_done and future.succeeded():
                acks.append((row.id, future.value.topic, future.value.partition, future.value.offset))
                sent.append(row.event_id)
            elif failure is None:
                failure = future.exception or KafkaTimeoutError("no acknowledgement in time")
        self.outbox.mark_sent(acks)
        if failure is not None:
            self._disconnect()  # a fresh producer re-bootstraps when the broker is back
            raise BrokerUnavailable(
                f"Kafka at {self.settings.bootstrap_servers} did not acknowledge "
                f"{len(batch) - len(acks)} event(s) ({failure}); they stay in the outbox"
            ) from failure
        return sent

    def destination(self, row: Pending) -> tuple[str, bytes]:
        """Where a row goes: as stored, except a row stored for one of the first layout's family
        topics (by an outbox written before the upgrade, or re-queued after a broker restart),
        which goes to the intake topic keyed by its agency like every new row, so that the
        agency's chain is not split between the layouts any further (docs/envelope.md)."""
        if row.topic in self._legacy_topics:
            return self._intake_topic, record_key(row.agency)
        return row.topic, row.key.encode()

    def _check_cluster(self) -> None:
        """Once per call of send_pending (one metadata round trip): a broker that restarted
        empty between two calls, with nothing failing in between, is caught here too."""
        try:
            current = self._cluster_id()
        except BrokerUnavailable:
            return  # the send below fails and says so; nothing can be lost by waiting
        requeued = self.outbox.switch_cluster(current, requeue=self.requeue_on_new_cluster)
        if requeued:
            self._disconnect()  # the new cluster needs its topics created again
            log.warning(
                "relay: Kafka at %s is a new cluster (%s) that has none of the %d event(s) sent "
                "before; sending them again (the ledger ignores those it holds)",
                self.settings.bootstrap_servers, current, requeued,
            )  # fmt: skip

    def _cluster_id(self) -> str:
        """The broker's cluster id over a kept admin connection: a new client every round cost
        ~13 ms of wall (5 ms CPU) against ~0.5 ms, and under a steady load the relay is always in
        a round. A kept connection that fails (the broker restarted) is replaced by a new one at
        once, so a restarted broker is still recognised before anything is sent to it: asking
        less often was tried and lost that (rows reached a new, empty cluster unnoticed)."""
        if self._admin is not None:
            try:
                return cluster_id_of(self._admin)
            except KafkaError:
                self._close_admin()  # ask once more over a new connection
        admin = self._admin = open_admin(self.settings)
        try:
            return cluster_id_of(admin)
        except KafkaError as exc:
            self._close_admin()
            raise BrokerUnavailable(f"Kafka at {self.settings.bootstrap_servers}: {exc}") from exc

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    def _connected(self, topics: list[str]) -> KafkaProducer:
        """The producer, created on first use; topics are created before the first send to them
        (a send to a missing topic would block for ``max_block_ms``)."""
        missing = set(topics) - self._known_topics
        if self._producer is None:
            missing |= set(self.settings.topics.all())
        if missing:
            ensure_topics(self.settings, missing)
            self._known_topics |= missing
        if self._producer is None:
            self._producer = make_producer(self.settings)
        return self._producer

    def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        self._known_topics.clear()  # a restarted (memory-only) broker has lost its topics
        if producer is not None:
            close_now(producer)

    def run(
        self,
        stop: threading.Event,
        poll_interval_s: float = 0.05,
        max_backoff_s: float = 30.0,
        on_sent: Callable[[list[str]], None] | None = None,
        idle_round_s: float = 1.0,
    ) -> None:
        """Relay until ``stop`` is set, backing off (doubling up to ``max_backoff_s``) while the
        broker is unavailable; publishing meanwhile keeps filling the outbox. ``on_sent`` hears
        each round that reached the broker (the acknowledged event ids, maybe none).

        Idle, it looks for new rows every ``poll_interval_s`` (one indexed query), so an event
        leaves within that of its commit: at one look a second, the relay alone made the
        publish -> flag latency up to a second (issue 13). A round (which asks the broker for its
        cluster id, to notice a broker that restarted empty) runs when
        rows are waiting, and at least every ``idle_round_s`` when none are."""
        backoff = poll_interval_s
        last_round = float("-inf")
        while not stop.is_set():
            if time.monotonic() - last_round < idle_round_s and not self.outbox.has_pending():
                stop.wait(poll_interval_s)
                continue
            last_round = time.monotonic()
            try:
                sent = self.send_pending()
            except BrokerUnavailable as exc:
                log.warning("relay: %s; retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                continue
            backoff = poll_interval_s
            if on_sent is not None:
                on_sent(sent)
            if not sent:
                stop.wait(poll_interval_s)

    def resend(self, agency: str | None = None, from_sequence: int = 1) -> int:
        """Queue sent rows again, e.g. after the memory-only embedded broker restarted."""
        return self.outbox.mark_unsent(agency=agency, from_sequence=from_sequence)

    def close(self) -> None:
        self._disconnect()
        self._close_admin()

    def __enter__(self) -> Relay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
