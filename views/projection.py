"""Rebuild children's view rows and flags from their events, a batch of children at a time.

The whole child is recomputed from the ledger each time one of its events is applied: it makes
the view a pure function of the ledger (a replay on another database produces identical rows),
which incremental updates with corrections and withdrawals would not guarantee. Only the rows
whose values differ from what is stored are written, so the database work per event does not
grow with the child's history.

Two steps, so that the child projection stage (``consumers.projection``, docs/stages.md) can
evaluate in a lock-free read and write in a short transaction, and the one-transaction projector
calls the same two: ``evaluate_children`` reads the events of every child a batch touches (and of
their households) in a few queries and runs the rules; ``write_children`` reads their stored view
rows and flags in a few queries and writes what changed with one executemany per table, through
SQLAlchemy Core (issue 13: per-child queries and one ORM object per row were most of the
projector's time, and nothing reads these rows back from the session).

The whole child is still the function of its whole history, but what a batch pays is closer to
what changed (docs/notes/child-projection.md): ``ChildHistories`` keeps the decoded events of
recently read children, so a batch reads and decodes only what was accepted since
(docs/notes/rule-evaluation.md, "Reading only what is new"), and the rows this process last
wrote for a child, trusted while the child's write stamp is still its own, so a batch compares
a new evaluation with them instead of reading them back; ``ViewFold`` adds new events to the
previous batch's view rows when that provably equals making them afresh.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, delete, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ledger.bounded import Bounded
from ledger.store.bulk import insert_rows, update_rows
from ledger.store.models import AcceptedEvent
from ledger.vocabulary import is_amendment
from policies.base import Policy
from policies.engine import Evaluation, Evaluator, Run, evaluate
from policies.household import linked_persons
from policies.view import ChildView, Event
from views.flags import ROW_WEIGHT, FlagChange, FlagSync, StoredFlag
from views.models import AgencyRow, ChildRow, PersonLinkRow, PersonRow
from views.queries import CHILD_EXCLUDED_TYPES, households_in
from views.summaries import event_refs

_STATUS_FIELDS = ("care_leaver", "substance_misuse", "mental_health", "age")
_PERSON_FACTS = ("lives_with_child", "parental_responsibility", *_STATUS_FIELDS)
_CHUNK = 500  # children per IN (...) query
# What a remembered Flag object weighs besides its payload text (the stored row's) and its
# rule's constant texts: the object, its instance dict, evidence tuple and detail, ~500 bytes
# measured (sys.getsizeof) for a flag naming three events
FLAG_WEIGHT = 600
EVIDENCE_WEIGHT = 400  # one event's evidence detail serialised (~250 characters) and its entry
_CHILDREN: Table = ChildRow.__table__  # type: ignore[assignment]
_PEOPLE: Table = PersonRow.__table__  # type: ignore[assignment]
_AGENCIES: Table = AgencyRow.__table__  # type: ignore[assignment]
_ACCEPTED: Table = AcceptedEvent.__table__  # type: ignore[assignment]
_LINKS: Table = PersonLinkRow.__table__  # type: ignore[assignment]


class ChildFailed(Exception):
    """Projecting ``child`` raised ``error`` (a fault in the rules or the view code, not in the
    database): the caller decides whose fault it is (the messages that touched the child, or
    nobody's, in a sweep). ``trigger``: the event that changed the child, "" for a sibling or a
    deadline.

    Its own message and ``described`` never carry the child's id, because both end up in logs,
    which the partnership promises never carry a child's or person's id (README, "Operating"):
    a log names the event that touched the child instead, which leads someone entitled to read
    the ledger to the child, and no one else."""

    def __init__(self, child: str, error: Exception, trigger: str = "") -> None:
        super().__init__(f"a child failed: {type(error).__name__}")
        self.child, self.error, self.trigger = child, error, trigger

    def described(self) -> str:
        """For a log line: what names the child without its id, and the error's class and
        first line (cut short: a database error's text can carry values), with the child's id
        masked (an error's text may quote it: a ``KeyError`` does)."""
        first = (str(self.error).splitlines() or [""])[0][:200]
        detail = f"{type(self.error).__name__}: {first}"
        if self.child:
            detail = detail.replace(self.child, "<child>")
        if self.trigger:
            return f"the child changed by event {self.trigger}: {detail}"
        return f"a child no event here named (re-evaluated for a sibling, a deadline or a replay): {detail}"


@dataclass(frozen=True)
class ChildEvaluation:
    """One child evaluated, ready to be written: computed from a read of the ledger, written in
    a (possibly later, shorter) write transaction by ``write_children``."""

    child: str
    trigger: str  # the event that caused it, "" for a sibling or a deadline
    view: ChildView
    evaluation: Evaluation


def evaluate_children(
    session: Session,
    triggers: Mapping[str, str],
    registered: Mapping[str, datetime],
    now: datetime,
    policies: Sequence[Policy],
    *,
    owns: Callable[[str], bool] = lambda _: True,
    evaluator: Evaluator | None = None,
    histories: ChildHistories | None = None,
    reraise: tuple[type[BaseException], ...] = (),
    recorded: Recorded | None = None,
) -> list[ChildEvaluation]:
    """Evaluate every touched child (``triggers``: child -> the event that changed it) and the
    children of their households, as of ``now``.

    A child's view carries its household (the events of children who may share a parent figure:
    issue 14, sibling rules), so a change to one child changes its siblings' views too: they are
    re-evaluated, one step out (their own households are read, not re-evaluated). ``owns``
    keeps only a shard's own children; the household is found for every touched child, so a
    shard re-evaluates its children whose sibling lives in another shard. Anything raised while
    one child is evaluated, except ``reraise`` (the database's own failures), is ``ChildFailed``.
    A long-lived ``evaluator`` (one per projecting process) re-runs only the rules whose inputs
    changed since it last saw the child, with ``evaluate``'s result; long-lived ``histories``
    (read inside its ``transaction()``) reads only the events accepted since a child was last read.
    ``recorded``: the events ``session``'s own transaction recorded, handed over instead of read
    back (``load_events``).
    """
    judge = evaluate if evaluator is None else evaluator.evaluate
    wanted = dict(triggers)
    for siblings in households_in(session, sorted(wanted)).values():
        for sibling in siblings:
            wanted.setdefault(sibling, "")
    mine = sorted(child for child in wanted if owns(child))
    households = households_in(session, mine)
    read = [*mine, *(other for child in mine for other in households[child])]
    events = load_events(session, read, histories, recorded)
    evaluations: list[ChildEvaluation] = []
    for child in mine:
        try:
            if not events[child]:
                continue
            others = {other: events[other] for other in sorted(households[child])}
            previous = None if evaluator is None else evaluator.last_view(child)
            view = ChildView.build(child, events[child], registered, others, previous)
            evaluations.append(ChildEvaluation(child, wanted[child], view, judge(view, now, policies)))
        except reraise:
            raise
        except Exception as error:
            raise ChildFailed(child, error, wanted[child]) from error
    return evaluations


def load_events(
    session: Session,
    children: Iterable[str],
    histories: ChildHistories | None = None,
    recorded: Recorded | None = None,
) -> dict[str, list[Event]]:
    """The accepted events of ``children`` as the rules see them (partnership bookkeeping left
    out), in ledger order, in one query per few hundred children. With ``histories``, a child
    it remembers is read and decoded only from where it was last read. With ``recorded`` (the
    events ``session``'s own transaction recorded), only positions below the first of those
    are read from the database, and the rest are ``recorded``'s, already decoded."""
    wanted = sorted(set(children))
    known = histories.known(wanted) if histories is not None else {}
    events = {child: list(known[child][1]) if child in known else [] for child in wanted}
    through = {child: known[child][0] if child in known else 0 for child in wanted}
    below = None if recorded is None else recorded.first
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        fresh = [child for child in chunk if child not in known]
        remembered = [child for child in chunk if child in known]
        queries = [_events_of(fresh)] if fresh else []
        if remembered:  # only what was accepted after the earliest of their last positions read
            after = min(through[child] for child in remembered)
            queries.append(_events_of(remembered).where(_ACCEPTED.c.position > after))
        if below is not None:
            queries = [query.where(_ACCEPTED.c.position < below) for query in queries]
        for query in queries:
            for subject, position, envelope in session.execute(query):
                if position > through[subject]:  # not decoded again if it is remembered
                    events[subject].append(Event.from_envelope(json.loads(envelope)))
                    through[subject] = position
    if recorded is not None:
        for child in wanted:
            for position, event in recorded.events.get(child, ()):
                if position > through[child]:
                    events[child].append(event)
                    through[child] = position
    if histories is not None:
        histories.stage({child: (through[child], events[child]) for child in wanted})
    return events


def _events_of(children: Sequence[str]) -> Select[tuple[str, int, str]]:
    return (
        select(_ACCEPTED.c.subject, _ACCEPTED.c.position, _ACCEPTED.c.envelope)
        .where(_ACCEPTED.c.subject.in_(children), _ACCEPTED.c.type.not_in(CHILD_EXCLUDED_TYPES))
        .order_by(_ACCEPTED.c.subject, _ACCEPTED.c.position)
    )


class Recorded:
    """The events one transaction recorded in the ledger, decoded, by child: what the
    one-process projector's intake hands its child side in the same transaction, so that the
    child side does not read back and decode what intake has just accepted (issue 13: ~15 us
    an event, a read of its stored text, ``json.loads`` and ``Event.from_envelope``; intake
    makes each ``Event`` once anyway, for the household index).

    Exact because a transaction that records holds the ledger's writer lock until it commits
    (docs/stages.md, "Tracking records and ordering"): every position it takes is above every
    position committed before, and no other transaction commits one until it ends, so the
    events it can see at or above its ``first`` position are exactly its own, and those below
    are exactly the ledger's before it. ``load_events`` reads the latter and takes the former
    from here. Each ``Event`` must be what decoding its stored envelope gives (the caller's
    duty: ``consumers.projector.applier.Batch``); a child stage in another process, a replay
    and a sweep that accepted nothing read everything from the ledger, as before."""

    def __init__(self) -> None:
        self.first: int | None = None  # the lowest position recorded; None: nothing yet
        self.events: dict[str, list[tuple[int, Event]]] = {}  # child -> (position, event), in order

    def add(self, recorded: Iterable[tuple[int, Event]]) -> None:
        """Events just recorded, with their positions, in position order (after every earlier
        ``add``: a transaction's positions only grow)."""
        for position, event in recorded:
            if self.first is None:
                self.first = position
            self.events.setdefault(event.subject, []).append((position, event))


@dataclass
class WrittenRows:
    """What one transaction wrote for a child: its view rows and every stored flag of it, as the
    database holds them after the write, under the write's ``stamp`` (``view_children.stamp``),
    and the runs of Flag objects the write was given (``FlagSync.synced``: a run or a flag given
    again as the same object is known unchanged). ``size``: what it counts against ``ChildHistories``' bound
    (characters, roughly bytes): the flags' weight (``FlagSync.weight``), ``FLAG_WEIGHT`` per
    Flag object kept, ``ROW_WEIGHT`` per view row, ``EVIDENCE_WEIGHT`` per evidence text and the
    fold's own size."""

    stamp: int
    people: dict[str, dict[str, Any]]
    agencies: dict[str, dict[str, Any]]
    flags: dict[str, StoredFlag]
    flag_weight: int
    synced: tuple[dict[str, Run], frozenset[str] | None] | None
    size: int
    view: ViewFold | None = None  # what the view rows were made from, to fold new events into
    evidence: dict[str, str] = field(default_factory=dict)  # FlagSync.sync's evidence_texts


class ChildHistories:
    """What this process knows of the children it most recently projected: the decoded events
    it read (so a live event reads and decodes only what was accepted since), and the view and
    flag rows it last wrote (so a batch compares a new evaluation with them instead of reading
    the rows back). Issue 13: reading and decoding a child's whole history was a third of a
    live event's cost at 500 prior events, and then reading its ~500 stored flags every batch
    the largest part of what was left.

    Events are exact because the ledger is append-only and positions are given in commit order
    (the recorder's table lock): a child's committed events up to position p never change, and
    its later ones are exactly those with a higher position. Rows are exact because every write
    of a child's rows sets a new random ``view_children.stamp`` (``ChildRows``): the rows written
    under a stamp are trusted only while the stored stamp is still that one, read with the
    ``view_children`` row the batch reads anyway. Another process that wrote the child since (a
    second default-layout projector, a shard moved, `quarantine readmit`) left another stamp,
    and the rows are read as if nothing were remembered. A remembered entry is taken out when it
    is used, so a batch that fails leaves nothing of it behind.

    So only what a committed transaction saw or wrote may be remembered: what ``load_events``
    reads and what ``ChildRows`` writes is staged, and kept by ``transaction()`` only if the
    block around the transaction (its commit included) ends without an exception (a rolled-back
    batch's events must not be remembered: SQLite may even give their positions to other
    events; nor its rows: they were never written). A read in a read-only transaction sees only
    committed events, so it may be kept whatever the caller then does with it.

    Bounded like ``policies.engine.Evaluator``, each memory by one ``Bounded`` map: at most
    ``children`` children and ``events`` events between them (a decoded event is ~1.5 kB:
    ~75 MB), and at most ``children`` children and ``rows`` characters of written rows between
    them (``WrittenRows.size``: flag payloads are most of it; ``ROW_WEIGHT`` per row and
    ``FLAG_WEIGHT`` per Flag object for the rest: 64 MB by default, ~50 children of 1,000 prior
    events), least recently used dropped first (a child not remembered is read in full);
    nothing grows with the ledger. One per projecting process,
    used by one thread at a time (as the ``Applier`` and the child stage are). Ledger rows are
    never changed or deleted in operation; a ledger tampered with underneath a running process
    is the auditor's to find, and a restart reads it afresh.
    """

    def __init__(self, children: int = 1024, events: int = 50_000, rows: int = 64 * 2**20) -> None:
        self._kept: Bounded[tuple[int, tuple[Event, ...]]] = Bounded(children, events, lambda e: len(e[1]))
        self._staged: dict[str, tuple[int, tuple[Event, ...]]] = {}
        self._written: Bounded[WrittenRows] = Bounded(children, rows, attrgetter("size"))
        self._staged_written: dict[str, WrittenRows] = {}
        self._depth = 0  # open transaction() blocks: staging outside one is never kept

    def known(self, children: Iterable[str]) -> dict[str, tuple[int, tuple[Event, ...]]]:
        """child -> (the highest position read, its events up to there), for those remembered
        (what this transaction already read first)."""
        found: dict[str, tuple[int, tuple[Event, ...]]] = {}
        for child in children:
            entry = self._staged.get(child) or self._kept.get(child)
            if entry is not None:
                found[child] = entry
        return found

    def stage(self, read: Mapping[str, tuple[int, Sequence[Event]]]) -> None:
        """What one read found: kept at the end of the enclosing ``transaction()``."""
        if self._depth:
            self._staged.update({child: (p, tuple(found)) for child, (p, found) in read.items()})

    def take_written(self, child: str, stamp: int) -> WrittenRows | None:
        """The rows this process wrote for ``child`` if the stored ``stamp`` is still the one it
        wrote, taken out (the caller's rows from now on); None: read them from the database."""
        entry = self._written.pop(child)
        return entry if entry is not None and entry.stamp == stamp else None

    def stage_written(self, child: str, rows: WrittenRows) -> None:
        """What one transaction wrote for ``child``: kept at the end of the enclosing
        ``transaction()``, if there is one."""
        if self._depth:
            self._staged_written[child] = rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Around a database transaction that reads through ``load_events`` or writes through
        ``write_children``: what it read and wrote is kept if the block (its commit included)
        completes, forgotten if it raises."""
        self._depth += 1
        try:
            yield
        except BaseException:
            self._staged.clear()
            self._staged_written.clear()
            raise
        finally:
            self._depth -= 1
        if not self._depth:
            self._keep()

    def _keep(self) -> None:
        for child, entry in self._staged.items():
            self._kept.put(child, entry)
        for child, rows in self._staged_written.items():
            self._written.put(child, rows)
        self._staged, self._staged_written = {}, {}


def write_children(
    session: Session,
    evaluations: Sequence[ChildEvaluation],
    now: datetime,
    rules: Sequence[str],
    *,
    reraise: tuple[type[BaseException], ...] = (),
    fresh: bool = False,
    histories: ChildHistories | None = None,
) -> list[FlagChange]:
    """Write each evaluated child's view rows and flags (only what changed, one statement per
    table and kind at the end); the flag changes written are returned (they are the gap-flags
    outbox). A child whose rows cannot be made is ``ChildFailed`` before anything is written.
    ``fresh``: the children have no rows yet and are written once (an audit replay): nothing is
    read back and no flag lifecycle is recorded (``FlagSync``). Long-lived ``histories`` (the
    write inside its ``transaction()``) remembers what was written, and a child it wrote last
    is compared with that memory instead of its rows read back."""
    rows = ChildRows(session, now, rules, fresh=fresh, histories=histories)
    rows.prepare(e.child for e in evaluations)
    changes: list[FlagChange] = []
    for done in evaluations:
        try:
            changes += rows.queue(done)
        except reraise:
            raise
        except Exception as error:
            raise ChildFailed(done.child, error, done.trigger) from error
    rows.write()
    return changes


def record_links(session: Session, envelopes: Iterable[Mapping[str, Any]], *, shared: bool = False) -> None:
    """Index the parent figures accepted events name (``PersonLinkRow``), in the caller's
    transaction: the one that accepts them. ``shared`` (PostgreSQL only): other transactions
    may be indexing the same links at the same time (`audit replay`'s parallel copy), so a link
    another one wrote first is skipped rather than failing the transaction (the rows go in
    sorted, so two such transactions wait for each other in one order, never in a cycle)."""
    events = (Event.from_envelope(e) for e in envelopes if e["type"] not in CHILD_EXCLUDED_TYPES)
    record_event_links(session, events, shared=shared)


def record_event_links(session: Session, events: Iterable[Event], *, shared: bool = False) -> None:
    """``record_links`` of events already decoded (children's events only: partnership
    bookkeeping names no parent figure)."""
    wanted: set[tuple[str, str]] = set()
    for event in events:
        wanted.update((person, event.subject) for person in linked_persons([event]))
    if not wanted:
        return
    children = sorted({child for _, child in wanted})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(children), 500):
        query = select(PersonLinkRow.person, PersonLinkRow.child).where(
            PersonLinkRow.child.in_(children[start : start + 500])
        )
        stored.update((person, child) for person, child in session.execute(query))
    rows = [{"person": p, "child": c} for p, c in sorted(wanted - stored)]
    if shared and rows:
        session.execute(postgresql.insert(_LINKS).on_conflict_do_nothing(), rows)
    else:
        insert_rows(session, _LINKS, rows)  # Core: households are looked up next, no flush needed


class ChildRows:
    """One transaction's view and flag writes: ``prepare`` the children (one read per table),
    ``queue`` each evaluation, then ``write`` once. A child's failure leaves nothing
    half-written in the database (writes wait for ``write``); the caller's transaction decides
    the rest.

    Every child written gets a new random ``stamp`` in its ``view_children`` row (one 63-bit
    draw: two writes never leave the same stamp, even across a restored backup or a child
    rebuilt from nothing, as a counter could). With ``histories``, the rows written are
    remembered under it, and a child whose stored stamp is the remembered one has only its
    ``view_children`` row read: its view rows and flags come from the memory. On PostgreSQL
    that row is read ``FOR UPDATE``: two transactions writing one child at once (a shard and
    `quarantine readmit` hold different locks) then run one after the other, and the second
    sees the first's stamp; on SQLite one writer at a time is the database's own rule."""

    def __init__(
        self,
        session: Session,
        now: datetime,
        rules: Sequence[str],
        *,
        fresh: bool = False,
        histories: ChildHistories | None = None,
    ) -> None:
        self.session, self.now, self.rules, self.fresh = session, now, rules, fresh
        self.histories = None if fresh else histories
        self.flags = FlagSync(session, fresh=fresh)
        self._queued: list[str] = []  # children queued since the last write
        self._rows: dict[str, dict[str, Any] | None] = {}  # child -> its view_children row
        self._people: dict[str, dict[str, dict[str, Any]]] = {}
        self._agencies: dict[str, dict[str, dict[str, Any]]] = {}
        self._writes: dict[str, list[dict[str, Any]]] = {}  # statement name -> parameter rows
        self._folds: dict[str, ViewFold] = {}  # child -> its view rows' fold, remembered or made
        self._evidence: dict[str, dict[str, str]] = {}  # child -> its evidence texts (FlagSync.sync)

    def prepare(self, children: Iterable[str]) -> None:
        """Read everything ``queue`` will compare against for these children: their view rows
        and flags."""
        wanted = sorted({c for c in children if c not in self._rows})
        for child in wanted:
            self._rows[child], self._people[child], self._agencies[child] = None, {}, {}
        if self.fresh:
            self.flags.load(wanted)
            return
        locking = self.session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(wanted), _CHUNK):
            query = select(_CHILDREN).where(_CHILDREN.c.child.in_(wanted[start : start + _CHUNK]))
            for row in self.session.execute(query.with_for_update() if locking else query):
                self._rows[row.child] = dict(row._mapping)
        unknown = []
        for child in wanted:
            stored = self._rows[child]
            kept = None
            if stored is not None and self.histories is not None:
                kept = self.histories.take_written(child, stored["stamp"])
            if kept is None:
                unknown.append(child)
            else:
                self._people[child], self._agencies[child] = kept.people, kept.agencies
                synced, spoken = kept.synced or (None, None)
                self.flags.remember(child, kept.flags, kept.flag_weight, synced, spoken)
                if kept.view is not None:
                    self._folds[child] = kept.view
                self._evidence[child] = kept.evidence
        self.flags.load(unknown)
        for start in range(0, len(unknown), _CHUNK):
            chunk = unknown[start : start + _CHUNK]
            for row in self.session.execute(select(_PEOPLE).where(_PEOPLE.c.child.in_(chunk))):
                self._people[row.child][row.person] = dict(row._mapping)
            for row in self.session.execute(select(_AGENCIES).where(_AGENCIES.c.child.in_(chunk))):
                self._agencies[row.child][row.agency] = dict(row._mapping)

    def queue(self, done: ChildEvaluation) -> list[FlagChange]:
        """Queue the view rows and flags of one evaluated child that changed; returns the flag
        changes."""
        self.prepare([done.child])
        self._queued.append(done.child)
        self._rebuild_rows(done.view, done.evaluation.next_due)
        detail = _EvidenceDetail(done.view)
        texts, trigger = self._evidence.setdefault(done.child, {}), done.trigger or None
        flags = done.evaluation  # its runs: FlagSync skips those it was given last time
        return self.flags.sync(done.child, flags, self.now, trigger, detail, self.rules, evidence_texts=texts)

    def write(self) -> None:
        """Everything queued since the last write: one statement per table and kind."""
        tables = {"children": _CHILDREN, "people": _PEOPLE, "agencies": _AGENCIES}
        for name, table in tables.items():
            keys = [c.name for c in table.primary_key.columns]
            insert_rows(self.session, table, self._writes.pop(f"insert {name}", []))
            if rows := self._writes.pop(f"delete {name}", []):
                self.session.execute(
                    delete(table).where(and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys))), rows
                )
            for rows in _by_columns(self._writes.pop(f"update {name}", []), keys).values():
                update_rows(self.session, table, keys, rows)  # SET: the rows' other columns
        self.flags.write()
        if self.histories is not None:
            for child in self._queued:
                flags, weight = self.flags.stored(child), self.flags.weight(child)
                fold = self._folds.get(child)
                synced = self.flags.synced(child)
                size = weight + ROW_WEIGHT * (len(self._people[child]) + len(self._agencies[child]) + 1)
                size += 0 if fold is None else fold.size()
                size += 0 if synced is None else FLAG_WEIGHT * sum(map(len, synced[0].values()))
                evidence = self._evidence.get(child, {})
                size += EVIDENCE_WEIGHT * len(evidence)
                row = self._rows[child]
                assert row is not None  # queue() inserted or updated it
                people, agencies = self._people[child], self._agencies[child]
                written = WrittenRows(
                    row["stamp"], people, agencies, flags, weight, synced, size, fold, evidence
                )
                self.histories.stage_written(child, written)
        self._queued = []

    def _queue(self, kind: str, table: str, values: dict[str, Any]) -> None:
        self._writes.setdefault(f"{kind} {table}", []).append(values)

    def _rebuild_rows(self, view: ChildView, next_due: datetime | None) -> None:
        child = view.child
        fold = ViewFold.of(view, self._folds.pop(child, None))
        self._folds[child] = fold
        facts = fold.facts
        people, child_practices, schools, dob = facts.people, facts.child_practices, facts.schools, facts.dob
        person_rows = {
            person_id: {
                "roles": _json_list(tuple(sorted(facts["roles"]))),
                "gp_practices": _json_list(tuple(facts["gp_practices"])),
                **{k: facts.get(k) for k in _PERSON_FACTS},
            }
            for person_id, facts in sorted(people.items())
        }
        self._write_changed("people", child, "person", self._people[child], person_rows)
        agency_rows = {
            agency: {"aware_since": since, "via": via} for agency, (since, via) in sorted(fold.aware.items())
        }
        self._write_changed("agencies", child, "agency", self._agencies[child], agency_rows)
        values = {
            "dob": dob,
            "event_count": len(view.events),
            "first_recorded": fold.first_recorded,
            "last_recorded": fold.last_recorded,
            "gp_practices": _json_list(tuple(child_practices)),
            "schools": _json_list(tuple(schools)),
            "next_due": next_due,
            "evaluated_at": self.now,
            "stamp": 1 + secrets.randbelow(2**63 - 1),
        }
        stored = self._rows[child]
        if stored is None:
            self._queue("insert", "children", {"child": child, **values})
            self._rows[child] = {"child": child, **values}
        else:
            changed = {k: v for k, v in values.items() if stored[k] != v}
            stored.update(changed)
            if changed:
                self._queue("update", "children", {"child": child, **changed})

    def _write_changed(
        self,
        table: str,
        child: str,
        key: str,
        stored: dict[str, dict[str, Any]],
        wanted: dict[str, dict[str, Any]],
    ) -> None:
        """Make ``child``'s rows of ``table`` equal ``wanted`` (key -> column values), writing only
        rows and columns that differ. A new event usually changes one row or none: deleting and
        re-inserting every row of the child on every event made the cost per event grow with
        the history."""
        for name in sorted(set(stored) - set(wanted)):
            del stored[name]
            self._queue("delete", table, {"key_child": child, f"key_{key}": name})
        for name, values in wanted.items():
            row = stored.get(name)
            if row is None:
                stored[name] = {"child": child, key: name, **values}
                self._queue("insert", table, dict(stored[name]))
                continue
            changed = {column: value for column, value in values.items() if row[column] != value}
            if changed:
                row.update(changed)
                self._queue("update", table, {"child": child, key: name, **changed})


def _by_columns(
    rows: Iterable[dict[str, Any]], keys: Sequence[str]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Update rows grouped by the columns they set (all but the ``keys``): one statement per group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(k for k in row if k not in keys)), []).append(row)
    return groups


class ViewFold:
    """What a child's view rows are made of (people, GP practices, schools, date of birth, when
    each agency became aware, first and last recorded), folded over its events, so that a live
    event is added to the previous fold instead of the rows being made again from the whole
    history (issue 13: ~1 CPU ms per event at 500 prior events, growing with the history).

    ``of`` folds only when the result is the same as a fold of the whole view, and starts afresh
    otherwise: the previous view's events must be the first of the new view's, in order (checked
    by the identity of its last event: ``ChildHistories`` hands back the same ``Event`` objects,
    and an event that sorts before it, reported late, shifts it), and no new event may amend
    another or be named by an earlier amendment (the facts read the effective events, with
    corrections folded in: an amendment changes an earlier event's facts, and one recorded
    before its original, however odd, changes the original when it arrives). Awareness reads the
    raw events in recorded order (a stable sort of the view order): it folds when no new event
    was recorded before the last one folded, and is made afresh otherwise.
    """

    def __init__(self, view: ChildView) -> None:
        self.facts = _Facts(view.child)
        for event in view.effective():
            self.facts.add(event)
        self.aware: dict[str, tuple[datetime, str]] = {}
        _aware_of(self.aware, sorted(view.events, key=_RECORDED))
        self.first_recorded = min(e.recordedtime for e in view.events)
        self.last_recorded = max(e.recordedtime for e in view.events)
        self.count, self.last = len(view.events), view.events[-1]
        self.amended = {str(e.data.get("original")) for e in view.events if is_amendment(e.type)}

    def size(self) -> int:
        """Roughly what this holds, in bytes, for ``ChildHistories``' bound."""
        return ROW_WEIGHT * (len(self.facts.people) + len(self.aware) + len(self.amended) + 1)

    @classmethod
    def of(cls, view: ChildView, previous: ViewFold | None) -> ViewFold:
        """The fold of ``view``: ``previous`` brought up to date when that is exact, else made anew.
        ``previous`` is changed in place (the caller's from now on)."""
        if previous is None or not 0 < previous.count <= len(view.events):
            return cls(view)
        if view.events[previous.count - 1] is not previous.last:
            return cls(view)
        added = view.events[previous.count :]
        if any(is_amendment(e.type) or e.id in previous.amended for e in added):
            return cls(view)
        for event in added:
            previous.facts.add(event)
        if all(e.recordedtime >= previous.last_recorded for e in added):  # ties: view order, as sorted()
            _aware_of(previous.aware, sorted(added, key=_RECORDED))
        else:
            previous.aware = {}
            _aware_of(previous.aware, sorted(view.events, key=_RECORDED))
        if added:
            previous.first_recorded = min(previous.first_recorded, *(e.recordedtime for e in added))
            previous.last_recorded = max(previous.last_recorded, *(e.recordedtime for e in added))
        previous.count, previous.last = len(view.events), view.events[-1]
        return previous


class _Facts:
    """People around the child, the child's GP practices and schools, and its date of birth,
    from its effective events in view order (``add`` one at a time)."""

    def __init__(self, child: str) -> None:
        self.child = child
        self.people: dict[str, dict[str, Any]] = {}
        self.child_practices: list[str] = []
        self.schools: list[str] = []
        self.dob: str | None = None

    def add(self, event: Event) -> None:
        people, data = self.people, event.data
        if event.type == "child.registered":
            self.dob = data.get("dob", self.dob)
            for role in ("mother", "father"):
                if data.get(role):
                    _roles(people, data[role]).add(role)
        elif event.type == "person.linked":
            person = _person(people, data["person"])
            person["roles"].add(data["role"])
            for attribute in ("lives_with_child", "parental_responsibility"):
                if attribute in data:
                    person[attribute] = data[attribute]
        elif event.type == "person.status":
            person = _person(people, data["person"])
            person.update({k: data[k] for k in _STATUS_FIELDS if k in data})
        elif event.type == "gp.registered":
            if data["person"] == self.child:
                _add(self.child_practices, data["practice"])
            else:
                _add(_person(people, data["person"])["gp_practices"], data["practice"])
        elif event.type == "school.enrolled":
            _add(self.schools, data["school"])
        elif event.type == "school.left" and data["school"] in self.schools:
            self.schools.remove(data["school"])  # the view shows the child's current schools
        elif event.type == "incident.reported":
            for party in data.get("parties", ()):
                _roles(people, party["person"]).add(f"party:{party['role']}")


class _EvidenceDetail(Mapping[str, Mapping[str, Any]]):
    """Event id -> what a flag change's message says of that evidence, made only for the events
    a change names: building it for every event of the child on every evaluation grew with the
    child's history while most evaluations change no flag. Each is made once: one incident is
    the evidence of several flags (a replayed child's ~150 changes named ~300 evidence events,
    ~50 distinct)."""

    def __init__(self, view: ChildView) -> None:
        self._view = view
        self._made: dict[str, Mapping[str, Any]] = {}

    def __getitem__(self, event_id: str) -> Mapping[str, Any]:
        if event_id not in self._made:
            self._made[event_id] = _evidence(self._view.event(event_id))  # KeyError: not in the view
        return self._made[event_id]

    def __iter__(self) -> Iterator[str]:
        return (e.id for e in self._view.events)

    def __len__(self) -> int:
        return len(self._view.events)


def _evidence(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat(),
        "recordedtime": event.recordedtime.isoformat(),
        # the agency references (incident_ref...) that tell one flag of a rule from another in
        # an email, which never carries the event's data itself
        "refs": event_refs(event.data),
    }


def _aware_of(aware: dict[str, tuple[datetime, str]], events: Iterable[Event]) -> None:
    """DESIGN/policies issue: an agency is aware of a child once it was the source of any
    event about the child or the ``to`` of a notification about the child (``events`` in
    recorded order; the first one counts)."""
    for event in events:
        if event.type.startswith(("flag.", "access.")):
            continue  # partnership bookkeeping, not involvement with the child
        aware.setdefault(event.source, (event.recordedtime, "source"))
        if event.type == "notification.sent":
            aware.setdefault(event.data["to"], (event.recordedtime, "notified"))


_RECORDED = attrgetter("recordedtime")


@lru_cache(maxsize=4096)
def _json_list(values: tuple[str, ...]) -> str:
    """A view row's JSON list (roles, practices, schools), made once per distinct list: a few
    short lists recur for every person of every child, and ``json.dumps`` per person per batch
    was a quarter of the view rows' time in a replay. Bounded; a miss only costs the dump."""
    return json.dumps(list(values))


def _person(people: dict[str, dict[str, Any]], person: str) -> dict[str, Any]:
    return people.setdefault(person, {"roles": set(), "gp_practices": []})


def _roles(people: dict[str, dict[str, Any]], person: str) -> set[str]:
    roles: set[str] = _person(people, person)["roles"]
    return roles


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)
