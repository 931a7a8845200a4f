"""Stage 2, child projection: follow the ledger's notification log and keep children's views and
flags, one shard of the children per process (docs/stages.md).

A process application in the eventsourcing sense: it reads accepted events in notification
order (``ledger_accepted.position`` is the notification id of ``ledger_events``) from its own
tracking position, and writes that position in the same transaction as the view and flag rows it
derived, so a process killed at any point resumes exactly after its last committed batch and
never applies a notification twice. Kafka plays no part: intake already put every event in the
ledger in order.

Each batch is two transactions. The first only reads (notifications, the touched children's
events and households) and evaluates the rules, the CPU cost; it holds no lock, so shards and
intake run it side by side (SQLite in WAL mode too). The second writes what changed and the new
position under the shard's own lock: on PostgreSQL an advisory lock per shard, so two processes
started with the same ``--shard`` by mistake cannot both apply a batch (the second sees the
position moved and drops its batch); on SQLite the database's single write lock, taken first.
Events accepted between the two transactions are at later positions: the next batch reads them
and evaluates their children again, so nothing is missed and the views converge on the ledger.

A child whose evaluation raises (a fault in the rules, not in an event: intake has accepted it)
is logged and left as it was; its next event or deadline tries again. The batch goes on: one
child must not stop every other child's flags.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from consumers.projection.shard import Shard
from consumers.projector.applier import (
    INFRASTRUCTURE_ERRORS,
    NOT_CHILD_EVENTS,
    ApplyStats,
    utc_now,
)
from ledger.keyregistry import RootKey
from ledger.store.errors import database_outage, error_line
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from policies.base import Policy
from policies.engine import Evaluator
from policies.registry import ALL_POLICIES
from views.projection import ChildEvaluation, ChildFailed, ChildHistories, evaluate_children, write_children
from views.queries import due_children

log = logging.getLogger(__name__)
SHARD_LOCK = 724154  # PostgreSQL advisory lock class of the shards (724153 is the ledger writer)
_HEAD = select(func.max(AcceptedEvent.position))


class ChildProjection:
    def __init__(
        self,
        ledger: Ledger,
        root: RootKey,
        *,
        shard: Shard | None = None,
        policies: Sequence[Policy] = ALL_POLICIES,
        clock: Callable[[], datetime] = utc_now,
        max_batch: int = 2000,
        sweep_every_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger, self.root, self.shard = ledger, root, shard or Shard()
        self.policies = policies
        self.rules = [p.id for p in policies]
        self.clock = clock
        self.max_batch = max_batch
        self.sweep_every_s = sweep_every_s
        self.monotonic = monotonic
        self._last_sweep = float("-inf")
        self.reached = 0  # the position the last batch read up to (``run``'s look for news)
        self.evaluator = Evaluator()  # re-runs only the rules whose inputs changed (exact)
        # reads only what was accepted since a child's last read, compares with the rows it last wrote
        self.histories = ChildHistories()

    @property
    def name(self) -> str:
        return self.shard.tracking_name

    def position(self) -> int:
        """The last notification this shard has projected (0: none yet)."""
        return self.ledger.tracked_position(self.name) or 0

    def lag(self) -> int:
        """Notifications accepted and not yet projected by this shard (all of them are read,
        including other shards' children, whose households may include this shard's)."""
        return max(0, self.head() - self.position())

    def head(self) -> int:
        """The last notification accepted (0: none yet): one Core statement on a pooled
        connection, ~0.04 ms of CPU against ~1 ms for an empty ``run_once``, so an idle shard
        can look for news often (``run``)."""
        with self.ledger.engine.connect() as connection:
            return connection.execute(_HEAD).scalar() or 0

    def run_once(self) -> ApplyStats:
        """One batch: up to ``max_batch`` notifications after this shard's position (and, every
        ``sweep_every_s``, its children whose deadline has passed). Returns what it changed;
        ``stats.accepted`` counts the notifications read."""
        stats = ApplyStats()
        now = self.clock()
        sweeping = self.monotonic() - self._last_sweep >= self.sweep_every_s
        start = self.reached = self.position()
        # A read-only transaction sees only committed events: what it reads may be kept.
        with self.histories.transaction(), self.ledger.read() as session:
            accepted = AcceptedEvent
            rows = session.execute(
                select(accepted.position, accepted.subject, accepted.type, accepted.event_id)
                .where(accepted.position > start)
                .order_by(accepted.position)
                .limit(self.max_batch)
            ).all()
            triggers = {
                subject: event_id for _, subject, kind, event_id in rows if kind not in NOT_CHILD_EVENTS
            }
            if sweeping:
                for child in due_children(session, now):
                    if self.shard.owns(child):
                        triggers.setdefault(child, "")
            evaluations = self._evaluate(session, triggers, now) if triggers else []
        if rows or evaluations:
            end = rows[-1].position if rows else None
            if not self._write(start, end, evaluations, now, stats):
                return stats  # another process of this shard applied it: read again from there
            stats.children.update(e.child for e in evaluations)
            stats.accepted = len(rows)
            self.reached = end or start
        if sweeping:
            self._last_sweep = self.monotonic()
        return stats

    def _evaluate(self, session: Session, triggers: dict[str, str], now: datetime) -> list[ChildEvaluation]:
        registered = self.ledger.key_registry(session, self.root).registered_agencies()
        skipped: set[str] = set()
        while True:
            try:
                return evaluate_children(
                    session,
                    triggers,
                    registered,
                    now,
                    self.policies,
                    owns=lambda child: self.shard.owns(child) and child not in skipped,
                    evaluator=self.evaluator,
                    histories=self.histories,
                    reraise=INFRASTRUCTURE_ERRORS,
                )
            except ChildFailed as failure:
                self._skip(failure, skipped)

    def _write(
        self,
        start: int,
        end: int | None,
        evaluations: list[ChildEvaluation],
        now: datetime,
        stats: ApplyStats,
    ) -> bool:
        """Write the batch and the position ``end`` reached, unless this shard's position is no
        longer ``start`` (False then). A child whose rows cannot be written is skipped as in
        ``_evaluate``: the transaction is redone without it."""
        skipped: set[str] = set()
        while True:
            try:
                # around the commit: what a failed write wrote is not remembered (ChildHistories)
                with self.histories.transaction(), self.ledger.session() as session, session.no_autoflush:
                    self._lock(session)
                    if self.position() != start:
                        return False
                    changes = write_children(
                        session,
                        [e for e in evaluations if e.child not in skipped],
                        now,
                        self.rules,
                        reraise=INFRASTRUCTURE_ERRORS,
                        histories=self.histories,
                    )
                    if end is not None:
                        self.ledger.track(session, self.name, end)
                    stats.count_changes(changes)  # before the commit expires the rows
                    return True
            except ChildFailed as failure:
                self._skip(failure, skipped)

    def _lock(self, session: Session) -> None:
        if self.ledger.is_postgres:
            session.execute(
                text("SELECT pg_advisory_xact_lock(:kind, :shard)"),
                {"kind": SHARD_LOCK, "shard": self.shard.index * 1000 + self.shard.count},
            )
        else:  # SQLite: take the one write lock now, before reading, or a commit in between
            # by intake or another shard makes this transaction's first write fail (SQLITE_BUSY)
            self.ledger.sqlite_write_lock(session)

    @staticmethod
    def _skip(failure: ChildFailed, skipped: set[str]) -> None:
        if failure.child in skipped:  # raised again for a child already set aside: not its fault
            raise failure.error from failure
        log.error("projecting failed for %s", failure.described())
        skipped.add(failure.child)

    def run(
        self,
        stop: threading.Event,
        on_batch: Callable[[ApplyStats, float], None] | None = None,
        *,
        idle_wait_s: float = 0.2,
        look_s: float = 0.02,
    ) -> None:
        """Project until ``stop``; ``on_batch`` hears each batch and how long it took. Waits
        only when a batch found nothing to read: after a batch that read something, the next
        one reads at once what was accepted meanwhile, so under a steady stream a batch holds
        what arrived while the last one ran, and batches grow with the rate instead of with a
        sleep. It used to wait after every batch not full (``max_batch``), which is every batch
        whenever a shard keeps up with intake: up to ``idle_wait_s`` per batch with
        notifications waiting (issue 13, docs/notes/end-to-end.md).

        Idle, it looks at the ledger's head every ``look_s`` (``head``: ~0.04 ms of CPU, 0.2% of
        a core) and runs a batch as soon as intake has accepted anything, or after
        ``idle_wait_s`` anyway (the deadline sweep). It used to sleep the whole ``idle_wait_s``
        between empty batches (~1 ms each): intake's first commit after a pause, and its last
        of a burst, waited up to 0.2 s (0.1 on average) for a shard to notice it, in the
        latency of those flags and in the fill and drain of a burst (issue 13, eighth round).
        Failures are logged and retried after a pause (the position in the database says where
        to resume)."""
        while not stop.is_set():
            started = self.monotonic()
            try:
                stats = self.run_once()
            except Exception as exc:
                log.error(
                    "child projection batch failed; retrying after a pause: %s", error_line(exc),
                    exc_info=not database_outage(exc),
                )  # fmt: skip
                stop.wait(2.0)
                continue
            if on_batch is not None:
                on_batch(stats, self.monotonic() - started)
            if not stats.accepted:
                self._await_news(stop, idle_wait_s, look_s)

    def _await_news(self, stop: threading.Event, idle_wait_s: float, look_s: float) -> None:
        """Return once the ledger's head is past what the last batch read, ``stop`` is set or
        ``idle_wait_s`` has passed (``run``; real time, as ``stop.wait``'s)."""
        until = time.monotonic() + idle_wait_s
        while not stop.wait(min(look_s, max(0.0, until - time.monotonic()))):
            if time.monotonic() >= until or self.head() > self.reached:
                return

    def catch_up(self) -> ApplyStats:
        """Run batches until every notification accepted so far is projected (tests, the
        in-process pipeline)."""
        total = ApplyStats()
        while True:
            stats = self.run_once()
            total.add(stats)
            if stats.accepted < self.max_batch and self.lag() == 0:
                return total
