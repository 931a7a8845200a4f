"""The view rows fold a live event into what the previous batch made (``ViewFold``) instead of
making them again from the whole history (issue 13); the result must equal making them afresh
for every history the rules' own differential test generates: back-dated and late-recorded
events, corrections and withdrawals (valid and invalid), schools left, people linked and
re-linked, delivered in batches in recorded order (mostly folds) and out of it (fresh starts)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from policies.view import ChildView, Event
from tests.policies.generated import history, registered_agencies
from views.projection import ViewFold


def made(fold: ViewFold) -> tuple[Any, ...]:
    facts = fold.facts
    people = {p: {**f, "roles": sorted(f["roles"])} for p, f in facts.people.items()}
    return (people, facts.child_practices, facts.schools, facts.dob, fold.aware,
            fold.first_recorded, fold.last_recorded)  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_recorded_order", [True, False])
def test_folding_new_events_equals_making_the_view_rows_afresh(seed: int, in_recorded_order: bool) -> None:
    events = history("C-1", 160, seed)
    if in_recorded_order:
        events.sort(key=lambda e: e.recordedtime)
    rng = random.Random(seed)
    registered = registered_agencies()
    seen: list[Event] = []
    fold: ViewFold | None = None
    folded = 0
    while len(seen) < len(events):
        seen += events[len(seen) : len(seen) + rng.choice((1, 1, 1, 2, 5))]
        view = ChildView.build("C-1", seen, registered)
        previous = fold
        fold = ViewFold.of(view, fold)
        folded += fold is previous
        assert made(fold) == made(ViewFold(view)), len(seen)
    assert folded > (10 if in_recorded_order else 0)  # the fold path was taken, not only fresh starts


def test_an_event_named_by_an_earlier_amendment_is_not_folded_in_as_recorded() -> None:
    """A correction recorded before the event it names (the generator never makes one) still
    corrects it: the fold must start afresh when that event arrives."""
    at = datetime(2024, 3, 1, 9, tzinfo=UTC)

    def event(n: int, type: str, data: dict[str, Any]) -> Event:
        when = at + timedelta(hours=n)
        return Event(f"e-{n}", type, "csc/somerset", "C-1", when, when, MappingProxyType(data))

    registered = registered_agencies()
    first = [
        event(1, "child.registered", {"dob": "2023-01-01"}),
        event(2, "person.corrected", {"original": "e-3", "reason": "typo", "lives_with_child": False}),
    ]
    fold = ViewFold.of(ChildView.build("C-1", first, registered), None)
    linked = event(3, "person.linked", {"person": "P-1", "role": "father", "lives_with_child": True})
    view = ChildView.build("C-1", [*first, linked], registered)
    assert made(ViewFold.of(view, fold)) == made(ViewFold(view))
    assert ViewFold(view).facts.people["P-1"]["lives_with_child"] is False
