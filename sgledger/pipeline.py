"""Relay and projector in this process, against the embedded broker or a configured Kafka.

The single-machine default: every command that publishes runs the whole path before it returns
(outbox -> Kafka -> projector -> ledger), because the embedded broker keeps nothing once it
stops. On start it re-sends whatever the outbox sent that never reached the ledger (a previous
run killed between relay and projector), so stopping at any moment loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType

from sqlalchemy import select

from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, ApplyStats, utc_now
from consumers.projector.runner import Projector
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from producers.outbox import Outbox
from producers.relay import Relay
from sgledger.settings import Settings
from transport.broker import EmbeddedBroker
from transport.kafka import KafkaSettings


class CatchUpTimeout(Exception):
    """The projector did not reach the outbox in time (broker or database too slow or down)."""


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        root: RootKey,
        *,
        clock: Callable[[], datetime] = utc_now,
        progress: Callable[[str], None] = lambda _: None,
        shards: int = 0,
    ) -> None:
        """``shards``: 0 projects each child in the intake transaction (the default); n > 0 runs
        the stages apart (docs/stages.md), intake then n child-projection shards one after the
        other in this process: what n `sgledger project --stage children` processes do, in
        one place, so a test can check that both layouts give the same views and flags."""
        self.shards = shards
        self.settings = settings
        self.ledger = ledger
        self.root = root
        self.clock = clock
        self.progress = progress
        self._stack = ExitStack()

    def __enter__(self) -> Pipeline:
        try:
            bootstrap = self.settings.bootstrap_servers
            if bootstrap is None:
                self.progress("starting the embedded broker")
                broker = self._stack.enter_context(EmbeddedBroker(self.settings.data_dir / "broker"))
                bootstrap = broker.bootstrap_servers
            self.kafka = KafkaSettings.from_env(
                bootstrap_servers=bootstrap, topic_prefix=self.settings.topic_prefix
            )
            self.outbox = Outbox(self.settings.outbox_url)
            # Embedded: each start is a new cluster; _resend_unprojected re-queues only what
            # the ledger lacks, so the relay must not re-queue everything on top.
            self.relay = Relay(self.outbox, self.kafka, requeue_on_new_cluster=not self.settings.embedded)
            self._stack.callback(self.relay.close)
            self.applier = Applier(self.ledger, self.root, clock=self.clock, children=not self.shards)
            self.stages = [
                ChildProjection(self.ledger, self.root, shard=Shard(i, self.shards), clock=self.clock)
                for i in range(1, self.shards + 1)
            ]
            # No consumer group in-process: assigning every partition avoids the group join
            # wait; the `project` service uses the group so several processes share the work.
            self.projector = Projector(self.applier, self.kafka, group_id=None)
            self._stack.callback(self.projector.close)
            if self.settings.embedded:
                self._resend_unprojected()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _resend_unprojected(self) -> None:
        missing = self._unprojected(self.outbox.sent_event_ids())
        if missing:
            self.progress(f"re-sending {len(missing)} event(s) the ledger never received")
            self.outbox.mark_unsent(missing)

    def _unprojected(self, event_ids: set[str]) -> set[str]:
        if not event_ids:
            return set()
        seen: set[str] = set()
        ids = sorted(event_ids)
        with self.ledger.read() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                seen.update(
                    session.scalars(select(AcceptedEvent.event_id).where(AcceptedEvent.event_id.in_(chunk)))
                )
                seen.update(
                    i
                    for i in session.scalars(
                        select(QuarantineEntry.event_id).where(QuarantineEntry.event_id.in_(chunk))
                    )
                    if i is not None
                )
        return event_ids - seen

    def sync(self, timeout_s: float = 300.0) -> ApplyStats:
        """Send the outbox, then project until everything sent is in the ledger or quarantine."""
        started = time.monotonic()
        sent_ids = set(self.relay.send_pending(timeout_s=timeout_s))
        self.progress(f"relayed {len(sent_ids)} event(s); projecting")
        stats = ApplyStats()
        waiting = self._unprojected(sent_ids)
        while waiting:
            if time.monotonic() - started > timeout_s:
                raise CatchUpTimeout(
                    f"{len(waiting)} event(s) sent but not projected after {timeout_s:.0f} s"
                )
            stats.add(self.projector.poll_once(timeout_ms=200))
            waiting = self._unprojected(waiting)
        for stage in self.stages:
            projected = stage.catch_up()
            stats.children |= projected.children
            stats.flag_changes.update(projected.flag_changes)
        self.projector.publish_outbox()
        return stats
