"""Apply a batch of raw messages to the ledger, the child views and the flags, atomically.

Or, with ``children=False``, to the ledger only: the intake stage, when the child projection
runs as its own stage (``consumers.projection``, docs/stages.md).

Kafka-free on purpose: the runner feeds it what it polled, a replay feeds it what it read, a
test feeds it bytes. Signature verification (the CPU cost) runs before the write transaction so
several projector processes verify in parallel; acceptance itself is serialised by the ledger's
writer lock so that chain decisions always see each other. Within the transaction a ``Batch``
holds what the ledger knows about the batch's chains, loaded in a few queries and kept current
in memory, and accepted events are written in one call: per-event queries made the projector
twenty times slower than signature verification.

No message may stop the projector (issue 9): the runner retries a failed batch forever, so one
message that raises would halt every agency's events. Two layers make sure none does.
First, everything input-driven is checked before it can reach SQL or arithmetic: the nesting
depth before parsing, exact JSON integers within 2**53 - 1 and bounded strings in the schema
layer (``ledger.verification``, ``ledger.validation``). Second, anything that still raises while
one message is handled is isolated to that message: verification runs outside the transaction
and a failure there becomes an ``internal-error`` refusal at once; a failure inside the write
transaction aborts the whole transaction and the batch is applied again from the start with that
message quarantined as ``internal-error`` (exception class and first line only, no traceback).
Why not a SAVEPOINT per message: the ``Batch`` keeps the chains' state in memory and writes
accepted events in one call at the end, so a savepoint would roll back the database but not that
state, and a savepoint per message costs a round trip each. Redoing the batch costs nothing until
something fails, and every decision in the redo is made again from a clean transaction (on
PostgreSQL a failed statement poisons the rest of its transaction anyway).
Infrastructure failures (database unreachable, locked, full) are not the message's fault: they
propagate, the batch is retried as a whole, nothing is quarantined for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exc as sql_errors
from sqlalchemy import select
from sqlalchemy.orm import Session

from consumers.projector.verifier import (
    MACHINE_ERRORS,
    Checked,
    Forms,
    Pending,
    Verifier,
    check,
    check_isolated,
    internal_error,
)
from ledger.canonical import event_digest
from ledger.keyregistry import KeyRecord, KeyRegistry, RootKey
from ledger.store.ledger import KEY_EVENT_TYPES, Acceptance, Ledger
from ledger.store.models import AcceptedEvent, EquivocationRow, QuarantineEntry, SequenceHoleRow
from ledger.validation import MAX_EXACT_INTEGER
from ledger.verification import (
    DUPLICATE,
    SELF_CLEARING,
    ChainFacts,
    Reason,
    Rejection,
    check_chain,
    key_refusal,
    parse_message,
)
from policies.base import Policy
from policies.engine import Evaluator
from policies.registry import ALL_POLICIES
from policies.view import Event
from views.flags import FlagChange, sync_flags
from views.projection import (
    ChildFailed,
    ChildHistories,
    Recorded,
    evaluate_children,
    record_event_links,
    write_children,
)
from views.queries import CHILD_EXCLUDED_TYPES, due_children, integrity_flags_as_of

log = logging.getLogger(__name__)
LOST_EVENT_GRACE = timedelta(hours=1)
__all__ = ["INFRASTRUCTURE_ERRORS", "Applier", "ApplyStats", "Message", "internal_error"]
# Events about the partnership's own bookkeeping, not about the child's life.
NOT_CHILD_EVENTS = frozenset({*KEY_EVENT_TYPES, "ledger.tree-head", "access.recorded"})
INTEGRITY_RULES = ("lost-event", "equivocation")
# Failures of the database itself (or of this machine), never of one message: retry the batch.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    sql_errors.OperationalError,
    sql_errors.InterfaceError,
    sql_errors.DisconnectionError,
    sql_errors.TimeoutError,
    sql_errors.PendingRollbackError,
    *MACHINE_ERRORS,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Message:
    raw: bytes
    origin: str = ""  # "topic/partition/offset", for people reading the quarantine
    # When the partnership received it (Kafka record time, bounded by the projector's clock);
    # None for events the ledger already accepted once (replays): see ledger.verification.
    received: datetime | None = None


@dataclass
class ApplyStats:
    """What a batch did. Every message given to ``apply`` is counted exactly once, as accepted
    directly, a duplicate (of an accepted or a held message), held or quarantined:
    ``len(messages) == accepted - readmitted + duplicates + held + quarantined``. Held messages
    released later count in ``accepted`` and ``readmitted``; one found already in the ledger
    is resolved but counted nowhere (it was counted when it arrived)."""

    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    held: int = 0
    readmitted: int = 0
    children: set[str] = field(default_factory=set)
    # (status, reason) of each held or quarantined message, and (rule, change) of each flag
    # change: what an operator's metrics and logs count (no child or person ids in either).
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    flag_changes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, other: ApplyStats) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.held += other.held
        self.readmitted += other.readmitted
        self.children |= other.children
        self.refused.update(other.refused)
        self.flag_changes.update(other.flag_changes)

    def count_changes(self, changes: Iterable[FlagChange]) -> None:
        self.flag_changes.update((c.rule, c.change) for c in changes)


class Batch:
    """One transaction's view of the ledger's chains, kept current as events are accepted."""

    def __init__(
        self,
        ledger: Ledger,
        session: Session,
        registry: KeyRegistry,
        now: datetime,
        events: Iterable[Mapping[str, Any]],
    ) -> None:
        self.ledger, self.session, self.registry, self.now = ledger, session, registry, now
        self.stats = ApplyStats()
        self.triggers: dict[str, str] = {}  # child -> the event that changed it
        self.accepted: list[Acceptance] = []
        self._as_sent: list[bool] = []  # per accepted event: its message was its canonical form
        self.recorded = Recorded()  # what ``flush`` recorded, for the child side (``_finish``)
        self.unblocked: list[Mapping[str, Any]] = []  # accepted events whose waiters to retry
        self.held: list[QuarantineEntry] = []
        self._waiting: dict[tuple[str, Any], list[QuarantineEntry]] = {}
        self._held_by_id: dict[str | None, list[QuarantineEntry]] = {}
        self.current: int | None = None  # index of the message being handled, for blame
        self.touched_by: dict[str, set[int]] = {}  # child -> messages that changed it
        for entry in session.scalars(
            select(QuarantineEntry).where(QuarantineEntry.status == "held").order_by(QuarantineEntry.id)
        ):
            self.hold(entry)
        # Everything this batch may ask about, in a few queries: its events and the held ones
        # they may release.
        chain = [(e["id"], e["source"], e["sequence"]) for e in events]
        chain += [(h.event_id, h.source, h.sequence) for h in self.held if h.source and h.sequence]
        self._ids_looked_up = {event_id for event_id, _, _ in chain if event_id}
        self.by_id = ledger.digests_by_id(session, self._ids_looked_up)
        # Each source's sequences, in one pass (a pass over the batch per source was ~1% of a
        # replay's projector process).
        sequences: dict[str, list[int]] = {}
        for _, source, sequence in chain:
            sequences.setdefault(source, []).append(sequence)
        # A source with nothing accepted yet is 0, not missing: a miss was a query per event.
        self.highest = {source: 0 for source in sequences} | ledger.highest_sequences(session, sequences)
        self.at: dict[tuple[str, int], str] = {}
        # Chain places accepted over a hole, among those loaded (a late predecessor must match
        # its successor's prevhash): read with the chain window, never by scanning the ledger.
        self.over_hole: set[tuple[str, int]] = set()
        self._loaded: set[tuple[str, int]] = set()
        for source, numbers in sequences.items():
            self._load(source, (n + d for n in numbers for d in (-1, 0, 1)))
        self.open_holes = list(
            session.scalars(select(SequenceHoleRow).where(SequenceHoleRow.filled_at.is_(None)))
        )

    def hold(self, entry: QuarantineEntry) -> None:
        """Index a held message by what would release it: its chain position, or its key."""
        self.held.append(entry)
        key = (
            ("seq", (entry.source, entry.sequence))
            if entry.reason == Reason.SEQUENCE_GAP
            else ("kid", entry.kid)
        )
        self._waiting.setdefault(key, []).append(entry)
        self._held_by_id.setdefault(entry.event_id, []).append(entry)

    def held_copy(self, event_id: str | None, raw: bytes) -> QuarantineEntry | None:
        """A held entry with exactly these bytes: a redelivery, not a second message."""
        candidates = self._held_by_id.get(event_id, ())
        return next((e for e in candidates if e.status == "held" and e.raw == raw), None)

    def waiting_for(self, event: Mapping[str, Any]) -> list[QuarantineEntry]:
        """Held messages an accepted event may release: its successor in the chain, and events
        signed by the key it registers."""
        if not self._waiting:  # no message held (asked for every accepted event)
            return []
        found = list(self._waiting.get(("seq", (event["source"], event["sequence"] + 1)), ()))
        if event["type"] == "agency.key.registered":
            found += self._waiting.get(("kid", event["data"]["kid"]), ())
        return [e for e in found if e.status == "held"]

    def _load(self, source: str, positions: Iterable[int]) -> None:
        """Digests (and which were accepted over a hole) at these chain positions, in a few range
        queries. Only the positions asked about are remembered, never a whole range: sequences 1
        and 2**53 - 1 in one batch made a set of 2**53 positions (the projector hung), and a hole
        may be as wide."""
        wanted = sorted({n for n in positions if n >= 1 and (source, n) not in self._loaded})
        for low, high in _spans(wanted):
            found = self.ledger.chain_digests(self.session, source, low, high)
            self.at.update({(source, n): digest for n, (digest, _) in found.items()})
            self.over_hole.update((source, n) for n, (_, over_hole) in found.items() if over_hole)
        self._loaded.update((source, n) for n in wanted)

    def facts(self, event: Mapping[str, Any]) -> ChainFacts:
        source, sequence = event["source"], event["sequence"]
        if event["id"] not in self._ids_looked_up:
            self._ids_looked_up.add(event["id"])
            self.by_id.update(self.ledger.digests_by_id(self.session, [event["id"]]))
        if source not in self.highest:
            self.highest[source] = self.ledger.highest_sequences(self.session, [source]).get(source, 0)
        loaded = self._loaded  # asked per event: test the places before building anything
        if (
            (source, sequence) not in loaded
            or (source, sequence + 1) not in loaded
            or ((source, sequence - 1) not in loaded)
        ):
            self._load(source, (sequence - 1, sequence, sequence + 1))
        return ChainFacts(
            same_id_digest=self.by_id.get(event["id"]),
            same_sequence_digest=self.at.get((source, sequence)),
            predecessor_digest=self.at.get((source, sequence - 1)),
            highest_sequence=self.highest.get(source, 0),
        )

    def accept(self, acceptance: Acceptance, raw: bytes | None = None) -> str:
        """``raw``: the message's bytes (None: unknown), to tell whether the event as parsed is
        already what decoding its stored form gives (``flush``)."""
        event, over_hole, digest = acceptance.event, acceptance.over_hole, acceptance.digest
        source, sequence = event["source"], event["sequence"]
        self.accepted.append(acceptance)
        self._as_sent.append(raw == acceptance.canonical)
        self.by_id[event["id"]] = digest
        self.at[(source, sequence)] = digest
        self.highest[source] = max(self.highest.get(source, 0), sequence)
        if over_hole:
            self.over_hole.add((source, sequence))
        self.stats.accepted += 1
        return digest

    def flush(self) -> None:
        """Write everything accepted so far (before anything reads the ledger tables), with the
        household index of what it names (read by every projection stage: views.projection),
        and keep the children's events, decoded, with their positions for the child side of
        this transaction (``views.projection.Recorded``).

        Each child's event is decoded once, here, as the child side would decode its stored
        envelope (``json.loads`` of the canonical form): the parsed message is that already when
        the message was sent in its canonical form (the bytes are equal, so both parses read the
        same text: the same members in the same order, the same values), which the partnership's
        publishers and gateway do; any other message (another member order, spacing, escapes) is
        decoded from its canonical form, so a member order or a number's spelling in the message
        can never reach a view."""
        positions = self.ledger.record(self.session, self.accepted, self.now)
        events = [
            (position, Event.from_envelope(a.event if as_sent else json.loads(a.canonical)))
            for a, as_sent, position in zip(self.accepted, self._as_sent, positions, strict=True)
            if a.event["type"] not in CHILD_EXCLUDED_TYPES
        ]
        record_event_links(self.session, (event for _, event in events))
        self.recorded.add(events)
        self.accepted, self._as_sent = [], []


@dataclass
class Prepared:
    """A batch whose pre-verification has started (``Applier.prepare``)."""

    messages: Sequence[Message]
    keys: KeyRegistry  # what its messages are checked with
    early: dict[int, Checked]  # the batch's own key events, checked already
    rest: list[int]  # indices of the other messages, in the order ``pending`` returns them
    pending: Pending


class Applier:
    def __init__(
        self,
        ledger: Ledger,
        root: RootKey,
        *,
        policies: Sequence[Policy] = ALL_POLICIES,
        clock: Callable[[], datetime] = utc_now,
        hole_grace: timedelta = LOST_EVENT_GRACE,
        children: bool = True,
        verifier: Verifier | None = None,
    ) -> None:
        """``children=False`` makes this the intake stage only (docs/stages.md): accept into the
        ledger, keep the integrity flags, and leave every child's view, flags and deadlines to
        the child projection (``consumers.projection``), which follows the ledger by itself.
        The default projects the children in the same transaction as their events.
        ``verifier``: where messages are pre-verified (default: in this process; a
        ``Verifier(workers)`` spreads it over processes, ``consumers.projector.verifier``)."""
        self.ledger = ledger
        self.root = root
        self.policies = policies
        self.clock = clock
        self.hole_grace = hole_grace
        self.children = children
        self.verifier = verifier or Verifier(0)
        # Re-runs only the rules a batch's events can change (policies.engine.Evaluator): the
        # flags are evaluate()'s, byte for byte, so replay still equals live.
        self.evaluator = Evaluator()
        # Each child's events as last read, so a batch decodes only what it accepted (exact:
        # kept only once the batch's transaction has committed, see ChildHistories).
        self.histories = ChildHistories()

    # -- entry points ---------------------------------------------------------------------
    def apply(self, messages: Sequence[Message], track: Mapping[str, int] | None = None) -> ApplyStats:
        """Apply a batch; ``track`` maps tracking names to the positions the batch reaches.

        Raises only for infrastructure failures (see the module docstring): a message whose
        handling raises anything else is quarantined as ``internal-error`` and the batch redone.
        """
        return self.apply_prepared(self.prepare(messages), track)

    def prepare(self, messages: Sequence[Message], *, after: Prepared | None = None) -> Prepared:
        """Start pre-verifying a batch (``apply_prepared`` applies it): the verification workers
        begin at once, so that this process can apply the previous batch meanwhile
        (``consumers.projector.runner``), and ``apply_prepared`` checks here what they have not
        reached by then (``Verifier``). The keys it is checked with may then lack what the
        previous batch changes: ``apply_prepared`` checks again every message whose key the
        ledger holds differently when its turn comes.

        ``after``: the batch to be applied just before this one, not applied yet. Its keys (the
        ledger's with its own key events folded in) are then the base instead of the ledger's
        alone: a replay's key registrations are in its first batch, and the second, verified
        while the first was applied, was refused whole as unknown-key by the workers and
        checked again in this process (issue 13: half of a 10,000-event replay verified twice,
        the second time on the serial path). Exactness is ``apply_prepared``'s check above."""
        if after is not None:
            registry = after.keys
        else:
            with self.ledger.read() as session:
                registry = self.ledger.key_registry(session, self.root)
        keys, early = self._with_batch_keys(registry, messages)
        rest = [i for i in range(len(messages)) if i not in early]
        items = [(messages[i].raw, messages[i].received) for i in rest]
        return Prepared(messages, keys, early, rest, self.verifier.start(items, keys))

    def apply_prepared(self, prepared: Prepared, track: Mapping[str, int] | None = None) -> ApplyStats:
        """``apply``, for a batch ``prepare`` started."""
        verdicts = dict(zip(prepared.rest, prepared.pending.result(), strict=True))
        early = prepared.early
        checked = sorted(
            ((m, *(early[i] if i in early else verdicts[i])) for i, m in enumerate(prepared.messages)),
            key=lambda triple: _chain_order(triple[1]),
        )
        checked_with = {
            kid: prepared.keys.get(kid)
            for kid in {pre["kid"] for _, pre, _ in checked if not isinstance(pre, Rejection)}
        }
        blamed: dict[int, Rejection] = {}
        while True:
            try:
                with self.histories.transaction():  # around the commit: a failed batch is forgotten
                    return self._apply_checked(checked, blamed, track or {}, checked_with)
            except _MessageFailed as failure:
                fresh = {i: failure.rejection for i in failure.indices if i not in blamed}
                if not fresh:  # nothing left to set aside: a fault of no message in this batch
                    raise failure.error from failure
                blamed.update(fresh)

    def _apply_checked(
        self,
        checked: Sequence[tuple[Message, dict[str, Any] | Rejection, Forms | None]],
        blamed: Mapping[int, Rejection],
        track: Mapping[str, int],
        checked_with: Mapping[str, KeyRecord | None],
    ) -> ApplyStats:
        """``checked_with``: the key each passed message was pre-checked with, which the ledger
        may not hold: this batch's own key events made some (``_with_batch_keys``), and a batch
        prepared while the previous one was applied missed that one's (``prepare``). A message
        stands only if the ledger holds the same key when its turn comes, else it is checked
        again in full. Each message
        comes with its forms when it passed (``Forms``; None otherwise)."""
        with self.ledger.writer() as session:
            registry = self.ledger.key_registry(session, self.root)
            events = [
                pre
                for i, (_, pre, _) in enumerate(checked)
                if not isinstance(pre, Rejection) and i not in blamed
            ]
            # An unknown-key refusal passed the schema check, so its chain attributes are sound;
            # it is checked again below once its key may be registered: load its chain facts with
            # the rest (else one query each, for every event of an agency registered in this batch).
            events += [
                parsed
                for i, (message, pre, _) in enumerate(checked)
                if isinstance(pre, Rejection) and pre.reason == Reason.UNKNOWN_KEY and i not in blamed
                if isinstance(parsed := parse_message(message.raw), dict)
            ]
            batch = Batch(self.ledger, session, registry, self.clock(), events)
            for index, (message, pre, forms) in enumerate(checked):
                batch.current = index
                if index in blamed:
                    blame = blamed[index]
                    self._quarantine(batch, message.raw, message.origin, blame, received=message.received)
                    continue
                try:
                    if isinstance(pre, Rejection) and pre.reason == Reason.UNKNOWN_KEY:
                        pre, forms = self._recheck_key(message.raw, registry, pre, message.received)
                    elif not isinstance(pre, Rejection) and _changed(
                        registry.get(pre["kid"]), checked_with[pre["kid"]]
                    ):
                        pre, forms = check(message.raw, registry, message.received)
                    if isinstance(pre, Rejection):
                        self._quarantine(batch, message.raw, message.origin, pre, received=message.received)
                    else:
                        self._admit(
                            batch, pre, message.raw, message.origin,
                            received=message.received, forms=forms,
                        )  # fmt: skip
                    self._release_waiting(batch)
                except INFRASTRUCTURE_ERRORS:
                    raise
                except Exception as error:
                    raise _MessageFailed([index], error) from error
            batch.current = None
            self._finish(batch)
            for name, offset in track.items():
                self.ledger.track(session, name, offset)
        return batch.stats

    def sweep(self) -> ApplyStats:
        """Work that falls due with time rather than with messages: held events whose hole
        outlived the grace period are accepted over it, and children with a passed deadline
        are evaluated again (absence flags are raised by nobody acting).

        Isolated like ``apply``: a held entry whose retry raises is quarantined as
        ``internal-error``, a child whose re-evaluation raises is left for this sweep (and
        logged), and the sweep is redone without them."""
        blamed: dict[int, Rejection] = {}
        skipped: set[str] = set()
        while True:
            try:
                return self._sweep(blamed, skipped)
            except _EntryFailed as failure:
                if failure.entry_id in blamed:
                    raise failure.error from failure
                blamed[failure.entry_id] = internal_error(failure.error)
            except ChildFailed as failure:
                if failure.child in skipped:
                    raise failure.error from failure
                log.error("re-evaluating failed for %s", failure.described())
                skipped.add(failure.child)

    def _sweep(self, blamed: Mapping[int, Rejection], skipped: set[str]) -> ApplyStats:
        with self.ledger.writer() as session:
            batch = Batch(
                self.ledger, session, self.ledger.key_registry(session, self.root), self.clock(), []
            )
            overdue = sorted(
                (
                    e
                    for e in batch.held
                    if e.reason == Reason.SEQUENCE_GAP and e.received_at <= batch.now - self.hole_grace
                ),
                key=lambda e: (e.source or "", e.sequence or 0),
            )
            for entry in overdue:
                if entry.status != "held":
                    continue
                if entry.id in blamed:
                    self._quarantine(batch, entry.raw, entry.origin, blamed[entry.id], None, entry)
                    continue
                try:
                    self._retry(batch, entry, over_hole=True)
                    self._release_waiting(batch)
                except INFRASTRUCTURE_ERRORS:
                    raise
                except Exception as error:
                    raise _EntryFailed(entry.id, error) from error
            if self.children:
                for child in due_children(session, batch.now):
                    if child not in skipped:
                        batch.triggers.setdefault(child, "")
            self._finish(batch)
        return batch.stats

    def readmit(self, entry_id: int) -> QuarantineEntry:
        """Re-verify one quarantined message (after its cause was fixed); accepted or not, the
        entry says what happened."""
        with self.ledger.writer() as session:
            entry = session.get(QuarantineEntry, entry_id)
            if entry is None:
                raise KeyError(f"no quarantine entry {entry_id}")
            if entry.status == "readmitted":
                raise ValueError(f"quarantine entry {entry_id} was already readmitted")
            batch = Batch(
                self.ledger, session, self.ledger.key_registry(session, self.root), self.clock(), []
            )
            self._retry(batch, entry, over_hole=False)
            self._release_waiting(batch)
            self._finish(batch)
            session.flush()
            session.expunge(entry)
            return entry

    # -- one message ----------------------------------------------------------------------
    @classmethod
    def _with_batch_keys(
        cls, registry: KeyRegistry, messages: Sequence[Message]
    ) -> tuple[KeyRegistry, dict[int, Checked]]:
        """``registry`` with the batch's own key events folded in, those that pass their checks
        against the root, and those events' checks by message index (they depend on the root
        alone, so they are not made twice). An agency's registration usually travels with its
        first events (a replay: every agency's), and pre-checking those against the ledger's
        registry alone refused them all as unknown-key, to be checked again in full inside the
        transaction or when released: a second schema check each. The fold is provisional: an
        event pre-checked with a key it made is checked again unless the ledger holds that same
        key when the event's turn comes (``_apply_checked``)."""
        found: dict[int, Checked] = {}
        for index, message in enumerate(messages):
            if b"agency.key." not in message.raw:
                continue  # most messages: no parse
            checked = check_isolated(message.raw, registry, message.received)
            if isinstance(checked[0], dict) and checked[0].get("type") in KEY_EVENT_TYPES:
                found[index] = checked
        if not found:
            return registry, found
        keys = registry.copy()
        events = [event for event, _ in found.values() if isinstance(event, dict)]
        for event in sorted(events, key=_chain_order):
            try:
                keys.apply(event)
            except ValueError:  # a kid that is not its key's fingerprint: refused in the batch
                continue
        return keys, found

    @staticmethod
    def _recheck_held(entry: QuarantineEntry, registry: KeyRegistry) -> dict[str, Any] | Rejection:
        """A message held only for its place in the chain already passed schema and signature
        checks; releasing it re-checks only that its key is still usable (a revocation may have
        arrived), judged at its recorded time and when it was first received. Everything else
        is verified in full."""
        received = _aware(entry.received_at)
        if entry.status != "held" or entry.reason != Reason.SEQUENCE_GAP:
            return check(entry.raw, registry, received)[0]
        parsed = parse_message(entry.raw)
        if isinstance(parsed, Rejection):
            return parsed
        record = registry.get(parsed["kid"])
        if parsed["source"] == registry.root.partnership or (
            record is not None and key_refusal(record, parsed, received) is None
        ):
            return parsed
        return check(entry.raw, registry, received)[0]

    def _admit(
        self,
        batch: Batch,
        event: dict[str, Any],
        raw: bytes,
        origin: str,
        *,
        over_hole: bool = False,
        entry: QuarantineEntry | None = None,
        received: datetime | None = None,
        forms: Forms | None = None,
    ) -> Rejection | str | None:
        """Chain checks, then accept. Returns what ``check_chain`` decided; a refusal updates
        ``entry`` (a message being re-verified) instead of quarantining it a second time.
        ``forms``: the event's canonical form, stored envelope and stored times if verification
        made them (else the canonical form is made here, the rest by ``Ledger.record``)."""
        if forms is None:
            acceptance = Acceptance.of(event, over_hole=over_hole)
        else:
            canonical, envelope, times = forms
            acceptance = Acceptance(event, canonical, over_hole, envelope, times)
        outcome = check_chain(event, batch.facts(event), acceptance.digest)
        if outcome == DUPLICATE:
            if entry is None:  # a held message found in the ledger was counted on arrival
                batch.stats.duplicates += 1
            return outcome
        if isinstance(outcome, Rejection) and not (over_hole and outcome.reason == Reason.SEQUENCE_GAP):
            self._quarantine(batch, raw, origin, outcome, event, entry, received)
            return outcome
        mismatch = self._successor_mismatch(batch, event)
        if mismatch is not None:
            self._quarantine(batch, raw, origin, mismatch, event, entry, received)
            return mismatch
        batch.accept(acceptance, raw)
        self._fill_holes(batch, event)
        if event["type"] in KEY_EVENT_TYPES:
            batch.registry.apply(event)
        if event["type"] not in NOT_CHILD_EVENTS:
            batch.triggers[event["subject"]] = event["id"]
            if batch.current is not None:
                batch.touched_by.setdefault(event["subject"], set()).add(batch.current)
        batch.unblocked.append(event)
        return None

    @staticmethod
    def _successor_mismatch(batch: Batch, event: Mapping[str, Any]) -> Rejection | None:
        """An event accepted over a hole names its predecessor's hash; a late predecessor must
        match it, or the chain was forked. (``batch.facts(event)`` loaded the successor's place.)"""
        successor = (event["source"], event["sequence"] + 1)
        if successor not in batch.over_hole:
            return None
        batch.flush()
        envelope = batch.session.scalar(
            select(AcceptedEvent.envelope).where(
                AcceptedEvent.source == successor[0], AcceptedEvent.sequence == successor[1]
            )
        )
        if envelope is not None and json.loads(envelope)["prevhash"] != event_digest(event):
            return Rejection(
                Reason.CHAIN_BROKEN,
                f"accepted {successor[0]} sequence {successor[1]} names a different predecessor hash",
            )
        return None

    def _release_waiting(self, batch: Batch) -> None:
        """Retry held messages that accepted events may unblock (a successor, or events signed
        by a key just registered), iteratively: a long held chain releases link by link."""
        while batch.unblocked:
            self._release_one(batch, batch.unblocked.pop(0))

    def _release_one(self, batch: Batch, event: Mapping[str, Any]) -> None:
        # A stable sort on the sequence alone: held entries are listed in the order they were
        # held, and an entry held in this batch has no id until flushed (sorting on the id
        # compared None with int and halted the projector).
        waiting = batch.waiting_for(event)
        if not waiting:  # nearly every event: nothing held waits for it
            return
        waiting.sort(key=lambda e: e.sequence or 0)
        checked = self._check_released(batch, waiting)
        for entry in waiting:
            verdict = checked.get(id(entry))
            if verdict is not None and not (
                entry.status == "held"
                and entry.reason == Reason.UNKNOWN_KEY
                and batch.registry.changes == verdict[2]
            ):
                verdict = None  # a key event came in between: checked again with what it changed
            self._retry(batch, entry, over_hole=False, checked=verdict[:2] if verdict else None)

    def _check_released(
        self, batch: Batch, waiting: Sequence[QuarantineEntry]
    ) -> dict[int, tuple[dict[str, Any] | Rejection, Forms | None, int]]:
        """Messages held for a key its registration just released are checked in full again
        (schema, signature): for many at once (an agency's first events, a replay that reads
        the registrations topic last: half of a 10,000-event replay) the verification workers
        share it, and the forms (``Forms``) come with the verdicts. By id of the entry, with the
        registry's change count the verdicts hold for."""
        full = [e for e in waiting if e.reason == Reason.UNKNOWN_KEY]
        if not full or not self.verifier.workers:
            return {}
        items = [(e.raw, _aware(e.received_at)) for e in full]
        verdicts = self.verifier.check_all(items, batch.registry)
        changes = batch.registry.changes
        return {id(e): (*v, changes) for e, v in zip(full, verdicts, strict=True)}

    @staticmethod
    def _recheck_key(
        raw: bytes, registry: KeyRegistry, rejection: Rejection, received: datetime | None
    ) -> Checked:
        """An unknown-key refusal is worth checking again only if that key is now registered
        (e.g. by an earlier message of the same batch)."""
        parsed = parse_message(raw)
        if isinstance(parsed, Rejection) or registry.get(str(parsed.get("kid"))) is None:
            return rejection, None
        return check(raw, registry, received)

    def _retry(
        self, batch: Batch, entry: QuarantineEntry, *, over_hole: bool, checked: Checked | None = None
    ) -> None:
        """``checked``: the entry's verdict, if ``_check_released`` reached it already."""
        pre, forms = checked if checked is not None else (self._recheck_held(entry, batch.registry), None)
        if isinstance(pre, Rejection):
            self._quarantine(batch, entry.raw, entry.origin, pre, None, entry)
            return
        entry.status = "readmitting"  # keeps a recursive release from picking it up again
        outcome = self._admit(
            batch, pre, entry.raw, entry.origin, over_hole=over_hole, entry=entry, forms=forms
        )
        if outcome is None or outcome == DUPLICATE:
            entry.status, entry.resolved_at = "readmitted", batch.now
            entry.resolution = (
                "already in the ledger"
                if outcome == DUPLICATE
                else "accepted over a sequence hole after the grace period"
                if over_hole
                else "accepted on re-verification"
            )
            batch.stats.readmitted += outcome is None

    def _quarantine(
        self,
        batch: Batch,
        raw: bytes,
        origin: str,
        rejection: Rejection,
        event: Mapping[str, Any] | None = None,
        entry: QuarantineEntry | None = None,
        received: datetime | None = None,
    ) -> None:
        """``received``: when the partnership received the message (the key check of a held
        message is judged at that time when it is released), default the batch's time."""
        status = "held" if rejection.reason in SELF_CLEARING else "quarantined"
        if entry is not None:  # re-verified and still refused: one entry per message
            reindex = status == "held" and entry.reason != rejection.reason
            entry.reason, entry.detail, entry.status = rejection.reason, rejection.detail, status
            if reindex:  # e.g. its key arrived, and now it waits for its predecessor instead
                batch.hold(entry)
            return
        identity = _identity(raw) if event is None else _fields(event)
        if status == "held" and batch.held_copy(identity["event_id"], raw) is not None:
            batch.stats.duplicates += 1  # a redelivery of a message already waiting
            return
        entry = QuarantineEntry(
            received_at=received or batch.now,
            reason=rejection.reason,
            detail=rejection.detail,
            status=status,
            raw=raw,
            origin=origin,
            # A chain hole is announced by the lost-event flag if it lasts, not per held message.
            published=rejection.reason == Reason.SEQUENCE_GAP,
            **identity,
        )
        batch.session.add(entry)
        batch.stats.refused[(status, str(rejection.reason))] += 1
        if status == "held":
            batch.hold(entry)
            batch.stats.held += 1
        else:
            batch.stats.quarantined += 1
        if event is None:
            return
        if rejection.reason == Reason.EQUIVOCATION:
            batch.flush()
            accepted = batch.session.scalar(
                select(AcceptedEvent.event_id).where(
                    AcceptedEvent.source == event["source"], AcceptedEvent.sequence == event["sequence"]
                )
            )
            batch.session.add(
                EquivocationRow(
                    source=event["source"],
                    sequence=event["sequence"],
                    accepted_event=accepted or "",
                    conflicting_event=str(event["id"]),
                    detected_at=batch.now,
                )
            )
        elif rejection.reason == Reason.SEQUENCE_GAP:
            self._notice_hole(batch, event)

    # -- holes ----------------------------------------------------------------------------
    @staticmethod
    def _notice_hole(batch: Batch, event: Mapping[str, Any]) -> None:
        source, sequence = event["source"], event["sequence"]
        if any(h.source == source and h.first_missing < sequence for h in batch.open_holes):
            return  # noticed earlier; a later arrival does not restart the hole's clock
        hole = SequenceHoleRow(
            source=source,
            first_missing=batch.highest.get(source, 0) + 1,
            last_missing=sequence - 1,
            noticed_at=batch.now,
            later_event=str(event["id"]),
        )
        batch.session.add(hole)
        batch.open_holes.append(hole)

    @staticmethod
    def _fill_holes(batch: Batch, event: Mapping[str, Any]) -> None:
        source = event["source"]
        for hole in [h for h in batch.open_holes if h.source == source]:
            if not hole.first_missing <= event["sequence"] <= hole.last_missing:
                continue
            batch.flush()  # counted in the database: a hole may span up to 2**53 positions
            present = batch.ledger.chain_digests(batch.session, source, hole.first_missing, hole.last_missing)
            if len(present) == hole.last_missing - hole.first_missing + 1:
                hole.filled_at, hole.filled_by = batch.now, str(event["id"])
                batch.open_holes.remove(hole)

    # -- views and flags ------------------------------------------------------------------
    def _finish(self, batch: Batch) -> None:
        """Record what was accepted, then (unless the child projection runs as its own stage)
        evaluate every touched child and its household and write their views and flags."""
        batch.flush()
        if self.children:
            try:
                evaluations = evaluate_children(
                    batch.session,
                    batch.triggers,
                    batch.registry.registered_agencies(),
                    batch.now,
                    self.policies,
                    evaluator=self.evaluator,
                    histories=self.histories,
                    reraise=INFRASTRUCTURE_ERRORS,
                    recorded=batch.recorded,
                )
                changes = write_children(
                    batch.session, evaluations, batch.now, [p.id for p in self.policies],
                    reraise=INFRASTRUCTURE_ERRORS, histories=self.histories,
                )  # fmt: skip
            except ChildFailed as failure:
                if not batch.touched_by.get(failure.child):
                    raise
                raise _MessageFailed(sorted(batch.touched_by[failure.child]), failure.error) from failure
            batch.stats.count_changes(changes)
            batch.stats.children.update(e.child for e in evaluations)
        self._evaluate_integrity(batch)

    @staticmethod
    def _evaluate_integrity(batch: Batch) -> None:
        batch.session.flush()  # holes and equivocations noticed in this batch
        flags = integrity_flags_as_of(batch.session, batch.now, changed_at=batch.now)
        if flags:
            changes = sync_flags(
                batch.session, None, flags, batch.now, None, {}, rules=INTEGRITY_RULES, partial=True
            )
            batch.stats.count_changes(changes)


class _MessageFailed(Exception):
    """Handling these messages raised ``error``: redo the batch with them set aside."""

    def __init__(self, indices: Sequence[int], error: Exception) -> None:
        super().__init__(f"messages {list(indices)} failed: {type(error).__name__}")
        self.indices, self.error = list(indices), error
        self.rejection = internal_error(error)


class _EntryFailed(Exception):
    """Retrying this held entry raised ``error``: redo the sweep with it set aside."""

    def __init__(self, entry_id: int, error: Exception) -> None:
        super().__init__(f"quarantine entry {entry_id} failed: {type(error).__name__}")
        self.entry_id, self.error = entry_id, error


def _spans(positions: Sequence[int], gap: int = 1000) -> list[tuple[int, int]]:
    """Sorted positions as (low, high) ranges, split where they are more than ``gap`` apart, so
    one range query per cluster fetches no more than the chain holds near what was asked."""
    spans: list[tuple[int, int]] = []
    for n in positions:
        if spans and n - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], n)
        else:
            spans.append((n, n))
    return spans


