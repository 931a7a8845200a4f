"""Issue 14 rules about referrals and the child protection process: step-down-not-taken-up,
referral-not-acknowledged, assessment-overdue, conference-overdue. Each fires, stays quiet when
the work is done in time, and is resolved by late work (Monday 4 March 2024 onwards)."""

from __future__ import annotations

from typing import Any

from policies.assessment_overdue import AssessmentOverdue
from policies.conference_overdue import ConferenceOverdue
from policies.referral_not_acknowledged import ReferralNotAcknowledged
from policies.step_down_not_taken_up import StepDownNotTakenUp
from policies.view import Event
from tests.policies.helpers import ev, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

POLICE, CSC, PHN = "police/avon-somerset", "csc/somerset", "phn/somerset"
MONDAY = "2024-03-04T10:00:00Z"
LATER = "2024-12-31T00:00:00Z"


def closure(outcome: str = "step-down", to: str = PHN) -> Event:
    data: dict[str, Any] = {
        "referral_ref": "R-1", "outcome": outcome, "reason": "needs met by universal services",
        "persons_contacted": ["M-1"], "worked_by": "SW1", "authorised_by": "TM1",
        "step_down": {"to": to, "plan": "HV visits", "actions": ["visit fortnightly"]},
    }  # fmt: skip
    return ev("referral.closed", data, MONDAY, source=CSC)


def contact(at: str, source: str = PHN) -> Event:
    return ev(
        "contact.recorded", {"person": "M-1", "practitioner": "HV", "mode": "in-person"}, at, source=source
    )


def test_step_down_not_taken_up_fires_after_ten_working_days_and_late_contact_resolves() -> None:
    c = closure()
    assert flags(StepDownNotTakenUp(), view(c), "2024-03-18T23:59:59Z") == []
    (flag,) = flags(StepDownNotTakenUp(), view(c), "2024-03-19T00:00:00Z")
    assert (flag.status, flag.evidence, flag.concerns) == ("open", (c.id,), (CSC, PHN))
    late = contact("2024-03-20T10:00:00Z")
    (resolved,) = flags(StepDownNotTakenUp(), view(c, late), LATER)
    assert (resolved.status, resolved.resolved_by) == ("resolved", late.id)


def test_step_down_taken_up_in_time_by_the_receiving_agency_only() -> None:
    c = closure()
    assert flags(StepDownNotTakenUp(), view(c, contact("2024-03-18T12:00:00Z")), LATER) == []
    ack = ev("referral.acknowledged", {"referral_ref": "R-1", "decision": "accepted"}, "2024-03-05T09:00:00Z",
             source=PHN)  # fmt: skip
    assert flags(StepDownNotTakenUp(), view(c, ack), LATER) == []
    other = ev("referral.acknowledged", {"referral_ref": "R-9"}, "2024-03-05T09:00:00Z", source=PHN)
    assert len(flags(StepDownNotTakenUp(), view(c, other), LATER)) == 1
    assert (
        len(flags(StepDownNotTakenUp(), view(c, contact("2024-03-05T09:00:00Z", source=POLICE)), LATER)) == 1
    )
    assert flags(StepDownNotTakenUp(), view(closure(outcome="nfa")), LATER) == []
    assert flags(StepDownNotTakenUp(), view(closure(to="health")), LATER) == []


def referral(to: str = CSC, ref: str = "R-1") -> Event:
    return ev("referral.made", {"referral_ref": ref, "to": to, "reason": "DA"}, MONDAY, source=POLICE)


def test_referral_not_acknowledged_fires_after_one_working_day() -> None:
    r = referral()
    assert flags(ReferralNotAcknowledged(), view(r), "2024-03-05T23:59:59Z") == []
    (flag,) = flags(ReferralNotAcknowledged(), view(r), "2024-03-06T00:00:00Z")
    assert (flag.status, flag.concerns) == ("open", (CSC, POLICE))
    late = ev("referral.acknowledged", {"referral_ref": "R-1"}, "2024-03-07T09:00:00Z", source=CSC)
    assert [f.status for f in flags(ReferralNotAcknowledged(), view(r, late), LATER)] == ["resolved"]


