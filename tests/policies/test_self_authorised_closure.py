"""self-authorised-closure: the worker signing off their own closure, or one authoriser signing off
this child's closures again within 90 days (Child Charlie 2.10, 6.1)."""

from __future__ import annotations

from typing import Any

from policies.self_authorised_closure import SelfAuthorisedClosure
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = SelfAuthorisedClosure()
CSC = "csc/somerset"


def closure(ref: str, at: str, worked_by: str, authorised_by: str, **kw: Any) -> Event:
    data = {
        "referral_ref": ref,
        "outcome": "nfa",
        "reason": "mother protective",
        "persons_contacted": ["P-mum"],
        "worked_by": worked_by,
        "authorised_by": authorised_by,
    }
    return ev("referral.closed", data, at, source=CSC, **kw)


def test_worker_signing_off_own_closure_is_flagged_from_the_closure() -> None:
    closed = closure("REF-5", "2020-01-20T16:00:00+00:00", "W-edt", "W-edt")
    v = view(closed)
    assert flags(RULE, v, "2020-01-20T15:59:59+00:00") == []
    (flag,) = open_flags(RULE, v, "2020-01-20T16:00:00+00:00")
    assert flag.due == t("2020-01-20T16:00:00+00:00")
    assert flag.evidence == (closed.id,)
    assert flag.concerns == (CSC,)
    assert flag.source == "CSPR Child Charlie 2.10, 6.1"
    assert "REF-5" in flag.detail and "W-edt" not in flag.detail


def test_a_different_authoriser_is_quiet() -> None:
    v = view(closure("REF-5", "2020-01-20T16:00:00+00:00", "W-edt", "TM-1"))
    assert flags(RULE, v, "2020-06-01T00:00:00+00:00") == []


def test_same_authoriser_within_90_days_flags_the_later_closure_with_both_as_evidence() -> None:
    first = closure("REF-1", "2024-01-10T10:00:00+00:00", "W-1", "TM-1")
    second = closure("REF-2", "2024-04-09T10:00:00+01:00", "W-2", "TM-1")  # 90 days (of 24 h) later
    (flag,) = flags(RULE, view(first, second), "2024-04-10T00:00:00+01:00")
    assert flag.evidence == tuple(sorted((first.id, second.id)))
    assert flag.due == second.recordedtime
    assert "REF-2" in flag.detail and "REF-1" in flag.detail


def test_90_day_window_boundary_one_second_each_side() -> None:
    """90 days are 90 x 24 hours of elapsed time, across the March clock change too."""
    first = closure("REF-1", "2024-01-10T10:00:00+00:00", "W-1", "TM-1")
    inside = closure(
        "REF-2", "2024-04-09T10:00:00+01:00", "W-2", "TM-1", recorded="2024-04-09T10:59:59+01:00"
    )
    outside = closure(
        "REF-2", "2024-04-09T10:00:00+01:00", "W-2", "TM-1", recorded="2024-04-09T11:00:01+01:00"
    )
    assert len(flags(RULE, view(first, inside), "2024-05-01T00:00:00+01:00")) == 1
    assert flags(RULE, view(first, outside), "2024-05-01T00:00:00+01:00") == []


def test_same_referral_ref_or_same_instant_does_not_count_as_an_earlier_closure() -> None:
    first = closure("REF-1", "2024-01-10T10:00:00+00:00", "W-1", "TM-1")
    reclosed = closure("REF-1", "2024-02-10T10:00:00+00:00", "W-2", "TM-1")
    simultaneous = closure("REF-3", "2024-01-10T10:00:00+00:00", "W-3", "TM-1")
    assert flags(RULE, view(first, reclosed), "2024-03-01T00:00:00+00:00") == []
    assert flags(RULE, view(first, simultaneous), "2024-03-01T00:00:00+00:00") == []


def test_correction_naming_another_authoriser_closes_the_gap_from_the_correction() -> None:
    closed = closure("REF-5", "2020-01-20T16:00:00+00:00", "W-edt", "W-edt")
    fixed = correct(closed, {"authorised_by": "TM-2"}, "2020-01-22T09:00:00+00:00")
    v = view(closed, fixed)
    assert len(open_flags(RULE, v, "2020-01-22T08:59:59+00:00")) == 1
    (flag,) = flags(RULE, v, "2020-01-22T09:00:00+00:00")
    assert flag.status == "resolved" and flag.resolved_by == fixed.id
    assert flag.resolved_at == t("2020-01-22T09:00:00+00:00")
    assert flag.due == t("2020-01-20T16:00:00+00:00")


def test_correction_making_the_worker_the_authoriser_raises_from_the_correction() -> None:
    closed = closure("REF-5", "2020-01-20T16:00:00+00:00", "W-edt", "TM-2")
    broke = correct(closed, {"authorised_by": "W-edt"}, "2020-01-22T09:00:00+00:00")
    v = view(closed, broke)
    assert flags(RULE, v, "2020-01-22T08:59:59+00:00") == []
    (flag,) = open_flags(RULE, v, "2020-01-22T09:00:00+00:00")
    assert flag.due == t("2020-01-22T09:00:00+00:00")


def test_correction_by_another_agency_is_ignored() -> None:
    closed = closure("REF-5", "2020-01-20T16:00:00+00:00", "W-edt", "W-edt")
    forged = correct(
        closed, {"authorised_by": "TM-2"}, "2020-01-22T09:00:00+00:00", source="police/avon-somerset"
    )
    assert len(open_flags(RULE, view(closed, forged), "2020-02-01T00:00:00+00:00")) == 1


def test_withdrawn_earlier_closure_no_longer_counts() -> None:
    first = closure("REF-1", "2024-01-10T10:00:00+00:00", "W-1", "TM-1")
    second = closure("REF-2", "2024-02-10T10:00:00+00:00", "W-2", "TM-1")
    gone = withdraw(first, "2024-02-12T10:00:00+00:00")
    v = view(first, second, gone)
    assert len(flags(RULE, v, "2024-02-11T00:00:00+00:00")) == 1
    assert flags(RULE, v, "2024-02-12T10:00:00+00:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        closure("REF-1", "2024-01-10T10:00:00+00:00", "W-1", "W-1"),
        closure("REF-2", "2024-02-10T10:00:00+00:00", "W-2", "W-1"),
        closure("REF-3", "2024-03-10T10:00:00+00:00", "W-3", "TM-9"),
    ]
    assert_order_independent(RULE, events, "2024-04-01T00:00:00+01:00")