def _chain_order(checked: dict[str, Any] | Rejection) -> tuple[int, str, int]:
    """Apply a batch in chain order, key registrations first. On the intake topic an agency's
    chain arrives in order already (one partition); the sort still puts the partnership's key
    events, on their own partition, before the events they sign, and orders chains that span
    the first layout's family topics while those are drained (docs/envelope.md)."""
    if isinstance(checked, Rejection):
        return (2, "", 0)
    first = 0 if checked["type"] in KEY_EVENT_TYPES else 1
    return (first, checked["source"], checked["sequence"])


def _changed(now: KeyRecord | None, then: KeyRecord | None) -> bool:
    """Whether the ledger holds a key differently from the one a message was checked with. The
    same record object is the same key (registries share their immutable records): that answer
    needs no comparison of every field, public key included, for every message."""
    return now is not then and now != then


def _aware(value: datetime) -> datetime:
    """Stored times are UTC; some backends return them without their zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _fields(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(event.get("id"))[:64] if event.get("id") is not None else None,
        "source": _text(event.get("source"), 200),
        "sequence": _sequence(event.get("sequence")),
        "subject": _text(event.get("subject"), 128),
        "type": _text(event.get("type"), 64),
        "kid": _text(event.get("kid"), 64),
    }


def _identity(raw: bytes) -> dict[str, Any]:
    """Whatever identifying attributes a refused message has, for listing and re-verification
    (a message that is not JSON has none: its sha256 stands in for an id)."""
    parsed = parse_message(raw)
    if isinstance(parsed, Rejection):
        return {"event_id": "sha256:" + hashlib.sha256(raw).hexdigest()[:57]}
    return _fields(parsed)


def _sequence(value: Any) -> int | None:
    """A refused message's sequence, if it is one the columns can hold (it may be anything)."""
    exact = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_EXACT_INTEGER
    return value if exact else None


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None