def test_referral_answered_in_time_by_acknowledgement_closure_or_decision_is_quiet() -> None:
    r = referral()
    answers = [
        ev("referral.acknowledged", {"referral_ref": "R-1"}, "2024-03-05T16:00:00Z", source=CSC),
        ev("assessment.started", {"kind": "child-and-family"}, "2024-03-05T16:00:00Z", source=CSC),
        ev(
            "strategy-discussion.held",
            {"discussion_ref": "SD-1", "decision": "no-further-action"},
            "2024-03-05T16:00:00Z",
            source=CSC,
        ),
    ]
    for answer in answers:
        assert flags(ReferralNotAcknowledged(), view(r, answer), LATER) == [], answer.type
    wrong = ev("referral.acknowledged", {"referral_ref": "R-2"}, "2024-03-05T16:00:00Z", source=CSC)
    assert len(flags(ReferralNotAcknowledged(), view(r, wrong), LATER)) == 1
    assert flags(ReferralNotAcknowledged(), view(referral(to="health")), LATER) == []


def started(ref: str | None = "CFA-1", kind: str = "child-and-family") -> Event:
    data = {"kind": kind, **({"assessment_ref": ref} if ref else {})}
    return ev("assessment.started", data, MONDAY, source=CSC)


def completed(at: str, ref: str | None = "CFA-1") -> Event:
    data = {"kind": "child-and-family", "persons_seen": ["M-1"], **({"assessment_ref": ref} if ref else {})}
    return ev("assessment.completed", data, at, source=CSC)


def test_assessment_overdue_after_45_working_days_over_easter_and_the_may_bank_holiday() -> None:
    s = started()
    assert flags(AssessmentOverdue(), view(s), "2024-05-09T22:59:59Z") == []
    (flag,) = flags(AssessmentOverdue(), view(s), "2024-05-09T23:00:00Z")
    assert flag.due == t("2024-05-09T23:00:00Z")  # end of Thursday 9 May, BST
    late = completed("2024-05-20T10:00:00Z")
    assert [f.status for f in flags(AssessmentOverdue(), view(s, late), LATER)] == ["resolved"]


def test_assessment_completed_in_time_with_its_reference_is_quiet() -> None:
    s = started()
    assert flags(AssessmentOverdue(), view(s, completed("2024-05-09T12:00:00Z")), LATER) == []
    assert (
        len(flags(AssessmentOverdue(), view(s, completed("2024-05-09T12:00:00Z", ref="CFA-2")), LATER)) == 1
    )
    no_ref = started(ref=None)
    assert flags(AssessmentOverdue(), view(no_ref, completed("2024-04-09T12:00:00Z", ref=None)), LATER) == []
    assert flags(AssessmentOverdue(), view(started(kind="FHNA")), LATER) == []
    assert flags(AssessmentOverdue(), view(s, withdraw(s, "2024-03-05T10:00:00Z")), LATER) == []


def discussion(decision: str = "initial-conference") -> Event:
    return ev(
        "strategy-discussion.held", {"discussion_ref": "SD-1", "decision": decision}, MONDAY, source=CSC
    )


def conference(at: str, kind: str = "initial", **extra: str) -> Event:
    return ev("conference.held", {"conference_ref": "ICPC-1", "kind": kind, **extra}, at, source=CSC)


def test_conference_overdue_after_15_working_days() -> None:
    d = discussion()
    assert flags(ConferenceOverdue(), view(d), "2024-03-25T23:59:59Z") == []
    (flag,) = flags(ConferenceOverdue(), view(d), "2024-03-26T00:00:00Z")
    assert (flag.status, flag.concerns) == ("open", (CSC,))
    late = conference("2024-03-27T10:00:00Z")
    assert [f.status for f in flags(ConferenceOverdue(), view(d, late), LATER)] == ["resolved"]


def test_conference_in_time_or_not_decided_is_quiet() -> None:
    d = discussion()
    assert (
        flags(ConferenceOverdue(), view(d, conference("2024-03-25T10:00:00Z", discussion_ref="SD-1")), LATER)
        == []
    )
    assert (
        len(flags(ConferenceOverdue(), view(d, conference("2024-03-25T10:00:00Z", kind="review")), LATER))
        == 1
    )
    other = conference("2024-03-25T10:00:00Z", discussion_ref="SD-9")
    assert len(flags(ConferenceOverdue(), view(d, other), LATER)) == 1
    assert flags(ConferenceOverdue(), view(discussion("section-47-no-conference")), LATER) == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [closure(), contact("2024-03-25T10:00:00Z"), referral(to=PHN), discussion(), started()]
    for rule in (StepDownNotTakenUp(), ReferralNotAcknowledged(), ConferenceOverdue(), AssessmentOverdue()):
        assert_order_independent(rule, events, LATER)
