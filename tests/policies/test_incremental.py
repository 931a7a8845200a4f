"""The incremental evaluator (``policies.engine.Evaluator``) must give exactly what a full
``evaluate`` gives, whatever arrives: live traffic one event at a time, out of recorded order,
corrections and withdrawals of old events, acknowledgements and dismissals of flags, a sibling's
history growing, registered agencies changing, and as-of times that cut the view."""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import policies
from policies.base import Finding, Fold, FoldingPolicy, Policy, Severity
from policies.engine import Evaluation, Evaluator, evaluate
from policies.registry import ALL_POLICIES
from policies.view import ChildView, Event
from tests.policies.generated import history, registered_agencies


def as_json(evaluation: Evaluation) -> str:
    return json.dumps(
        {"flags": [f.to_json() for f in evaluation.flags], "next_due": str(evaluation.next_due)},
        sort_keys=True,
    )


def lifecycle_events(child: str, evaluation: Evaluation, rng: random.Random, at: datetime) -> list[Event]:
    """Acknowledge or dismiss a few of the flags raised, as leads would."""
    found = []
    for n, flag in enumerate(rng.sample(evaluation.flags, min(2, len(evaluation.flags)))):
        when = at + timedelta(minutes=n + 1)
        if rng.random() < 0.5:
            data: dict[str, object] = {"flag": flag.id, "by": "lead@example"}
            found.append(
                Event(
                    f"ack-{flag.id}-{when}",
                    "flag.acknowledged",
                    "partnership/x",
                    child,
                    when,
                    when,
                    MappingProxyType(data),
                )
            )
        else:
            data = {"flag": flag.id, "by": "lead@example", "reason": "seen", "evidence": list(flag.evidence)}
            found.append(
                Event(
                    f"dis-{flag.id}-{when}",
                    "flag.dismissed",
                    "partnership/x",
                    child,
                    when,
                    when,
                    MappingProxyType(data),
                )
            )
    return found


