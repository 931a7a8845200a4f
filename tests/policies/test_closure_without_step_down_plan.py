"""closure-without-step-down-plan: a step-down closure needs ``step_down.to`` (a registered
agency), ``step_down.plan`` and non-empty ``step_down.actions`` (issue 3; Child Charlie 4, 5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from policies.closure_without_step_down_plan import ClosureWithoutStepDownPlan
from policies.engine import Flag
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = ClosureWithoutStepDownPlan()
CSC = "csc/somerset"
CLOSED = "2020-03-05T10:00:00Z"
LATER = "2020-06-30T00:00:00Z"
FULL = {"to": "phn/somerset", "plan": "HV weekly visits", "actions": ["HV to visit weekly"]}


def closure(step_down: dict[str, Any] | None, *, outcome: str = "step-down", at: str = CLOSED) -> Event:
    data: dict[str, Any] = {
        "referral_ref": "R-1",
        "outcome": outcome,
        "reason": "HV involved",
        "persons_contacted": ["M-1"],
        "worked_by": "SW-1",
        "authorised_by": "TM-1",
    }
    if step_down is not None:
        data["step_down"] = step_down
    return ev("referral.closed", data, at, source=CSC)


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_complete_step_down_is_quiet() -> None:
    assert flags(RULE, view(closure(FULL)), LATER) == []


def test_fires_at_the_closure() -> None:
    c = closure(None)
    v = view(c)
    assert flags(RULE, v, "2020-03-05T09:59:59Z") == []
    flag = only(flags(RULE, v, CLOSED))
    assert (flag.status, flag.rule, flag.due) == ("open", "closure-without-step-down-plan", t(CLOSED))
    assert flag.evidence == (c.id,)
    assert flag.concerns == (CSC,)
    assert all(part in flag.detail for part in ("receiving agency", "plan", "actions"))


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"to": None}, "receiving agency"),
        ({"to": "health"}, "receiving agency"),
        ({"to": "phn/elsewhere"}, "receiving agency"),
        ({"plan": ""}, "a plan"),
        ({"plan": None}, "a plan"),
        ({"actions": []}, "actions"),
    ],
)
def test_each_missing_part_fires(change: dict[str, Any], missing: str) -> None:
    step_down = {k: v for k, v in {**FULL, **change}.items() if v is not None}
    flag = only(flags(RULE, view(closure(step_down)), LATER))
    assert flag.detail.endswith(missing) or f"{missing}," in flag.detail


@pytest.mark.parametrize("outcome", ["nfa", "escalated", "transferred"])
def test_other_outcomes_are_quiet(outcome: str) -> None:
    assert flags(RULE, view(closure(None, outcome=outcome)), LATER) == []


def test_correction_supplying_the_plan_resolves_from_then() -> None:
    c = closure({"to": "phn/somerset"})
    fix = correct(c, {"step_down": FULL}, "2020-03-09T10:00:00Z")
    v = view(c, fix)
    assert only(flags(RULE, v, "2020-03-09T09:59:59Z")).status == "open"
    flag = only(flags(RULE, v, "2020-03-09T10:00:00Z"))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", fix.id, fix.recordedtime)
    assert flag.due == c.recordedtime
    assert flag.detail.endswith("lacks a plan, actions")  # what it lacked, not the fixed version


def test_correction_that_removes_the_plan_again_reopens() -> None:
    c = closure(FULL)
    broken = correct(c, {"step_down": {**FULL, "plan": ""}}, "2020-03-09T10:00:00Z")
    fixed = correct(c, {"step_down": FULL}, "2020-03-10T10:00:00Z")
    broken_again = correct(c, {"step_down": {**FULL, "actions": []}}, "2020-03-11T10:00:00Z")
    assert flags(RULE, view(c), LATER) == []
    flag = only(flags(RULE, view(c, broken, fixed), LATER))
    assert (flag.status, flag.due, flag.resolved_by) == ("resolved", broken.recordedtime, fixed.id)
    flag = only(flags(RULE, view(c, broken, fixed, broken_again), LATER))
    assert (flag.status, flag.due) == ("open", broken.recordedtime)
    assert flag.detail.endswith("lacks actions")


def test_partial_correction_still_fires() -> None:
    c = closure(None)
    v = view(
        c, correct(c, {"step_down": {"to": "phn/somerset", "plan": "HV visits"}}, "2020-03-09T10:00:00Z")
    )
    assert only(flags(RULE, v, LATER)).detail.endswith("lacks actions")


def test_correction_to_another_outcome_resolves() -> None:
    c = closure(None)
    fix = correct(c, {"outcome": "nfa"}, "2020-03-09T10:00:00Z")
    assert only(flags(RULE, view(c, fix), LATER)).resolved_by == fix.id


def test_correction_by_another_agency_is_ignored() -> None:
    c = closure(None)
    fix = correct(c, {"step_down": FULL}, "2020-03-09T10:00:00Z", source="police/avon-somerset")
    assert only(flags(RULE, view(c, fix), LATER)).status == "open"


def test_withdrawn_closure_no_longer_counts() -> None:
    c = closure(None)
    v = view(c, withdraw(c, "2020-03-09T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-09T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-09T10:00:00Z") == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    def closure(ref: str, step_down: Mapping[str, object]) -> Event:
        data = {
            "referral_ref": ref, "outcome": "step-down", "reason": "HV involved", "persons_contacted": [],
            "worked_by": "W-1", "authorised_by": "M-1", "step_down": step_down,
        }  # fmt: skip
        return ev("referral.closed", data, CLOSED, source=CSC)

    events = [closure("R-1", {"to": "health"}), closure("R-2", {**FULL, "actions": []}), closure("R-3", FULL)]
    assert_order_independent(RULE, events, LATER)
