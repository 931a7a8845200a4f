"""The six fixes of issue 14, rule by rule (each also pinned by a scenario in scenarios/):
current school, "referred to health" in a triage outcome, repeat incidents and closed referrals,
GP notifications owed to the family as defined. (MARAC plan: test_interpretations; care
leavers: test_care_leaver_parent_unsupported.)"""

from __future__ import annotations

from policies.gp_not_notified import GpNotNotified
from policies.repeat_incidents import RepeatIncidents
from policies.school_not_notified import SchoolNotNotified
from policies.vague_referral_destination import VagueReferralDestination
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, view

POLICE, CSC, GP = "police/avon-somerset", "csc/somerset", "gp/L85001"
LATER = "2024-12-31T00:00:00Z"


def incident(at: str, ref: str = "INC-1", parties: tuple[tuple[str, str], ...] = ()) -> Event:
    data = {
        "incident_ref": ref, "children_present": True, "domestic_abuse": True,
        "parties": [{"person": p, "role": r} for p, r in parties],
    }  # fmt: skip
    return ev("incident.reported", data, at, source=POLICE)


def test_a_school_the_child_left_is_not_owed_the_incident_the_new_one_is() -> None:
    enrolled = ev("school.enrolled", {"school": "100001"}, "2023-09-04T09:00:00Z", source="school/100001")
    left = ev(
        "school.left", {"school": "100001", "reason": "moved"}, "2024-02-09T15:00:00Z", source="school/100001"
    )
    new = ev("school.enrolled", {"school": "100002"}, "2024-02-26T09:00:00Z", source="school/100002")
    i = incident("2024-03-04T21:00:00Z")
    found = flags(SchoolNotNotified(), view(enrolled, left, new, i), LATER)
    assert [f.detail.split()[0] for f in found] == ["school/100002"]
    assert len(flags(SchoolNotNotified(), view(enrolled, i), LATER)) == 1  # never left: still owed
    back = ev("school.enrolled", {"school": "100001"}, "2024-03-01T09:00:00Z", source="school/100001")
    assert len(flags(SchoolNotNotified(), view(enrolled, left, back, i), LATER)) == 1
    after = ev("school.left", {"school": "100001"}, "2024-03-05T15:00:00Z", source="school/100001")
    assert len(flags(SchoolNotNotified(), view(enrolled, i, after), LATER)) == 1  # left after the incident


def test_referred_to_health_in_a_triage_outcome_is_vague_until_corrected() -> None:
    data = {
        "incident_ref": "INC-1",
        "forum": "DAT",
        "outcome": "Referred to health",
        "referred_to": ["health", GP],
    }
    triage = ev("incident.triaged", data, "2024-03-05T09:30:00Z", source=POLICE)
    (flag,) = flags(VagueReferralDestination(), view(triage), LATER)
    assert (flag.status, flag.evidence) == ("open", (triage.id,))
    assert flag.detail == "triage of incident INC-1 is addressed to 'health'"
    fix = correct(triage, {"referred_to": ["phn/somerset", GP]}, "2024-03-06T09:00:00Z")
    (resolved,) = flags(VagueReferralDestination(), view(triage, fix), LATER)
    assert (resolved.status, resolved.resolved_by) == ("resolved", fix.id)
    named = ev("incident.triaged", {**data, "referred_to": [GP]}, "2024-03-05T09:30:00Z", source=POLICE)
    assert flags(VagueReferralDestination(), view(named), LATER) == []


def test_a_referral_closed_before_the_third_incident_does_not_answer_the_pattern() -> None:
    i1, i2 = incident("2024-01-10T21:00:00Z", "INC-1"), incident("2024-02-10T21:00:00Z", "INC-2")
    made = ev("referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "DA"}, "2024-01-11T10:00:00Z",
              source=POLICE)  # fmt: skip
    closure = {
        "referral_ref": "R-1", "outcome": "nfa", "reason": "mother protective", "persons_contacted": [],
        "worked_by": "SW", "authorised_by": "TM",
    }  # fmt: skip
    closed = ev("referral.closed", closure, "2024-01-20T10:00:00Z", source=CSC)
    i3 = incident("2024-03-04T21:00:00Z", "INC-3")
    (flag,) = flags(RepeatIncidents(), view(i1, i2, made, closed, i3), LATER)
    assert flag.status == "open"
    assert flags(RepeatIncidents(), view(i1, i2, made, i3), LATER) == []  # still open: it answers
    closed_after = ev("referral.closed", closure, "2024-03-10T10:00:00Z", source=CSC)
    assert flags(RepeatIncidents(), view(i1, i2, made, closed_after, i3), LATER) == []


def test_gp_notification_is_owed_to_the_child_the_parties_and_parent_figures_living_with_the_child() -> None:
    jan = "2024-01-02T10:00:00Z"
    links = [
        ev("person.linked", {"person": "M-1", "role": "mother", "lives_with_child": True}, jan, source=CSC),
        ev("person.linked", {"person": "F-1", "role": "father", "lives_with_child": False}, jan, source=CSC),
        ev("person.linked", {"person": "S-1", "role": "step-parent"}, jan, source=CSC),  # household unknown
    ]
    gps = [
        ev("gp.registered", {"person": person, "practice": practice}, "2024-01-02T10:00:00Z", source=CSC)
        for person, practice in (("C-1", "C00001"), ("M-1", "M00001"), ("F-1", "F00001"), ("S-1", "S00001"),
                                 ("N-1", "N00001"))
    ]  # fmt: skip
    # Mother and her new partner, the child absent: the non-resident father's GP is not owed it.
    i = incident("2024-03-04T21:00:00Z", parties=(("M-1", "victim"), ("N-1", "alleged-perpetrator")))
    owed = sorted(f.detail.split()[0] for f in flags(GpNotNotified(), view(*links, *gps, i), LATER))
    assert owed == ["gp/C00001", "gp/M00001", "gp/N00001", "gp/S00001"]
    # A party is owed it wherever they live.
    j = incident("2024-03-04T21:00:00Z", parties=(("M-1", "victim"), ("F-1", "alleged-perpetrator")))
    assert "gp/F00001" in {f.detail.split()[0] for f in flags(GpNotNotified(), view(*links, *gps, j), LATER)}
