"""Issue 14 rules about the household and domestic-abuse risk: sibling-not-considered,
co-resident-perpetrator-no-safety-plan, high-risk-no-marac-referral."""

from __future__ import annotations

from typing import Any

from policies.co_resident_perpetrator_no_safety_plan import CoResidentPerpetratorNoSafetyPlan
from policies.high_risk_no_marac_referral import HighRiskNoMaracReferral
from policies.household import households
from policies.sibling_not_considered import SiblingNotConsidered
from policies.view import ChildView, Event
from tests.policies.helpers import REGISTERED, REGISTERED_AT, ev, flags, t, view
from tests.policies.ordering import assert_order_independent

POLICE, CSC, MARAC = "police/avon-somerset", "csc/somerset", "marac/somerset"
MONDAY = "2024-03-04T10:00:00Z"
LATER = "2024-12-31T00:00:00Z"


def incident(at: str = MONDAY, child: str = "C-1", ref: str = "INC-1", **risk: Any) -> Event:
    data = {
        "incident_ref": ref, "children_present": True, "domestic_abuse": True,
        "parties": [{"person": "M-1", "role": "victim"}, {"person": "P-1", "role": "alleged-perpetrator"}],
        **risk,
    }  # fmt: skip
    return ev("incident.reported", data, at, source=POLICE, child=child)


def link(child: str, person: str = "M-1", lives: bool = True, at: str = "2024-01-02T10:00:00Z") -> Event:
    role = "mother" if person == "M-1" else "parent's-partner"
    return ev(
        "person.linked",
        {"person": person, "role": role, "lives_with_child": lives},
        at,
        source=CSC,
        child=child,
    )


def household_view(*events: Event, child: str = "C-1") -> ChildView:
    by_child: dict[str, list[Event]] = {}
    for e in events:
        by_child.setdefault(e.subject, []).append(e)
    registered = dict.fromkeys(REGISTERED, REGISTERED_AT)
    return ChildView.build(child, by_child.get(child, []), registered, households(by_child).get(child, {}))


def test_sibling_not_considered_fires_for_a_child_sharing_a_co_resident_parent_figure() -> None:
    i = incident()
    v = household_view(link("C-1"), link("C-2"), link("C-3", lives=False), link("C-4", person="X-9"), i)
    assert [c.child for c in v.others()] == ["C-2", "C-3"]  # candidates: anyone naming M-1
    assert flags(SiblingNotConsidered(), v, "2024-03-05T23:59:59Z") == []
    (flag,) = flags(SiblingNotConsidered(), v, "2024-03-06T00:00:00Z")
    assert (flag.evidence, flag.concerns) == ((i.id,), (POLICE,))
    assert flag.detail == "incident.reported INC-1 not recorded for sibling C-2"


def test_sibling_with_an_event_naming_the_incident_is_quiet_and_a_late_one_resolves() -> None:
    base = [link("C-1"), link("C-2"), incident()]
    for_sibling = incident(child="C-2", at="2024-03-05T09:00:00Z")
    assert flags(SiblingNotConsidered(), household_view(*base, for_sibling), LATER) == []
    note = ev("notification.sent", {"to": "school/100001", "about": ["INC-1"]}, "2024-03-08T09:00:00Z",
              source=POLICE, child="C-2")  # fmt: skip
    (flag,) = flags(SiblingNotConsidered(), household_view(*base, note), LATER)
    assert (flag.status, flag.resolved_by) == ("resolved", note.id)


