"""Keep the flags table in step with the latest evaluation and log each lifecycle change.

The evaluation is the truth; this module only notices what changed since the last one and writes
a change row for it (raised, acknowledged, resolved, dismissed, reopened). A flag that was open
and is no longer found is resolved "by the data changing", naming the event that changed it.
A flag row is written only when its payload, status or due time changed, so ``updated_at`` is
when the flag last changed, not when it was last evaluated (``view_children.evaluated_at``).

Per batch, not per child (issue 13): ``FlagSync`` reads the stored flags of every child a batch
re-evaluates in one query and writes new flags, changed flags and change rows with one
executemany each. Through SQLAlchemy Core, not ORM objects: nothing reads the rows back from the
session, and building, tracking and flushing one ORM object per flag and per change was about a
third of the projector's time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _string
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from ledger.store.bulk import insert_rows, insert_values, update_rows
from ledger.timeutil import format_time
from policies.engine import Evaluation, Flag, Run, name_uuid
from views.models import EVERY_AGENCY, FlagChangeRow, FlagConcernRow, FlagRow
from views.my_flags import flag_tab

_FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]
_CHANGES: Table = FlagChangeRow.__table__  # type: ignore[assignment]
_CONCERNS: Table = FlagConcernRow.__table__  # type: ignore[assignment]
_CHUNK = 500  # children per IN (...) query: far below every backend's parameter limit
ROW_WEIGHT = 200  # what a remembered row weighs besides its payload text: its other columns
_ORDER, _FLAG = itemgetter(0), itemgetter(1)  # the parts of a run's (flag order, flag) pairs
# ``json.dumps(value, sort_keys=True)``, byte for byte, with its encoder made once: ``dumps``
# makes one per call when given any option (a third of serialising an evidence detail, each
# event a change names: ~1 per event of a replay)
_sorted_json = json.JSONEncoder(sort_keys=True).encode


@dataclass
class StoredFlag:
    """What the sync needs of a stored flag row."""

    id: str
    rule: str
    severity: str
    status: str
    due: datetime
    payload: str
    changes: int


@dataclass(frozen=True)
class FlagChange:
    """One lifecycle change, as written to ``flag_changes`` (the gap-flags outbox)."""

    rule: str
    change: str
    row: dict[str, Any]  # the flag_changes row


class FlagSync:
    """One transaction's flag writes: ``load`` the children to be evaluated, ``sync`` each
    evaluation, then ``write`` once.

    ``fresh``: the children have no stored flags and this write is their only one (an audit
    replay into an empty database evaluates each child once, as of its time T). Nothing is then
    read back, and no ``flag_changes`` are written: a flag's lifecycle is what the live projector
    lived through (raised one day, acknowledged, resolved by a later event), which one
    evaluation at T does not have; what it would write is a "raised at T" or "resolved at T" per
    flag, a history that never happened, and a third of a replay's rows. The flags, their
    statuses and their ``flag_concerns`` (what `audit diff`, the workspace and My flags read)
    are written as always; the history of a flag is read from the live database.
    """

    _columns = (_FLAGS.c.id, _FLAGS.c.child, _FLAGS.c.rule, _FLAGS.c.severity, _FLAGS.c.status,
                _FLAGS.c.due, _FLAGS.c.payload, _FLAGS.c.changes)  # fmt: skip

    def __init__(self, session: Session, *, fresh: bool = False) -> None:
        self.session, self.fresh = session, fresh
        self._stored: dict[str | None, dict[str, StoredFlag]] = {}
        self._complete: set[str | None] = set()  # children whose flags are all in _stored
        # child -> the runs of Flag objects its last full sync was given (``Evaluation.runs``),
        # for rules ``_spoken``: every stored flag of those rules that is open is in one of
        # them, and equals its stored row
        self._synced: dict[str | None, dict[str, Run]] = {}
        self._spoken: dict[str | None, frozenset[str] | None] = {}
        self._weight: dict[str | None, int] = {}  # child -> its stored flags' weight (see weight())
        self._inserts: list[dict[str, Any]] = []
        self._updates: dict[str, dict[str, Any]] = {}  # flag id -> its new column values
        self._changes: list[dict[str, Any]] = []
        # flag id -> (row, payload, new) of each flag written: its flag_concerns rows are rewritten
        self._concerns: dict[str, tuple[StoredFlag, Mapping[str, Any], bool]] = {}
        # event id -> its evidence detail serialised, for the child being synced
        self._evidence_texts: dict[str, str] = {}
        self._changed_at: tuple[datetime | None, str] = (None, "")  # a change time and its JSON text

    def load(self, children: Iterable[str | None]) -> None:
        """Read the stored flags of ``children`` (None: the partnership-wide flags) not loaded
        yet, in a few queries."""
        wanted = {c for c in children if c not in self._complete}
        self._complete |= wanted
        if self.fresh:
            for child in wanted:
                self._stored.setdefault(child, {})
            return
        named = sorted(c for c in wanted if c is not None)
        queries = [
            select(*self._columns).where(_FLAGS.c.child.in_(named[start : start + _CHUNK]))
            for start in range(0, len(named), _CHUNK)
        ]
        if None in wanted:
            queries.append(select(*self._columns).where(_FLAGS.c.child.is_(None)))
        for child in wanted:
            self._stored.setdefault(child, {})
        for query in queries:
            for fid, child, rule, severity, status, due, payload, changes in self.session.execute(query):
                self._stored[child].setdefault(
                    fid, StoredFlag(fid, rule, severity, status, due, payload, changes)
                )
        for child in wanted:
            self._weight[child] = sum(len(row.payload) + ROW_WEIGHT for row in self._stored[child].values())

    def remember(
        self,
        child: str,
        flags: dict[str, StoredFlag],
        weight: int,
        synced: dict[str, Run] | None = None,
        spoken: frozenset[str] | None = None,
    ) -> None:
        """Take ``child``'s stored flags from what this process last wrote for it instead of
        reading them (``views.projection.ChildRows``: only while the child's write stamp shows
        nobody wrote it since), with their ``weight`` and the runs of Flag objects its last
        sync was given (``synced``, for the rules ``spoken``). The dicts are this sync's from now on:
        they are updated in place as the flags are synced, and ``stored``/``synced`` hand them
        back."""
        self._stored[child], self._weight[child] = flags, weight
        self._complete.add(child)
        if synced is not None:
            self._synced[child], self._spoken[child] = synced, spoken

    def stored(self, child: str) -> dict[str, StoredFlag]:
        """``child``'s flags as they stand once ``write`` has run: every stored flag of the child
        (``load``ed or ``remember``ed), with this sync's inserts and changes."""
        return self._stored[child]

    def weight(self, child: str) -> int:
        """What ``child``'s stored flags weigh in a bounded memory: their payloads' characters
        plus ``ROW_WEIGHT`` per row. Kept as flags change, not summed again: a sum over a
        child's ~500 flags each batch was ~0.25 CPU ms of a live event at 500 prior events."""
        return self._weight[child]

    def synced(self, child: str) -> tuple[dict[str, Run], frozenset[str] | None] | None:
        """The runs of Flag objects ``child``'s last full sync was given (``Evaluation.runs``)
        and the rules it spoke for; None after a partial sync."""
        flags = self._synced.get(child)
        return None if flags is None else (flags, self._spoken[child])

    def _load_ids(self, child: str | None, ids: Sequence[str]) -> None:
        """Read these flags of ``child`` (if stored), without reading its others."""
        known = self._stored.setdefault(child, {})
        wanted = [] if self.fresh else sorted(set(ids) - set(known))
        for start in range(0, len(wanted), _CHUNK):
            query = select(*self._columns).where(_FLAGS.c.id.in_(wanted[start : start + _CHUNK]))
            for fid, _, rule, severity, status, due, payload, changes in self.session.execute(query):
                known.setdefault(fid, StoredFlag(fid, rule, severity, status, due, payload, changes))

    def sync(
        self,
        child: str | None,
        evaluation: Evaluation | Sequence[Flag],
        now: datetime,
        trigger: str | None,
        evidence_detail: Mapping[str, Mapping[str, Any]],
        rules: Sequence[str] | None = None,
        *,
        partial: bool = False,
        evidence_texts: dict[str, str] | None = None,
    ) -> list[FlagChange]:
        """Apply one evaluation of ``child`` (None: partnership-wide integrity flags): an
        ``Evaluation`` or its flags (synced in flag order, as one run).

        ``rules`` limits which stored flags the evaluation speaks for (integrity flags and child
        rules are evaluated separately); ``trigger`` is the event that caused the evaluation.
        ``partial``: the evaluation speaks only for the flags it holds (only they are read, and
        no stored flag missing from it is resolved). ``evidence_texts``: event id -> its
        ``evidence_detail`` serialised, kept by the caller across evaluations of this child and
        filled in as changes name events (an event's detail is a function of the event as
        recorded, which never changes); else one evaluation's own.
        """
        flags: Sequence[Flag]
        if partial:
            flags = evaluation.flags if isinstance(evaluation, Evaluation) else evaluation
            self._load_ids(child, [flag.id for flag in flags])
            stored = {
                flag.id: self._stored[child][flag.id] for flag in flags if flag.id in self._stored[child]
            }
            self._synced.pop(child, None)  # no longer says what every stored flag is
        else:
            self.load([child])
            spoken = None if rules is None else frozenset(rules)
            if not isinstance(evaluation, Evaluation):
                evaluation = Evaluation.of(evaluation, None)
            flags, stored = self._unsynced(child, evaluation, spoken)
        changes: list[FlagChange] = []
        weight = self._weight.get(child, 0)
        self._evidence_texts = {} if evidence_texts is None else evidence_texts
        for flag in flags:
            row = stored.pop(flag.id, None)
            if (
                row is not None
                and flag.payload_text == row.payload  # made once per flag object
                and row.status == flag.status
                and row.due == flag.due
            ):
                continue  # unchanged: most of a child's flags on most evaluations, so write nothing
            if row is None:
                # (a fresh write records no changes: no message to make)
                text, message_text = (flag.payload_text, "") if self.fresh else flag.texts()
                row = StoredFlag(flag.id, flag.rule, str(flag.severity), flag.status, flag.due, text, 0)
                weight += len(text) + ROW_WEIGHT
                self._concerns[flag.id] = (row, _concerned(flag), True)
                self._stored[child][flag.id] = row
                first = {"open": "raised", "resolved": "resolved", "dismissed": "dismissed"}[flag.status]
                self._change(changes, row, first, flag.evidence, message_text, now, evidence_detail)
                self._inserts.append(
                    {
                        "id": flag.id,
                        "rule": flag.rule,
                        "version": flag.version,
                        "child": child,
                        "severity": str(flag.severity),
                        "status": flag.status,
                        "due": flag.due,
                        "payload": text,
                        "raised_at": now,
                        "updated_at": now,
                        "changes": row.changes,
                    }
                )
                continue
            # The sorted text (a change message's) only for a lifecycle change, and what the
            # concern rows read instead of the whole payload: most rewrites of a live child's
            # flags change their evidence or due time, not their lifecycle (issue 13, tenth round)
            change = _transition(row, flag)
            text = flag.texts()[1] if change is not None else ""
            weight += len(flag.payload_text) - len(row.payload)
            row.payload, row.status, row.due = flag.payload_text, flag.status, flag.due
            self._written(row, _concerned(flag))
            if change is not None:
                self._change(changes, row, change, flag.evidence, text, now, evidence_detail)
            self._update(row, now)
        for row in stored.values():
            if row.status != "open":
                continue
            payload = json.loads(row.payload)
            payload.update(status="resolved", resolved_by=trigger, resolved_at=format_time(now))
            payload["detail"] = (payload.get("detail") or "") + " (resolved: the data changed)"
            text = json.dumps(payload)
            weight += len(text) - len(row.payload)
            row.payload, row.status = text, "resolved"
            self._written(row, payload)
            message_text = _sorted_json(payload)
            self._change(changes, row, "resolved", payload["evidence"], message_text, now, evidence_detail)
            self._update(row, now)
        self._weight[child] = weight
        return changes

    def _unsynced(
        self, child: str | None, evaluation: Evaluation, spoken: frozenset[str] | None
    ) -> tuple[Sequence[Flag], dict[str, StoredFlag]]:
        """The flags of a full evaluation that may differ from their stored rows, in flag order,
        and the stored rows (of the rules ``spoken``) to compare them with: those left over are
        no longer found. Afterwards ``synced`` is the evaluation's runs.

        Issue 13: comparing every flag with its stored row, and copying the child's stored flags
        to find those no longer found, grew with the history (~500 flags at 500 prior events,
        ~0.5 CPU ms a live event) while a new event changes a few; so did comparing each Flag
        object with the last sync's (~0.6 ms at 1,000 prior). A Flag object given to the last
        sync of this child equals its stored row (that sync wrote it, or found it equal, and
        ``remember`` is only called while nobody wrote the child since), and the ``Evaluator``
        hands back the same run object for a rule whose flags did not change. So a run that is
        the same as last time is skipped whole, one that extends it compares its new flags
        only, and in the others only flags that are not the same object need comparing; and
        every open stored flag of these rules was in the last evaluation (the last sync
        resolved any other), so only flags of the last evaluation's other runs missing from
        this one can be left to resolve, in stored order as the full comparison resolves them.
        An equal flag counts as the same (a run's prefix is compared with ``==``): its stored
        row is made from its fields alone."""
        stored_all = self._stored[child]
        previous = self._synced.get(child) if self._spoken.get(child, spoken) == spoken else None
        runs = evaluation.runs
        self._synced[child], self._spoken[child] = dict(runs), spoken
        if previous is None:
            stored = {fid: row for fid, row in stored_all.items() if spoken is None or row.rule in spoken}
            return evaluation.flags, stored
        # A rule that raised one more flag hands back its run extended: the old run as its
        # prefix (the same pair objects, compared in C), only the tail to compare.
        extended = {
            key
            for key, run in runs.items()
            if (old := previous.get(key)) is not None and (old is run or run[: len(old)] == old)
        }
        before: dict[str, Flag] = {}  # id -> Flag, of the last sync's runs not handed back or extended
        for key, run in previous.items():
            if key not in extended:
                before.update((flag.id, flag) for flag in map(_FLAG, run))
        changed: list[tuple[tuple[int, str, str], Flag]] = []
        for key, run in runs.items():
            if key in extended:
                changed += run[len(previous[key]) :]
            else:
                changed += [pair for pair in run if before.pop(pair[1].id, None) is not pair[1]]
        changed.sort(key=_ORDER)  # flag order, as the full comparison goes
        flags = list(map(_FLAG, changed))
        stored = {flag.id: stored_all[flag.id] for flag in flags if flag.id in stored_all}
        if before:  # the flags gone, in stored order, as the full comparison resolves them
            stored.update((fid, row) for fid, row in stored_all.items() if fid in before)
        return flags, stored

    def write(self) -> None:
        """Everything synced since the last write, in one statement per kind of row. A flag
        raised and changed again in one batch is inserted with its last values."""
        inserted = {row["id"] for row in self._inserts}
        for values in self._inserts:
            values.update(self._updates.pop(values["id"], {}))
        insert_rows(self.session, _FLAGS, self._inserts)
        updates = [{"id": fid, **values} for fid, values in self._updates.items() if fid not in inserted]
        update_rows(self.session, _FLAGS, ["id"], updates)
        insert_rows(self.session, _CHANGES, self._changes)
        self._write_concerns()
        self._inserts, self._updates, self._changes = [], {}, []

    def _written(self, row: StoredFlag, payload: Mapping[str, Any]) -> None:
        """Note a stored flag rewritten (a flag inserted in this batch stays "new")."""
        new = row.id in self._concerns and self._concerns[row.id][2]
        self._concerns[row.id] = (row, payload, new)

    def _write_concerns(self) -> None:
        """Rewrite the ``flag_concerns`` rows (what My flags reads) of the flags written: delete
        those of flags that existed, insert every written flag's, one statement each."""
        changed = sorted(fid for fid, (_, _, new) in self._concerns.items() if not new)
        for start in range(0, len(changed), _CHUNK):
            self.session.execute(
                delete(_CONCERNS).where(_CONCERNS.c.flag_id.in_(changed[start : start + _CHUNK]))
            )
        rows = [
            values
            for row, payload, _ in self._concerns.values()
            for values in concern_values(row.id, row.rule, row.severity, row.status, row.due, payload)
        ]
        insert_values(self.session, _CONCERNS, CONCERN_COLUMNS, rows)
        self._concerns = {}

    def _update(self, row: StoredFlag, now: datetime) -> None:
        self._updates[row.id] = {
            "payload": row.payload,
            "status": row.status,
            "due": row.due,
            "updated_at": now,
            "changes": row.changes,
        }

    def _change(
        self,
        changes: list[FlagChange],
        row: StoredFlag,
        change: str,
        evidence: Sequence[str],
        flag_text: str,
        now: datetime,
        evidence_detail: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Record one lifecycle change of ``row`` (nothing when ``fresh``: see the class):
        ``flag_text`` is the flag's payload as ``json.dumps(..., sort_keys=True)`` writes it
        (``Flag.texts``), ``evidence`` the ids it names."""
        if self.fresh:
            return
        row.changes += 1
        change_id = name_uuid(f"{row.id}|{change}|{row.changes}")  # uuid5 in FLAG_NAMESPACE
        detail = []
        for event_id in evidence:
            text = self._evidence_texts.get(event_id)
            if text is None and (found := evidence_detail.get(event_id)) is not None:
                text = self._evidence_texts[event_id] = _sorted_json(found)
            if text is not None:
                detail.append(text)
        # json.dumps of {"change", "change_id", "changed_at", "evidence_detail", "flag"} with
        # sort_keys, made from its parts: each evidence event is serialised once (per child
        # remembered, else per evaluation), not once per flag change naming it (one incident is
        # the evidence of several flags, and the self-authorised-closure flag names every
        # closure of 90 days on each new one)
        # (``_string`` is what json.dumps does with a str, without its encoder set up per call)
        if self._changed_at[0] is not now:  # one time for a whole batch's changes
            self._changed_at = (now, _string(format_time(now)))
        message = (
            f'{{"change": {_string(change)}, "change_id": {_string(change_id)}, '
            f'"changed_at": {self._changed_at[1]}, "evidence_detail": [{", ".join(detail)}], '
            f'"flag": {flag_text}}}'
        )
        values = {
            "change_id": change_id,
            "flag_id": row.id,
            "change": change,
            "changed_at": now,
            "message": message,
            "published": False,
        }
        self._changes.append(values)
        changes.append(FlagChange(row.rule, change, values))


def sync_flags(
    session: Session,
    child: str | None,
    flags: Sequence[Flag],
    now: datetime,
    trigger: str | None,
    evidence_detail: Mapping[str, Mapping[str, Any]],
    rules: Sequence[str] | None = None,
    *,
    partial: bool = False,
) -> list[FlagChange]:
    """One evaluation of one child (or the partnership-wide flags), synced and written at once."""
    flags_sync = FlagSync(session)
    changes = flags_sync.sync(child, flags, now, trigger, evidence_detail, rules, partial=partial)
    flags_sync.write()
    return changes


# ``flag_concerns``' columns, in the table's order: ``concern_values`` makes its rows as tuples
CONCERN_COLUMNS = ("flag_id", "agency", "tab", "status", "due", "severity", "rule")


def concern_rows(
    flag_id: str, rule: str, severity: str, status: str, due: datetime, payload: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ``flag_concerns`` rows of one flag: one per agency it concerns, and the partnership's.
    Also what migration 0006 back-fills existing flags with."""
    return [
        dict(zip(CONCERN_COLUMNS, values, strict=True))
        for values in concern_values(flag_id, rule, severity, status, due, payload)
    ]


def concern_values(
    flag_id: str, rule: str, severity: str, status: str, due: datetime, payload: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """``concern_rows`` as tuples of ``CONCERN_COLUMNS``: what the flag sync inserts (~3.5 rows
    per event of a replay; a dict per row, made and taken apart again by the insert, was a
    third of their Python cost, issue 13, tenth round)."""
    tab = flag_tab(payload)
    agencies = sorted({*payload.get("concerns", ()), EVERY_AGENCY})
    return [(flag_id, agency, tab, status, due, severity, rule) for agency in agencies]


def _transition(row: StoredFlag, flag: Flag) -> str | None:
    """The lifecycle change from a stored flag to ``flag`` (None: none). The previous
    acknowledgement is read from the stored payload only when it decides."""
    before, after = row.status, flag.status
    if before != after:
        return "reopened" if after == "open" else after
    if after == "open" and flag.acknowledged_by and not json.loads(row.payload).get("acknowledged_by"):
        return "acknowledged"
    return None


def _concerned(flag: Flag) -> dict[str, Any]:
    """What ``concern_values`` reads of a flag's payload, without making the whole payload."""
    return {"status": flag.status, "acknowledged_by": flag.acknowledged_by, "concerns": flag.concerns}
