"""Rebuild the per-child views and flags as they stood at a past time, into another database.

Two phases (issue 13: re-running the projector on every event made 1,000,000 events take over
15 minutes, and an as-of replay decoded the whole ledger whatever its prefix):

1. **Copy.** The accepted events recorded by T (key events whatever their recorded time, as
   ``flags_as_of`` reads the whole key registry: which agencies exist is not part of the
   story) go into the empty target in ledger position order, with the household index intake
   writes beside them (``record_links``), in pages of ``PAGE``. The selection is made by the
   database (``recordedtime <= T``), so the events after the prefix are never decoded.
   **Signatures are not checked again**: every row was verified on its way into the ledger,
   and `audit verify` re-checks them from the root key alone; a replay trusts the ledger as
   `audit prove` does. (An event's recorded time is its producer's, not its arrival's, so a
   late-delivered event recorded by T may sit anywhere in the ledger: the database filters the
   whole index, in C, while Python only sees the prefix's rows.) The target is empty and this
   is its only writer, so the pages are bulk-loaded (``Ledger.load``: COPY on PostgreSQL, at
   positions 1, 2, 3... as ``record`` would have given them; per-row INSERTs were two thirds
   of the copy's CPU).
2. **Children.** Every child is evaluated once, as of T, from all its copied events and its
   household, with the projector's own two steps (``evaluate_children`` then
   ``write_children``, views.projection): re-using them is what makes "replay as of now equals
   the live views" a meaningful determinism check. Children are split across processes by the
   child stage's ``Shard`` (one shard per core), each shard in groups of ``GROUP`` children, so
   memory is bounded by a group, never by the ledger. Each child is written once into an
   empty database (``write_children(fresh=True)``): nothing is read back, and no flag
   lifecycle (``flag_changes``) is written, since one evaluation at T has none to record
   (views.flags.FlagSync; the history of a flag is the live database's).

Evaluating each child once (rather than once per page of events, as the projector's batches
did) is exact for the views and the flags as of T: both are a pure function of the events
recorded by T and of T. What a replay does not reproduce is history the live projector lived
through and no evaluation at T yields: a flag raised at some earlier evaluation and then
resolved by a later event exists live (status resolved) and not in the replay; the replay as
batches did not reproduce it either, except by accident of where its pages ended. Integrity
flags (lost events, equivocation) come from what intake noticed on the wire, which the ledger
does not hold, so a replay has none (as before).

Known limit (issue 13, found on the 1,000,000-event bench): into SQLite with two shards, one
shard is nearly always inside a read transaction (evaluating) while the other writes, so the
WAL is never checkpointed back to its start and grows with the whole replay (that run filled
the disk at 91 %). So into SQLite a replay runs one shard unless asked for more (``workers``),
into PostgreSQL one per core; letting the shards take turns around a checkpoint is the fix left.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, distinct, func, or_, select

from consumers.auditor.checks import RootArgs, root_args
from consumers.projection.shard import Shard
from consumers.projector.applier import INFRASTRUCTURE_ERRORS, NOT_CHILD_EVENTS
from ledger.keyregistry import RootKey
from ledger.store.ledger import KEY_EVENT_TYPES, Acceptance, Ledger
from ledger.store.models import AcceptedEvent
from policies.registry import ALL_POLICIES
from views.projection import ChildEvaluation, ChildFailed, evaluate_children, record_links, write_children

log = logging.getLogger(__name__)
PAGE = 5000  # events per read of the source and per write transaction of the copy
# Ledger positions per copy task: the copy's processes take spans in turn (enough spans for
# both cores to stay busy to the end, few enough that each task's start-up is negligible).
SPAN = 50_000
# Children per evaluation (one read) and per write transaction. Small enough that a group's
# write (on the 1M bench ~150 flags a child, each with its change and concern rows) is short:
# on SQLite the shards' writes take turns, and a shard waiting longer than the busy timeout
# (60 s) for another's 500-child write failed on a loaded host; a group's memory stays small.
GROUP = 100


@dataclass(frozen=True)
class ReplayResult:
    events: int  # events copied (recorded by T, and every key event)
    children: int  # children evaluated and written
    failed: int  # children whose evaluation raised (logged; left without views)


def recorded_by(
    ledger: Ledger, as_of: datetime, page: int = PAGE, *, after: int = 0, through: int | None = None
) -> Iterator[tuple[list[int], list[Acceptance]]]:
    """Pages of accepted events recorded by ``as_of`` (key events always), in position order,
    with their positions, from the index's canonical copy (the bytes that were signed, as the
    views read them), at positions after ``after`` and up to ``through``. Each page is read in
    its own transaction, closed before it is yielded: the eventsourcing extension keeps one
    transaction per thread, so a caller writing another database in between must not overlap
    this one."""
    accepted = AcceptedEvent
    wanted = or_(accepted.recordedtime <= as_of, accepted.type.in_(KEY_EVENT_TYPES))
    if through is not None:
        wanted = and_(wanted, accepted.position <= through)
    while True:
        with ledger.read() as session:
            rows = session.execute(
                select(accepted.position, accepted.envelope, accepted.over_hole)
                .where(accepted.position > after, wanted)
                .order_by(accepted.position)
                .limit(page)
            ).all()
        if not rows:
            return
        yield (
            [position for position, _, _ in rows],
            [Acceptance(json.loads(text), text.encode("utf-8"), over_hole) for _, text, over_hole in rows],
        )
        after = rows[-1].position


def replay(
    ledger: Ledger,
    root: RootKey,
    as_of: datetime,
    into_url: str,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
) -> ReplayResult:
    """Copy the events recorded by ``as_of`` into the empty ``into_url`` and evaluate every
    child as of then, in ``workers`` processes (default: one per core into PostgreSQL, one into
    SQLite, see the module's known limit; 1 runs in this process)."""
    target = Ledger(into_url)
    if target.count():
        # Not the URL: it may carry the database's password, and the message reaches the output
        # and its logs (the command names the target with the password masked).
        raise ValueError("the target database already holds a ledger; replay into an empty database")
    count = max(1, workers or ((os.cpu_count() or 1) if target.is_postgres else 1))
    copied = _copy(ledger, target, as_of, count, progress)
    key = root_args(root)
    if count == 1:
        children, failed = project_shard(into_url, key, as_of, Shard())
    else:
        # spawn, not fork: this process holds open database connections a child must not share
        with ProcessPoolExecutor(count, mp_context=get_context("spawn")) as pool:
            shards = [Shard(i, count) for i in range(1, count + 1)]
            done = list(pool.map(project_shard, [into_url] * count, [key] * count, [as_of] * count, shards))
        children, failed = sum(d[0] for d in done), sum(d[1] for d in done)
    return ReplayResult(copied, children, failed)


def _copy(
    ledger: Ledger, target: Ledger, as_of: datetime, count: int, progress: Callable[[int], None] | None
) -> int:
    """Phase 1: the events recorded by ``as_of`` into ``target``, at their positions in the
    source, a ``SPAN`` of positions at a time; into PostgreSQL in ``count`` processes (each span
    in its own transactions: the spans are disjoint, and the household links two spans share
    are written once, see ``record_links``), into SQLite here (one writer at a time anyway)."""
    with ledger.read() as session:
        last = session.scalar(select(func.max(AcceptedEvent.position))) or 0
    spans = [(start, min(start + SPAN, last)) for start in range(0, last, SPAN)]
    copied = 0
    if count == 1 or not target.is_postgres:
        for after, through in spans:
            copied += _copy_span(ledger, target, as_of, after, through, shared=False)
            if progress is not None:
                progress(copied)
    else:
        with ProcessPoolExecutor(count, mp_context=get_context("spawn")) as pool:
            n = len(spans)
            for done in pool.map(
                copy_span, [ledger.url] * n, [target.url] * n, [as_of] * n, *zip(*spans, strict=True)
            ):
                copied += done
                if progress is not None:
                    progress(copied)
    with target.session() as session:
        target.end_load(session)
    return copied


def copy_span(source_url: str, into_url: str, as_of: datetime, after: int, through: int) -> int:
    """Worker: copy the events at positions ``after < p <= through`` (``_copy``)."""
    return _copy_span(Ledger(source_url), Ledger(into_url), as_of, after, through, shared=True)


def _copy_span(
    ledger: Ledger, target: Ledger, as_of: datetime, after: int, through: int, *, shared: bool
) -> int:
    copied = 0
    for positions, page in recorded_by(ledger, as_of, after=after, through=through):
        with target.session() as session:
            target.load(session, page, as_of, positions)
            record_links(session, (a.event for a in page), shared=shared)
        copied += len(page)
    return copied


def project_shard(into_url: str, root: RootArgs, as_of: datetime, shard: Shard) -> tuple[int, int]:
    """Evaluate and write the children ``shard`` owns, as of ``as_of``, a group at a time;
    returns (children written, children whose evaluation raised). Runs in a worker process:
    the root key travels as bytes (``cryptography`` keys do not pickle)."""
    target = Ledger(into_url)
    key = RootKey(root[0], Ed25519PublicKey.from_public_bytes(root[1]))
    rules = [p.id for p in ALL_POLICIES]
    with target.read() as session:
        registered = target.key_registry(session, key).registered_agencies()
    written = failed = 0
    for group in shard_children(target, shard):
        evaluations, skipped = _evaluate(target, group, registered, as_of)
        with target.writer() as session:
            write_children(session, evaluations, as_of, rules, reraise=INFRASTRUCTURE_ERRORS, fresh=True)
        written += len(evaluations)
        failed += skipped
    return written, failed


def shard_children(ledger: Ledger, shard: Shard, size: int = GROUP) -> Iterator[list[str]]:
    """The children ``shard`` owns (subjects of child events, as the projector's triggers
    are), ``size`` at a time, read in pages by child id so no list grows with the ledger."""
    subject = AcceptedEvent.subject
    after, group = "", []
    while True:
        with ledger.read() as session:
            page = list(
                session.scalars(
                    select(distinct(subject))
                    .where(subject > after, AcceptedEvent.type.not_in(NOT_CHILD_EVENTS))
                    .order_by(subject)
                    .limit(size)
                )
            )
        for child in page:
            if shard.owns(child):
                group.append(child)
                if len(group) == size:
                    yield group
                    group = []
        if len(page) < size:
            break
        after = page[-1]
    if group:
        yield group


def _evaluate(
    ledger: Ledger, group: Sequence[str], registered: Mapping[str, datetime], as_of: datetime
) -> tuple[list[ChildEvaluation], int]:
    """The group's evaluations; a child whose evaluation raises (a fault in the rules, not in
    an event: the ledger accepted it) is logged and left out, as the child stage does."""
    skipped: set[str] = set()
    while True:
        wanted = set(group) - skipped
        with ledger.read() as session:
            try:
                # owns: only this group; its households are read for the views, and evaluated
                # in their own group, so no child is evaluated twice
                evaluations = evaluate_children(
                    session,
                    dict.fromkeys(sorted(wanted), ""),
                    registered,
                    as_of,
                    ALL_POLICIES,
                    owns=wanted.__contains__,
                    reraise=INFRASTRUCTURE_ERRORS,
                )
                return evaluations, len(skipped)
            except ChildFailed as failure:
                if failure.child in skipped:
                    raise failure.error from failure
                log.error("replaying failed for %s", failure.described())
                skipped.add(failure.child)
