"""Policies -> flags, as of a time: the one place flag status is decided.

Deterministic: the same events and the same ``as_of`` give the same flags in the same order,
whatever order the events arrived in (flags are sorted; findings depend only on event times).
"""

from __future__ import annotations

import json
import threading
import uuid
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from hashlib import sha1
from itertools import chain
from json.encoder import encode_basestring_ascii as _string
from operator import attrgetter, itemgetter
from typing import Any, TypeGuard, cast

from ledger.bounded import Bounded
from ledger.identifiers import uuid_text
from ledger.timeutil import format_time, utc
from policies import calendar
from policies.base import Finding, Fold, FoldingPolicy, Policy, RuleDescription, Severity, instant
from policies.facts import recorded_key
from policies.view import ChildView, Event, reading

FLAG_NAMESPACE = uuid.UUID("6f1f8f4e-5d7a-4c1e-9a8e-2b1f0d0c5a11")


def flag_order(flag: Flag) -> tuple[int, str, str]:
    """Flags are listed by (due, rule, id). ``due`` as whole microseconds since the epoch: the
    same order as comparing the datetimes, but comparing two datetimes in different zones (UTC
    recorded times, London deadlines) asks each for its UTC offset on every comparison, and
    sorting a long history's flags that way was a quarter of an evaluation."""
    return (instant(flag.due), flag.rule, flag.id)


@lru_cache(maxsize=1 << 16)
def flag_id(rule: str, child: str | None, key: str) -> str:
    """Stable across replays and processes: acknowledgements and emails refer to it.
    ``uuid.uuid5(FLAG_NAMESPACE, "rule|child|key")`` (``name_uuid``). Cached: a child is
    re-evaluated on each of its events and raises the same flags again."""
    return name_uuid(f"{rule}|{child or ''}|{key}")


def name_uuid(name: str) -> str:
    """``str(uuid.uuid5(FLAG_NAMESPACE, name))``, written out: the same SHA-1, version and
    variant bits, without building a ``UUID`` (a replay makes every flag and its first change
    once: ``uuid5`` was a tenth of a short history's evaluation, and as much again of its flag
    changes' ids; tests/policies/test_engine.py checks they agree)."""
    return uuid_text(sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16], 5)


_NAMESPACE_BYTES = FLAG_NAMESPACE.bytes