def replay_live(seed: int, size: int, in_order: bool = False) -> int:
    """Deliver a generated history in batches, evaluating after each as the projector does;
    returns how many evaluations were compared. ``in_order``: in recorded order (how live
    traffic mostly arrives, and when folding rules resume rather than start again)."""
    rng = random.Random(seed)
    child, sibling = f"C-{seed}", f"C-{seed}-s"
    events = history(child, size, seed)
    if in_order:
        events.sort(key=lambda e: (e.recordedtime, e.id))
    theirs = [
        Event(
            e.id,
            e.type,
            e.source,
            sibling,
            e.time,
            e.recordedtime,
            MappingProxyType({**e.data, "person": f"{child}-m"}),
        )
        if e.type == "person.linked"
        else e
        for e in history(sibling, size // 2, seed + 1)
    ]
    rng.shuffle(theirs)
    arrived: list[Event] = []
    household: list[Event] = []
    agencies = registered_agencies()
    evaluator = Evaluator()
    compared = 0
    while events:
        # A batch of one to three events, sometimes delivered out of recorded order.
        batch = [
            events.pop(0 if in_order else rng.randrange(min(3, len(events))))
            for _ in range(min(rng.randint(1, 3), len(events)))
        ]
        arrived.extend(batch)
        if theirs and rng.random() < 0.3:
            household.append(theirs.pop())
        if rng.random() < 0.03:
            agencies.pop(rng.choice(sorted(agencies)), None)  # a registration is not (yet) known
        latest = max(e.recordedtime for e in arrived)
        as_of = rng.choice(
            (latest, latest, latest + timedelta(days=rng.choice((1, 5, 30))), latest - timedelta(hours=30))
        )
        view = ChildView.build(child, arrived, agencies, {sibling: household})
        incremental = evaluator.evaluate(view, as_of, ALL_POLICIES)
        assert as_json(incremental) == as_json(evaluate(view, as_of, ALL_POLICIES)), (
            seed,
            len(arrived),
            as_of,
        )
        compared += 1
        if incremental.flags and rng.random() < 0.1:
            arrived.extend(lifecycle_events(child, incremental, rng, latest))
    return compared


@pytest.mark.parametrize("seed", range(12))
def test_incremental_equals_full_evaluation_over_live_delivery(seed: int) -> None:
    assert replay_live(seed, size=(40, 120, 200)[seed % 3]) > 10


# 111 and 113: a first contact arrangement resumes overnight-contact-unexplored over a flag
@pytest.mark.parametrize("seed", [*range(100, 106), 111, 113])
def test_folding_rules_resumed_in_recorded_order_equal_a_full_evaluation(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivered in recorded order, the folding rules mostly resume from their folds; whatever
    they resume with (corrections and withdrawals among the additions force a fresh start),
    the result is a full evaluation's."""
    resumed: list[str] = []
    for rule in {type(p) for p in ALL_POLICIES if isinstance(p, FoldingPolicy)}:

        def counted(self: FoldingPolicy, fold: Fold, view: ChildView, added: list[Event],
                    resume: Any = rule.resume) -> Fold | None:  # fmt: skip
            resumed.append(self.id)
            found: Fold | None = resume(self, fold, view, added)
            return found

        monkeypatch.setattr(rule, "resume", counted)
    assert replay_live(seed, size=200, in_order=True) > 10
    assert {p.id for p in ALL_POLICIES if isinstance(p, FoldingPolicy)} <= set(resumed)


def test_a_back_dated_correction_of_an_old_event_is_seen() -> None:
    """A correction of the very first referral, arriving late, changes findings computed long ago."""
    events = history("C-old", 80, 7)
    first = next(e for e in events if e.type == "referral.made")
    evaluator = Evaluator()
    at = max(e.recordedtime for e in events) + timedelta(days=2)
    before = evaluator.evaluate(ChildView.build("C-old", events, registered_agencies()), at, ALL_POLICIES)
    fix = Event(
        "fix-1",
        "referral.corrected",
        first.source,
        "C-old",
        first.time,
        at,
        MappingProxyType({"original": first.id, "reason": "typo", "to": "health"}),
    )
    view = ChildView.build("C-old", [*events, fix], registered_agencies())
    after = evaluator.evaluate(view, at + timedelta(days=1), ALL_POLICIES)
    assert as_json(after) == as_json(evaluate(view, at + timedelta(days=1), ALL_POLICIES))
    assert as_json(after) != as_json(before)


class _CountingTriage(Policy):
    """One finding per triage; counts its runs, so reuse is visible."""

    id = "counting"
    version = 1
    severity = Severity.LOW
    title = source = explanation = action = "test"

    def __init__(self) -> None:
        self.runs = 0

    def findings(self, view: ChildView, as_of: datetime) -> Sequence[Finding]:
        self.runs += 1
        return [Finding(e.id, e.recordedtime, (e.id,), ()) for e in view.of_type("incident.triaged")]


def _event(n: int, type: str, data: dict[str, object]) -> Event:
    at = datetime(2024, 2, 1, tzinfo=UTC) + timedelta(hours=n)
    return Event(f"e-{n}", type, "police/avon-somerset", "C-r", at, at, MappingProxyType(data))


def test_a_rule_runs_again_only_when_what_it_read_changed() -> None:
    rule, evaluator = _CountingTriage(), Evaluator()
    events = [_event(1, "incident.triaged", {"incident_ref": "I-1", "forum": "DAT", "outcome": "x"})]

    def run(*more: Event) -> Evaluation:
        events.extend(more)
        view = ChildView.build("C-r", events, registered_agencies())
        return evaluator.evaluate(view, datetime(2025, 1, 1, tzinfo=UTC), [rule])

    assert len(run().flags) == 1 and rule.runs == 1
    run(_event(2, "contact.recorded", {"person": "P", "practitioner": "x", "mode": "phone"}))
    assert rule.runs == 1  # a contact is nothing this rule reads: its findings are reused
    assert (
        len(run(_event(3, "incident.triaged", {"incident_ref": "I-2", "forum": "DAT", "outcome": "x"})).flags)
        == 2
    )
    assert rule.runs == 2
    withdrawal = _event(4, "incident.withdrawn", {"original": "e-1", "reason": "error"})
    assert len(run(withdrawal).flags) == 1 and rule.runs == 3  # an amendment of what it read


def test_memory_is_bounded_by_children_and_by_events() -> None:
    by_children, by_events = Evaluator(children=3), Evaluator(events=12)
    for n in range(10):
        events = history(f"C-m{n}", 5, n)
        view = ChildView.build(f"C-m{n}", events, registered_agencies())
        by_children.evaluate(view, events[-1].recordedtime, ALL_POLICIES)
        by_events.evaluate(view, events[-1].recordedtime, ALL_POLICIES)
    assert list(by_children._remembered) == ["C-m7", "C-m8", "C-m9"]  # the most recent
    assert list(by_events._remembered)[-1] == "C-m9" and 0 < by_events._remembered.held <= 12


def _rule_modules() -> list[ast.Module]:
    """Every rule module (and the helpers rules call), parsed."""
    folder = Path(policies.__file__).parent
    skip = {"__init__.py", "base.py", "engine.py", "view.py", "integrity.py", "registry.py"}
    return [
        ast.parse(path.read_text("utf-8")) for path in sorted(folder.glob("*.py")) if path.name not in skip
    ]


def test_rules_read_the_view_only_through_its_methods() -> None:
    """What the Evaluator cannot see: a view's fields read directly."""
    for module in _rule_modules():
        for node in ast.walk(module):
            if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id == "self"
            ):
                assert node.attr not in ("events", "household", "registered_agencies", "_effective"), (
                    ast.unparse(node)
                )


def test_findings_do_not_read_as_of() -> None:
    """A rule sees as_of only through the view it is given (the engine compares deadlines); a
    folding rule's ``start`` and ``resume`` are not even given it."""
    found = 0
    for module in _rule_modules():
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef) and node.name in ("findings", "start"):
                found += 1
                names = {
                    n.id for statement in node.body for n in ast.walk(statement) if isinstance(n, ast.Name)
                }
                assert "as_of" not in names, ast.unparse(node)[:200]
    assert found == len(ALL_POLICIES)
