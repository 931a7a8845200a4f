"""A flag sync that trusts what it last synced (``FlagSync.remember`` with the runs of Flag
objects it was given: ``ChildHistories`` while the write stamp is its own) writes exactly what a
sync that reads every stored flag back writes: the same flag rows, change rows (messages byte for
byte, in the same order) and concern rows, whatever the evaluations keep, change, drop and bring
back, and whether a rule's run is handed back as the same object, extended, or made anew. Two
real SQLite databases, one per way, fed the same sequence of evaluations."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledger.store.ledger import Ledger
from policies.base import Severity
from policies.engine import Evaluation, Flag, Run, flag_order
from views.flags import ROW_WEIGHT, FlagChange, FlagSync
from views.models import FlagChangeRow, FlagConcernRow, FlagRow

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = ("gp-not-notified", "strategy-discussion-missing")
DETAIL = {  # the evidence detail of the events the flags name, with text json must escape
    f"ev-{n}": {"id": f"ev-{n}", "type": "incident.reported", "refs": {"incident_ref": f'INC "{n}" é\t'}}
    for n in range(12)
}


def flag(n: int, status: str = "open", acknowledged_by: str | None = None) -> Flag:
    return Flag(
        id=f"{n:08d}-0000-5000-8000-000000000000",
        rule=RULES[n % 2],
        version=1,
        child="C-1",
        severity=Severity("high"),
        title="GP practice not told",
        due=T + timedelta(hours=n),
        evidence=(f"ev-{n}", f"ev-{(n + 1) % 12}", "ev-not-in-the-view"),
        concerns=("gp/L1", "police/x"),
        source="CSPR Child Charlie 2.14",
        explanation="...",
        action="...",
        detail=f"gp/L1 not told of INC-{n}",
        status=status,
        acknowledged_by=acknowledged_by,
    )


def evaluations(seed: int, steps: int) -> list[tuple[Flag, ...]]:
    """A sequence of evaluations of one child: each keeps most of the previous one's Flag
    objects (as the Evaluator does for rules that did not re-run), and changes, drops, adds or
    brings back a few, sometimes as a new object equal to the old one."""
    rng = random.Random(seed)
    current: dict[int, Flag] = {n: flag(n) for n in range(6)}
    out = [tuple(current.values())]
    for _ in range(steps):
        for _ in range(rng.randint(0, 3)):
            n = rng.randrange(12)
            move = rng.choice(["drop", "add", "acknowledge", "dismiss", "same-again", "keep"])
            if move == "drop":
                current.pop(n, None)
            elif move == "add":
                current[n] = flag(n)
            elif move == "acknowledge" and n in current:
                current[n] = flag(n, acknowledged_by="local:a@b.example")
            elif move == "dismiss":
                current[n] = flag(n, status="dismissed")
            elif move == "same-again" and n in current:  # equal, but not the same object
                old = current[n]
                current[n] = flag(n, old.status, old.acknowledged_by)
        out.append(tuple(sorted(current.values(), key=lambda f: f.id)))
    return out


def run_evaluations(seed: int, steps: int) -> list[Evaluation]:
    """Evaluations as the ``Evaluator`` hands them over: one run per rule, the same run object
    for a rule whose flags did not change, the previous run extended by a flag raised after all
    of its others, or a new run (a flag changed, dropped, brought back, raised before others,
    replaced by an equal object); now and then all flags as one run, as a caller with a plain
    list gives them (runs under other keys)."""
    rng = random.Random(seed)
    made: dict[int, tuple[tuple[int, str, str], Flag]] = {}  # a Flag object's one pair (keeps it)

    def pair(f: Flag) -> tuple[tuple[int, str, str], Flag]:
        return made.setdefault(id(f), (flag_order(f), f))

    current: dict[str, dict[int, Flag]] = {rule: {} for rule in RULES}
    for n in range(8):
        current[RULES[n % 2]][n] = flag(n)

    def fresh(rule: str) -> Run:
        return tuple(pair(f) for f in sorted(current[rule].values(), key=flag_order))

    runs = {rule: fresh(rule) for rule in RULES}
    out = [Evaluation(dict(runs), None)]
    for _ in range(steps):
        for index, rule in enumerate(RULES):
            mine = current[rule]
            move = rng.choice(
                ["keep", "keep", "extend", "extend", "insert", "drop", "acknowledge", "dismiss", "again"]
            )
            n = rng.randrange(index, 40, 2)  # this rule's flags: flag(n) has rule RULES[n % 2]
            if move == "keep":
                continue
            if move == "extend":
                n = max(mine, default=index - 2) + 2
                mine[n] = flag(n)
                runs[rule] += (pair(mine[n]),)
                continue
            if move == "insert":
                mine.setdefault(n, flag(n))
            elif move == "drop" and mine:
                del mine[rng.choice(sorted(mine))]
            elif move == "acknowledge" and n in mine:
                mine[n] = flag(n, acknowledged_by="local:a@b.example")
            elif move == "dismiss":
                mine[n] = flag(n, status="dismissed")
            elif move == "again" and n in mine:  # equal, but not the same object
                mine[n] = flag(n, mine[n].status, mine[n].acknowledged_by)
            runs[rule] = fresh(rule)
        if rng.random() < 0.15:
            out.append(Evaluation.of([f for rule in RULES for f in current[rule].values()], None))
        else:
            out.append(Evaluation(dict(runs), None))
    return out


def rows(ledger: Ledger) -> dict[str, Any]:
    with ledger.read() as session:
        flags = sorted(tuple(r) for r in session.execute(select(FlagRow.__table__)))
        changes = [
            tuple(r) for r in session.execute(select(FlagChangeRow.__table__).order_by(FlagChangeRow.id))
        ]
        concerns = sorted(tuple(r) for r in session.execute(select(FlagConcernRow.__table__)))
    return {"flags": flags, "changes": changes, "concerns": concerns}


def run(
    ledger: Ledger, sequence: Sequence[Evaluation | tuple[Flag, ...]], remembering: bool
) -> list[list[FlagChange]]:
    """Sync each evaluation in its own transaction, as the child projection does; with
    ``remembering``, every sync after the first takes the previous one's rows, Flag objects and
    serialised evidence instead of reading the flags back."""
    memory: tuple[Any, ...] | None = None
    texts: dict[str, str] = {}  # the evidence serialised, kept across syncs as ChildRows keeps it
    out = []
    for step, flags in enumerate(sequence):
        now = T + timedelta(days=step)
        with ledger.session() as session:
            sync = FlagSync(session)
            if remembering and memory is not None:
                sync.remember("C-1", *memory)
            kept = texts if remembering else None
            out.append(sync.sync("C-1", flags, now, f"trigger-{step}", DETAIL, RULES, evidence_texts=kept))
            sync.write()
            synced = sync.synced("C-1")
            assert synced is not None
            memory = (sync.stored("C-1"), sync.weight("C-1"), *synced)
            # the weight is kept as flags change, never summed again: it must not drift
            assert memory[1] == sum(len(f.payload) + ROW_WEIGHT for f in memory[0].values())
    return out


@pytest.mark.parametrize(
    ("generate", "steps"),
    [(evaluations, 25), (run_evaluations, 30)],
    ids=["flag lists", "runs"],
)
def test_remembered_sync_writes_what_a_full_comparison_writes(
    tmp_path: Path, generate: Callable[[int, int], Sequence[Evaluation | tuple[Flag, ...]]], steps: int
) -> None:
    """Over generated sequences of evaluations, given as plain flag lists or as the engine's
    runs (kept, extended, rebuilt), a sync that remembers what it wrote writes the rows and
    change messages a sync reading everything back writes."""
    kinds: set[str] = set()
    for seed in range(6):
        sequence = generate(seed, steps)
        full = Ledger(f"sqlite:///{tmp_path / f'full-{seed}.db'}")
        remembered = Ledger(f"sqlite:///{tmp_path / f'remembered-{seed}.db'}")
        changes_full = run(full, sequence, remembering=False)
        changes_remembered = run(remembered, sequence, remembering=True)
        assert changes_remembered == changes_full
        assert rows(remembered) == rows(full)
        kinds |= {c.change for step in changes_full for c in step}
    assert kinds == {"raised", "acknowledged", "resolved", "reopened", "dismissed"}  # all were tried


def test_a_flag_left_out_of_the_evaluation_is_resolved_when_remembered(tmp_path: Path) -> None:
    """The case the remembered sync must not miss: a flag in the last evaluation, open, and
    absent from this one, although every flag that is given is the same object as before."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    kept, dropped = flag(1), flag(2)
    changes = run(ledger, [(kept, dropped), (kept,)], remembering=True)
    assert [(c.change, c.row["flag_id"][:8]) for c in changes[1]] == [("resolved", "00000002")]
    with ledger.read() as session:
        status = dict(session.execute(select(FlagRow.id, FlagRow.status)).tuples().all())
    assert status == {kept.id: "open", dropped.id: "resolved"}


def test_a_change_message_is_json_dumps_of_its_parts_with_sorted_keys(tmp_path: Path) -> None:
    """The message is made from its parts, each evidence event serialised once: it must be
    exactly what ``json.dumps(message, sort_keys=True)`` made (the alerter and any consumer of
    the gap-flags topic read these bytes; a replay compares them)."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    changes = run(ledger, [(flag(1), flag(2, acknowledged_by="local:a@b.example"))], remembering=False)
    assert len(changes[0]) == 2
    for change in changes[0]:
        message: Mapping[str, Any] = json.loads(change.row["message"])
        assert change.row["message"] == json.dumps(message, sort_keys=True)
        assert [d["id"] for d in message["evidence_detail"]] == list(message["flag"]["evidence"][:2])