@dataclass(frozen=True)
class Flag:
    id: str
    rule: str
    version: int
    child: str | None
    severity: Severity
    title: str
    due: datetime
    evidence: tuple[str, ...]
    concerns: tuple[str, ...]
    source: str
    explanation: str
    action: str
    detail: str
    status: str  # open | resolved | dismissed
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    dismissed_by: str | None = None
    dismissed_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "version": self.version,
            "child": self.child,
            "severity": str(self.severity),
            "title": self.title,
            "status": self.status,
            "due": format_time(utc(self.due)),
            "evidence": list(self.evidence),
            "concerns": list(self.concerns),
            "source": self.source,
            "explanation": self.explanation,
            "action": self.action,
            "detail": self.detail,
            "acknowledged_by": self.acknowledged_by,
            "resolved_by": self.resolved_by,
            "resolved_at": format_time(utc(self.resolved_at)) if self.resolved_at else None,
            "dismissed_by": self.dismissed_by,
            "dismissed_reason": self.dismissed_reason,
        }

    @cached_property
    def payload_text(self) -> str:
        """``json.dumps(self.to_json())``: the flags table's payload, made once per flag object.

        ``Evaluator`` hands back the same ``Flag`` objects for the rules whose inputs did not
        change, so the flag sync compares one string per flag instead of serialising every flag
        of the child on every event (issue 13: ~30% of a live event's CPU at 500 prior events).
        A frozen dataclass may hold it: ``cached_property`` writes the instance dict directly.
        Made alone (not with the sorted text ``texts`` also makes): a flag compared with its
        stored row and found equal, or rewritten without a lifecycle change, announces nothing
        (issue 13, tenth round)."""
        return self._texts(ordered=False)[0]

    def texts(self) -> tuple[str, str]:
        """``json.dumps(self.to_json())`` (``payload_text``, kept) and ``json.dumps(self.to_json(),
        sort_keys=True)`` (what a flag change's message says of the flag), byte for byte, made
        from parts (issue 13, ninth round): a replay stores and announces every flag it raises
        (~1.5 per event), and the two dumps of its ~1.1 kB payload were a tenth of the child
        side, ~18 of the 20 us a flag's texts cost; most of it the rule's own long texts
        (title, explanation, action), the same for every flag the rule raises and escaped
        again each time. Those are escaped once per rule into two templates (one per key
        order, ``_templates``) and only the flag's own values are escaped per flag; a value
        that is not a plain string or None (which no rule's finding makes) takes ``json.dumps``
        itself. tests/policies/test_engine.py compares both texts with ``json.dumps`` over
        flags of every rule, acknowledged, resolved, dismissed and with awkward strings."""
        return self._texts(ordered=True)

    def _texts(self, *, ordered: bool) -> tuple[str, str]:
        """``texts``; the second is "" unless ``ordered``."""
        values = [self.id, self.child, self.status, self.detail, self.acknowledged_by, self.resolved_by,
                  self.dismissed_by, self.dismissed_reason]  # fmt: skip
        if not all(v is None or type(v) is str for v in values) or not _plain(self.evidence, self.concerns):
            payload = self.to_json()
            stored, sorted_text = json.dumps(payload), json.dumps(payload, sort_keys=True) if ordered else ""
        else:
            id_, child, status, detail, acknowledged_by, resolved_by, dismissed_by, reason = [
                "null" if v is None else _string(v) for v in values
            ]
            due = _time_text(self.due)
            resolved_at = "null" if self.resolved_at is None else _time_text(self.resolved_at)
            evidence = "[" + ", ".join(map(_string, self.evidence)) + "]"
            concerns = "[" + ", ".join(map(_string, self.concerns)) + "]"
            stored_template, sorted_template = _templates(
                self.rule, self.version, self.severity, self.title, self.source, self.explanation, self.action
            )
            # the flag's own values in each template's order (_PAYLOAD_KEYS, and sorted)
            stored = stored_template % (id_, child, status, due, evidence, concerns, detail, acknowledged_by,
                                        resolved_by, resolved_at, dismissed_by, reason)  # fmt: skip
            sorted_text = ""
            if ordered:
                sorted_values = (acknowledged_by, child, concerns, detail, dismissed_by, reason, due,
                                 evidence, id_, resolved_at, resolved_by, status)  # fmt: skip
                sorted_text = sorted_template % sorted_values
        self.__dict__.setdefault("payload_text", stored)  # what cached_property would store
        return stored, sorted_text


# A flag's stored JSON keys, in ``Flag.to_json``'s order (``Flag.texts``, ``_templates``).
_PAYLOAD_KEYS = ("id", "rule", "version", "child", "severity", "title", "status", "due", "evidence",
                 "concerns", "source", "explanation", "action", "detail", "acknowledged_by",
                 "resolved_by", "resolved_at", "dismissed_by", "dismissed_reason")  # fmt: skip


@lru_cache(maxsize=4096)
def _time_text(value: datetime) -> str:
    """A flag's time as its JSON writes it (UTC, RFC 3339). Cached by value: a rule's deadlines
    fall at the end of a working day, so a batch's flags share a few dues (an equal instant in
    another zone is the same UTC text)."""
    return _string(format_time(utc(value)))


def _plain(*lists: tuple[Any, ...]) -> bool:
    """Every item of these tuples is a plain string (what ``_string`` writes as ``json.dumps`` does)."""
    return all(type(item) is str for items in lists for item in items)


@lru_cache(maxsize=1024)
def _templates(
    rule: str, version: int, severity: str, title: str, source: str, explanation: str, action: str
) -> tuple[str, str]:
    """A rule's two ``%`` templates of its flags' JSON (keys in ``to_json``'s order, and sorted):
    its own values written in, ``%s`` where each flag's values go. Cached by the rule's texts (a
    rule's are the same string objects on every flag: hashed once, compared by identity)."""
    fixed = {"rule": rule, "version": version, "severity": str(severity), "title": title,
             "source": source, "explanation": explanation, "action": action}  # fmt: skip

    def template(keys: Iterable[str]) -> str:
        parts = (
            f"{_string(key)}: " + (json.dumps(fixed[key]).replace("%", "%%") if key in fixed else "%s")
            for key in keys
        )
        return "{" + ", ".join(parts) + "}"

    return template(_PAYLOAD_KEYS), template(sorted(_PAYLOAD_KEYS))