def test_referrals_count_and_a_sibling_linked_later_is_not_owed_an_old_incident() -> None:
    referral = ev("referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "DA"}, MONDAY, source=POLICE)
    (flag,) = flags(SiblingNotConsidered(), household_view(link("C-1"), link("C-2"), referral), LATER)
    assert "R-1" in flag.detail
    own = ev("referral.made", {"referral_ref": "R-2", "to": CSC, "reason": "DA"}, "2024-03-04T09:00:00Z",
             source=POLICE, child="C-2")  # fmt: skip
    assert flags(SiblingNotConsidered(), household_view(link("C-1"), link("C-2"), referral, own), LATER) == []
    elsewhere = ev("referral.made", {"referral_ref": "R-2", "to": "idva/somerset", "reason": "DA"},
                   "2024-03-04T09:00:00Z", source=POLICE, child="C-2")  # fmt: skip
    assert (
        len(
            flags(
                SiblingNotConsidered(), household_view(link("C-1"), link("C-2"), referral, elsewhere), LATER
            )
        )
        == 1
    )
    late_link = link("C-2", at="2024-04-01T10:00:00Z")
    assert flags(SiblingNotConsidered(), household_view(link("C-1"), late_link, incident()), LATER) == []
    # Without a household (a view built without candidates) the rule has nothing to say.
    assert flags(SiblingNotConsidered(), view(link("C-1"), incident()), LATER) == []


def test_sibling_flags_do_not_depend_on_delivery_order_or_history_as_of() -> None:
    events = [link("C-1"), link("C-2"), incident(), incident(child="C-2", at="2024-03-07T09:00:00Z")]
    early = flags(SiblingNotConsidered(), household_view(*events), "2024-03-06T12:00:00Z")
    assert [f.status for f in early] == ["open"]  # the sibling's incident was not yet recorded
    for order in (events, list(reversed(events))):
        assert [f.status for f in flags(SiblingNotConsidered(), household_view(*order), LATER)] == [
            "resolved"
        ]


def plan(at: str, person: str = "P-1") -> Event:
    data = {"plan_ref": "SP-1", "terms": [{"person": person, "contact": "supervised"}]}
    return ev("safety-plan.recorded", data, at, source=CSC)


def test_co_resident_perpetrator_second_incident_without_a_safety_plan() -> None:
    events = [link("C-1", person="P-1"), incident("2024-02-01T22:00:00Z", ref="INC-0"), incident()]
    rule = CoResidentPerpetratorNoSafetyPlan()
    assert flags(rule, view(*events), "2024-03-11T23:59:59Z") == []
    (flag,) = flags(rule, view(*events), "2024-03-12T00:00:00Z")
    assert flag.detail == "P-1 named in two incidents, lives with the child, no safety plan"
    late = plan("2024-03-14T10:00:00Z")
    assert [f.status for f in flags(rule, view(*events, late), LATER)] == ["resolved"]


def test_co_resident_perpetrator_quiet_with_a_plan_one_incident_or_living_apart() -> None:
    rule = CoResidentPerpetratorNoSafetyPlan()
    two = [incident("2024-02-01T22:00:00Z", ref="INC-0"), incident()]
    assert flags(rule, view(link("C-1", person="P-1"), *two, plan("2024-03-08T10:00:00Z")), LATER) == []
    assert (
        flags(rule, view(link("C-1", person="P-1"), *two, plan("2024-03-08T10:00:00Z", "M-1")), LATER) != []
    )
    assert flags(rule, view(link("C-1", person="P-1"), two[1]), LATER) == []
    assert flags(rule, view(link("C-1", person="P-1", lives=False), *two), LATER) == []
    moved_out = link("C-1", person="P-1", lives=False, at="2024-03-06T10:00:00Z")
    assert flags(rule, view(link("C-1", person="P-1"), *two, moved_out), LATER) == []


def test_high_risk_without_a_marac_referral() -> None:
    rule = HighRiskNoMaracReferral()
    for risk in ({"dash_risk": "high"}, {"dash_score": 14}, {"risk_tool": "DARA", "risk_level": "high"}):
        i = incident(**risk)
        assert flags(rule, view(i), "2024-03-05T23:59:59Z") == [], risk
        (flag,) = flags(rule, view(i), "2024-03-06T00:00:00Z")
        assert (flag.due, flag.concerns) == (t("2024-03-06T00:00:00Z"), (POLICE,))
    i = incident(dash_score=16)
    late = ev(
        "marac.referral.made", {"referral_ref": "MR-1", "to": MARAC}, "2024-03-07T10:00:00Z", source=POLICE
    )
    assert [f.status for f in flags(rule, view(i, late), LATER)] == ["resolved"]


def test_high_risk_referred_in_time_or_not_high_is_quiet() -> None:
    rule = HighRiskNoMaracReferral()
    in_time = ev(
        "marac.referral.made", {"referral_ref": "MR-1", "to": MARAC}, "2024-03-05T10:00:00Z", source=POLICE
    )
    assert flags(rule, view(incident(dash_risk="high"), in_time), LATER) == []
    as_referral = ev("referral.made", {"referral_ref": "R-1", "to": MARAC, "reason": "high risk"},
                     "2024-03-05T10:00:00Z", source=POLICE)  # fmt: skip
    assert flags(rule, view(incident(dash_risk="high"), as_referral), LATER) == []
    assert flags(rule, view(incident(dash_score=13, dash_risk="medium")), LATER) == []
    assert flags(rule, view(incident(risk_tool="DARA", risk_level="medium")), LATER) == []
    before = ev(
        "marac.referral.made", {"referral_ref": "MR-0", "to": MARAC}, "2024-01-05T10:00:00Z", source=POLICE
    )
    assert len(flags(rule, view(before, incident(dash_risk="high")), LATER)) == 1


def test_risk_flags_do_not_depend_on_delivery_order() -> None:
    events = [
        link("C-1", person="P-1"),
        incident("2024-02-01T22:00:00Z", ref="INC-0"),
        incident(dash_score=20),
    ]
    assert_order_independent(CoResidentPerpetratorNoSafetyPlan(), events, LATER)
    assert_order_independent(HighRiskNoMaracReferral(), events, LATER)
