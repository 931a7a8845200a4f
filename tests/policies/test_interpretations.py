"""Where the policies issue leaves room, the decision taken, pinned by a test each.

- A person's GP practice is their latest registration (one practice at a time in England).
- closure-without-father-contact judges a closure by who was known when it was recorded.
- marac-plan-not-shared checks the agencies involved one working day after the plan.
"""

from __future__ import annotations

from dataclasses import replace

from policies.closure_without_father_contact import ClosureWithoutFatherContact
from policies.gp_not_notified import GpNotNotified
from policies.marac_plan_not_shared import MaracPlanNotShared
from tests.policies.helpers import ev, open_flags, t, view

POLICE = "police/avon-somerset"
INCIDENT = {
    "incident_ref": "INC-1",
    "children_present": True,
    "domestic_abuse": True,
    "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-f", "role": "alleged-perpetrator"}],
}


def test_only_the_current_practice_is_owed_the_notification() -> None:
    moved = view(
        ev(
            "gp.registered",
            {"person": "C-1", "practice": "L85001"},
            "2024-01-08T09:00:00+00:00",
            source="gp/L85001",
        ),
        ev(
            "gp.registered",
            {"person": "C-1", "practice": "Y00002"},
            "2024-02-01T09:00:00+00:00",
            source="gp/Y00002",
        ),
        ev("incident.reported", INCIDENT, "2024-03-05T21:40:00+00:00", source=POLICE),
    )
    practices = [f.detail.split()[0] for f in open_flags(GpNotNotified(), moved, "2024-03-12T00:00:00+00:00")]
    assert practices == ["gp/Y00002"]


def test_a_closure_is_judged_by_who_was_known_when_it_was_recorded() -> None:
    closure = {
        "referral_ref": "R-1", "outcome": "nfa", "reason": "mother protective", "persons_contacted": ["P-m"],
        "worked_by": "W-1", "authorised_by": "M-1",
    }  # fmt: skip
    events = [
        ev("referral.made", {"referral_ref": "R-1", "to": "csc/somerset", "reason": "DA"},
           "2024-01-10T09:00:00+00:00", source=POLICE),
        ev("referral.closed", closure, "2024-01-20T09:00:00+00:00", source="csc/somerset"),
        ev("incident.reported", INCIDENT, "2024-07-01T21:00:00+00:00", source=POLICE),
    ]  # fmt: skip
    assert open_flags(ClosureWithoutFatherContact(), view(*events), "2024-08-01T00:00:00+00:00") == []
    known_before = replace(events[2], recordedtime=events[0].recordedtime)  # known in time
    flagged = open_flags(
        ClosureWithoutFatherContact(), view(known_before, *events[:2]), "2024-08-01T00:00:00+00:00"
    )
    assert [f.detail for f in flagged] == ["referral R-1 closed with no contact with P-f"]


def test_marac_plan_is_owed_to_agencies_that_become_involved_while_it_is_live() -> None:
    """Version 2 (issue 14): health visiting starting work three months after the plan is owed
    it one working day after its first event; an agency involved only after a newer plan is
    owed that plan, not the old one."""
    plan = {
        "plan_ref": "M-1", "meeting_date": "2024-03-04", "persons": ["P-m"],
        "actions": [{"agency": POLICE, "action": "flag address"}],
    }  # fmt: skip
    events = [
        ev("incident.reported", INCIDENT, "2024-03-01T21:00:00+00:00", source=POLICE),
        ev("marac.plan.agreed", plan, "2024-03-04T12:00:00+00:00", source="marac/somerset"),
        ev("contact.recorded", {"person": "P-m", "practitioner": "HV", "mode": "phone"},
           "2024-06-03T09:00:00+00:00", source="phn/somerset"),
    ]  # fmt: skip
    july = "2024-07-01T00:00:00+00:00"
    missing = sorted(f.detail for f in open_flags(MaracPlanNotShared(), view(*events), july))
    assert missing == [
        "MARAC plan M-1 not shared with phn/somerset",
        "MARAC plan M-1 not shared with police/avon-somerset",
    ]
    (phn,) = [f for f in open_flags(MaracPlanNotShared(), view(*events), "2024-07-01T00:00:00+00:00")
              if "phn" in f.detail]  # fmt: skip
    assert phn.due == t("2024-06-04T23:00:00Z")  # end of the next working day, BST
    newer = ev("marac.plan.agreed", {**plan, "plan_ref": "M-2"}, "2024-05-01T12:00:00+00:00",
               source="marac/somerset")  # fmt: skip
    later = sorted(
        f.detail for f in open_flags(MaracPlanNotShared(), view(*events, newer), "2024-07-01T00:00:00+00:00")
    )
    assert later == [
        "MARAC plan M-1 not shared with police/avon-somerset",
        "MARAC plan M-2 not shared with phn/somerset",
        "MARAC plan M-2 not shared with police/avon-somerset",
    ]