Ordered = tuple[tuple[int, str, str], Flag]  # a flag with its flag_order
Run = tuple[Ordered, ...]  # one rule's flags raised by as_of, in flag order
_ORDER, _FLAG = itemgetter(0), itemgetter(1)  # an Ordered pair's parts


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The flags raised by ``as_of`` (due <= as_of, whatever their status) and the earliest
    pending deadline after it (when to look again).

    Kept as ``runs``: rule id -> that rule's flags in flag order, for rules that raised any
    (``Evaluator`` hands back the very same run object for a rule whose flags did not change
    since the child's previous evaluation). ``flags`` merges them, once, when someone asks.
    Issue 13: merging and sorting every flag of the child on every evaluation, and then
    comparing each with the last evaluation's in the flag sync, was O(the child's flags) per
    live event (~1,000 flags at 1,000 prior events) while a new event changes a few rules'
    flags; the sync (``views.flags.FlagSync``) compares runs by identity instead, and reads
    ``flags`` only for a child it does not remember."""

    runs: Mapping[str, Run]
    next_due: datetime | None  # earliest pending deadline after as_of: when to look again

    @classmethod
    def of(cls, flags: Iterable[Flag], next_due: datetime | None) -> Evaluation:
        """An evaluation of these flags (any order) as one run: for flags not made by
        ``Evaluator`` (``evaluate``, the integrity flags, a caller's list)."""
        ordered = sorted(((flag_order(flag), flag) for flag in flags), key=_ORDER)
        return cls({"": tuple(ordered)}, next_due)

    @cached_property
    def flags(self) -> tuple[Flag, ...]:
        """Every flag raised by ``as_of``, in flag order (due, rule, id)."""
        runs = list(self.runs.values())
        if len(runs) == 1:
            return tuple(map(_FLAG, runs[0]))
        # Each run is in order already: the sort merges them, in C.
        merged = list(chain.from_iterable(runs))
        merged.sort(key=_ORDER)
        return tuple(map(_FLAG, merged))

    @property
    def open(self) -> tuple[Flag, ...]:
        return tuple(f for f in self.flags if f.is_open)

    def __eq__(self, other: object) -> bool:
        """Equal when they raise the same flags in the same order and look again at the same
        time, however the flags are grouped into runs."""
        if not isinstance(other, Evaluation):
            return NotImplemented
        return self.flags == other.flags and self.next_due == other.next_due

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable in effect


def evaluate(view: ChildView, as_of: datetime, policies: Sequence[Policy]) -> Evaluation:
    known = view.known_at(as_of)
    lifecycle = _lifecycle(known)
    flags: list[Flag] = []
    pending: list[datetime] = []
    for policy in policies:
        for finding in policy.findings(known, as_of):
            if finding.due > as_of:
                pending.append(finding.due)
                continue
            flags.append(make_flag(policy, view.child, finding, lifecycle))
    return Evaluation.of(flags, min(pending) if pending else None)


LIFECYCLE_TYPES = ("flag.acknowledged", "flag.dismissed")


TypeFingerprint = tuple[Event, ...]  # ChildView.fingerprint of an event type: its effective events
_INSTANT = attrgetter("instant")
_FIRST = itemgetter(0)
_RECORDED = attrgetter("recordedtime")


class _Remembered:
    """One rule's findings for one child, what they were computed from (what the rule read, as
    ``ChildView.fingerprint`` values), and the flags made of them under one lifecycle.

    Findings are kept in order of due (ties in the order the rule found them), so the flags
    raised by ``as_of`` are a prefix found by bisection, and the next deadline is the finding
    just after it: a rule whose reads did not change costs no work per finding."""

    def __init__(self, reads: tuple[tuple[str, object], ...], findings: Sequence[Finding]) -> None:
        self.reads = reads
        self.keys = frozenset(map(_FIRST, reads))  # what was read, without the values
        self.findings = sorted(findings, key=_INSTANT)  # stable
        self.dues = list(map(_INSTANT, self.findings))
        self.lifecycle: Hashable = None
        self.flags: list[Ordered] = []  # flags of findings[: len(flags)] under ``lifecycle``
        self.run: Run = ()  # tuple(flags[:raised]), handed out again while ``raised`` stays
        self.raised = -1
        self.fold: Fold | None = None  # a FoldingPolicy's fold, to resume from
        self.resumed = False  # the fold was resumed: findings kept are the same objects
        self.last: datetime | None = None  # the latest recorded time in the view it was made from

    def added(self, view: ChildView, seen: dict[tuple[str, int], list[Event] | None]) -> list[Event] | None:
        """The events of the types read that ``view`` adds to the one these findings came from,
        in recorded order, if it only adds (nothing corrected, withdrawn or cut away, no other
        read changed) and every addition was recorded after everything that view held; else
        None (the rule starts afresh). ``seen``: the additions already found for a type since a
        fingerprint, during one evaluation (rules remembered from one view share fingerprints)."""
        if self.last is None:
            return None
        added: list[Event] = []
        for what, was in self.reads:
            if not _changed(view.fingerprint(what), was):
                continue
            if what.startswith("*"):  # the agencies, household, awareness or whole history
                return None
            key = (what, id(was))
            if key not in seen:
                seen[key] = _additions(view, what, cast(TypeFingerprint, was))
            found = seen[key]
            if found is None or (found and min(map(_RECORDED, found)) <= self.last):
                return None
            added += found
        return sorted(added, key=recorded_key)


def _changed_reads(
    known: ChildView, previous: ChildView | None, remembered: Iterable[_Remembered]
) -> frozenset[str]:
    """What the rules ``remembered`` read that differs between ``previous`` (the view of the
    child's last evaluation) and ``known``: a remembered rule runs again exactly when it read
    one of them. Exact because every rule remembered from that evaluation read values equal to
    ``previous``'s (it ran on it, or its reads were compared with it and found equal), and
    equality is transitive. Issue 13: comparing each rule's reads one by one (~3 per rule, 28
    rules) was ~15% of an evaluation on a replay; each thing read is compared once now, and a
    rule asks one ``isdisjoint`` in C."""
    if previous is None:
        return frozenset()
    read = frozenset().union(*(r.keys for r in remembered))
    return frozenset(what for what in read if _changed(known.fingerprint(what), previous.fingerprint(what)))


def _changed(now: object, was: object) -> bool:
    """Two fingerprints differ. The same object when a view adopted the previous one's index
    and nothing of that type was added: no comparison of every event of the type."""
    return now is not was and now != was


def _additions(view: ChildView, what: str, was: TypeFingerprint) -> list[Event] | None:
    """The effective events of type ``what`` in ``view`` that are not in fingerprint ``was``, if
    every event of ``was`` is still there unchanged (None if one was corrected or withdrawn)."""
    now = cast(TypeFingerprint, view.fingerprint(what))
    if now[: len(was)] == was:  # live traffic: the new events come last in time order too
        return list(now[len(was) :])
    by_id = {event.id: event for event in now}
    if any(by_id.get(event.id) != event for event in was):
        return None
    known = {event.id for event in was}
    return [event for event in now if event.id not in known]


class Evaluator:
    """``evaluate``, remembering per child what each rule found and what it read to find it.

    Live traffic re-evaluates a child on each new event; most rules read only a few event types
    (``ChildView.reading`` records which), so a rule whose reads are all unchanged returns the
    findings it returned before without running. The result is ``evaluate``'s, exactly: a rule is
    a deterministic function of what it reads of the view (never of ``as_of``, which the view is
    already cut to), and a fingerprint changes whenever what was read changes, corrections,
    withdrawals and back-dated events included. tests/policies/test_incremental.py checks it
    against ``evaluate`` over generated histories.

    Bounded: it remembers the children most recently evaluated, at most ``children`` of them and
    at most ``events`` events of history between them (a child not remembered is evaluated in
    full). What it keeps is about 1.5 kB per event of a child's history (findings, their flags,
    fingerprints; measured on bench/policies.py's stories), so the default ``events`` keeps it
    under ~75 MB. It also keeps each child's last view, whose indexes the next view adopts
    (``ChildView.adopt``): measured with tracemalloc on bench/growth.py's story (10 children,
    503 events each), 2.26 kB per event with it against 2.45 kB before, since a fingerprint
    became the events the view's index holds instead of a tuple built per type read. Safe to
    share between threads.
    """

    def __init__(self, children: int = 1024, events: int = 50_000) -> None:
        calendar.load()  # at the process's start, not in its first batch
        # Per child: each rule's findings, and the view they came from (whose indexes the next
        # view of the child adopts: ``ChildView.adopt``), weighed by that view's events.
        self._remembered: Bounded[tuple[dict[Policy, _Remembered], ChildView]] = Bounded(
            children, events, lambda kept: len(kept[1].events)
        )
        self._lock = threading.Lock()

    def last_view(self, child: str) -> ChildView | None:
        """The view of ``child`` this evaluated last, if remembered: the next view of the child
        is built from it (``ChildView.build``'s ``previous``)."""
        with self._lock:
            found = self._remembered.get(child)
        return None if found is None else found[1]

    def evaluate(self, view: ChildView, as_of: datetime, policies: Sequence[Policy]) -> Evaluation:
        known = view.known_at(as_of)
        with self._lock:
            remembered_child = self._remembered.pop(view.child)
        before, previous = remembered_child if remembered_child is not None else ({}, None)
        if previous is not None:
            known.adopt(previous)
        lifecycle_print = known.fingerprint_recorded(*LIFECYCLE_TYPES)
        lifecycle: dict[str, dict[str, Any]] | None = None
        now: dict[Policy, _Remembered] = {}
        runs: dict[str, Run] = {}
        pending: list[datetime] = []
        cut = instant(as_of)
        seen: dict[tuple[str, int], list[Event] | None] = {}  # additions by (type, fingerprint)
        changed = _changed_reads(known, previous, before.values())
        for policy in policies:
            remembered = before.get(policy)
            made: Mapping[Any, Ordered] = {}
            kept: _Remembered | None = None
            if remembered is None or not remembered.keys.isdisjoint(changed):
                kept = (
                    remembered if remembered is not None and remembered.lifecycle == lifecycle_print else None
                )
                remembered = self._run(policy, known, as_of, remembered, seen)
                if kept is not None:
                    # It ran again, but mostly found what it found before: keep those flags. A
                    # resumed fold hands back the same finding objects (looked up by identity,
                    # while ``kept`` holds them); a fresh run equal ones.
                    old = map(id, kept.findings) if remembered.resumed else kept.findings
                    made = dict(zip(old, kept.flags, strict=False))
            key = id if remembered.resumed else _itself
            if remembered.lifecycle != lifecycle_print:
                remembered.lifecycle, remembered.flags, remembered.raised = lifecycle_print, [], -1
            now[policy] = remembered
            raised = bisect_right(remembered.dues, cut)
            todo = remembered.findings[len(remembered.flags) : raised]
            if todo:
                # Looked up in C (a Python loop over every finding of a re-run rule was a tenth
                # of an evaluation at 500 prior events); only those not kept are made.
                found: list[Ordered | None] = list(map(made.get, map(key, todo)))
                if None in found:
                    if lifecycle is None:
                        lifecycle = _lifecycle(known)
                    for index, finding in enumerate(todo):
                        if found[index] is None:
                            new = make_flag(policy, view.child, finding, lifecycle)
                            found[index] = ((finding.instant, new.rule, new.id), new)  # flag_order
                remembered.flags += cast(list[Ordered], found)
            if remembered.raised != raised:  # the run handed out last time, while it holds
                run = tuple(remembered.flags[:raised])
                if kept is not None and run == kept.run:
                    run = kept.run  # ran again and raised the same flags: still the same run
                remembered.run, remembered.raised = run, raised
            if not remembered.run:
                pass  # a rule that raised nothing has no run: most rules, at short histories
            elif policy.id in runs:  # two rules under one id (a test's variant): one run of both
                runs[policy.id] = tuple(sorted(runs[policy.id] + remembered.run, key=_ORDER))
            else:
                runs[policy.id] = remembered.run
            if raised < len(remembered.findings):
                pending.append(remembered.findings[raised].due)
        with self._lock:
            self._remembered.put(view.child, (now, known))
        return Evaluation(runs, min(pending) if pending else None)

    @staticmethod
    def _run(
        policy: Policy,
        known: ChildView,
        as_of: datetime,
        before: _Remembered | None,
        seen: dict[tuple[str, int], list[Event] | None],
    ) -> _Remembered:
        """Run ``policy`` on ``known``: a folding rule resumes from its previous fold when the
        view only added events after it (``_Remembered.added``), else it starts afresh."""
        fold: Fold | None = None
        read_before: set[str] = set()
        with reading() as reads:
            if _folds(policy):
                if before is not None and before.fold is not None:
                    added = before.added(known, seen)
                    if added is not None:
                        fold = policy.resume(before.fold, known, added)
                        read_before = {what for what, _ in before.reads}
                    before.fold = None  # a resumed fold may have been changed: never used again
                if fold is None:
                    fold, read_before = policy.start(known), set()
                findings: Sequence[Finding] = fold.findings
            else:
                findings = tuple(policy.findings(known, as_of))
        read = sorted(reads | read_before)
        remembered = _Remembered(tuple(zip(read, map(known.fingerprint, read), strict=True)), findings)
        remembered.fold, remembered.last = fold, known.last_recorded
        remembered.resumed = bool(read_before)
        return remembered


def _folds(policy: Policy) -> TypeGuard[FoldingPolicy]:
    """A folding rule whose ``findings`` is still its ``start``: a subclass that redefines
    ``findings`` (a test's faulty rule, a local variant) is run as it says. Decided once per
    class (an ABC's isinstance is a Python call, asked for every rule of every evaluation)."""
    kind = type(policy)
    folds = _FOLDING.get(kind)
    if folds is None:
        folds = _FOLDING[kind] = issubclass(kind, FoldingPolicy) and kind.findings is FoldingPolicy.findings
    return folds


_FOLDING: dict[type[Policy], bool] = {}


def _itself(finding: Finding) -> Finding:
    return finding


def make_flag(
    policy: RuleDescription,
    child: str | None,
    finding: Finding,
    lifecycle: Mapping[str, Mapping[str, Any]],
) -> Flag:
    fid = flag_id(policy.id, child, finding.key)
    state = lifecycle.get(fid, {})
    status = "open"
    dismissed_by = dismissed_reason = None
    if finding.resolved_by is not None:
        status = "resolved"
    elif "dismissed_by" in state and set(finding.evidence) <= set(state["dismissed_evidence"]):
        # A dismissal stands until new evidence arrives (evidence beyond what was dismissed).
        status = "dismissed"
        dismissed_by, dismissed_reason = state["dismissed_by"], state["dismissed_reason"]
    # Made without Flag's generated __init__: a frozen dataclass sets each of its 19 fields with
    # object.__setattr__ (~2.5 us, an eighth of making a flag; a replay makes every flag once).
    # The instance dict gets exactly what that __init__ would set (Flag computes nothing at
    # construction); tests/policies/test_engine.py checks every field is there and equal.
    flag: Flag = _new(Flag)
    flag.__dict__.update(
        id=fid,
        rule=policy.id,
        version=policy.version,
        child=child,
        severity=policy.severity,
        title=policy.title,
        due=finding.due,
        evidence=tuple(sorted(finding.evidence)),
        concerns=tuple(sorted(set(finding.concerns))),
        source=policy.source,
        explanation=policy.explanation,
        action=policy.action,
        detail=finding.detail,
        status=status,
        acknowledged_by=state.get("acknowledged_by"),
        resolved_by=finding.resolved_by,
        resolved_at=finding.resolved_at,
        dismissed_by=dismissed_by,
        dismissed_reason=dismissed_reason,
    )
    return flag


_new = object.__new__


def _lifecycle(view: ChildView) -> dict[str, dict[str, Any]]:
    """Acknowledgements and dismissals (partnership events in the child's stream), by flag id."""
    state: dict[str, dict[str, Any]] = {}
    for event in view.recorded_of_type("flag.acknowledged", "flag.dismissed"):
        if event.type == "flag.acknowledged":
            state.setdefault(event.data["flag"], {})["acknowledged_by"] = event.data["by"]
        elif event.type == "flag.dismissed":
            entry = state.setdefault(event.data["flag"], {})
            entry["dismissed_by"] = event.data["by"]
            entry["dismissed_reason"] = event.data["reason"]
            entry["dismissed_evidence"] = tuple(event.data.get("evidence", ()))
    return state
