"""safety-plan-breached: contact with a person a safety plan excludes (Child Charlie 2.8, 2.11-2.13)."""

from __future__ import annotations

from policies.safety_plan_breached import SafetyPlanBreached
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = SafetyPlanBreached()
POLICE, PHN, CSC = "police/avon-somerset", "phn/somerset", "csc/somerset"
PLAN_AT = "2020-01-10T11:00:00+00:00"


def plan(at: str = PLAN_AT, contact: str = "none", ref: str = "SP-1", person: str = "P-dad") -> Event:
    return ev(
        "safety-plan.recorded",
        {"plan_ref": ref, "terms": [{"person": person, "contact": contact}]},
        at,
        source=PHN,
    )


def incident(at: str, present: bool = True, recorded: str | None = None) -> Event:
    data = {
        "incident_ref": "INC-6",
        "children_present": present,
        "domestic_abuse": True,
        "parties": [{"person": "P-mum", "role": "victim"}, {"person": "P-dad", "role": "perpetrator"}],
    }
    return ev("incident.reported", data, at, source=POLICE, recorded=recorded)


def arrangement(at: str, overnight: bool, person: str = "P-dad") -> Event:
    data = {"person": person, "overnight": overnight, "supervised_by": "P-gran"}
    return ev("contact-arrangement.recorded", data, at, source=CSC)


def test_incident_naming_the_excluded_person_breaches_from_when_it_is_recorded() -> None:
    p, i = plan(), incident("2020-01-20T19:00:00+00:00", recorded="2020-01-21T08:00:00+00:00")
    v = view(p, i)
    assert flags(RULE, v, "2020-01-21T07:59:59+00:00") == []
    (flag,) = open_flags(RULE, v, "2020-01-21T08:00:00+00:00")
    assert flag.due == t("2020-01-21T08:00:00+00:00")
    assert flag.evidence == tuple(sorted((p.id, i.id)))
    assert flag.concerns == (PHN, POLICE)
    assert "SP-1" in flag.detail


def test_contact_arrangement_with_the_excluded_person_breaches() -> None:
    (flag,) = flags(
        RULE, view(plan(), arrangement("2020-01-28T10:00:00+00:00", False)), "2020-02-01T00:00:00+00:00"
    )
    assert flag.concerns == (CSC, PHN)


def test_daytime_only_is_breached_by_overnight_contact_only() -> None:
    daytime = plan(contact="daytime-only")
    assert (
        flags(
            RULE, view(daytime, arrangement("2020-01-28T10:00:00+00:00", False)), "2020-02-01T00:00:00+00:00"
        )
        == []
    )
    assert (
        flags(RULE, view(daytime, incident("2020-01-28T19:00:00+00:00")), "2020-02-01T00:00:00+00:00") == []
    )
    assert (
        len(
            flags(
                RULE,
                view(daytime, arrangement("2020-01-28T10:00:00+00:00", True)),
                "2020-02-01T00:00:00+00:00",
            )
        )
        == 1
    )


def test_other_terms_people_and_absent_children_are_quiet() -> None:
    later = "2020-01-28T19:00:00+00:00"
    assert (
        flags(RULE, view(plan(contact="supervised"), arrangement(later, True)), "2020-02-01T00:00:00+00:00")
        == []
    )
    assert flags(RULE, view(plan(person="P-uncle"), incident(later)), "2020-02-01T00:00:00+00:00") == []
    assert flags(RULE, view(plan(), incident(later, present=False)), "2020-02-01T00:00:00+00:00") == []


def test_incident_that_happened_before_the_plan_is_no_breach_even_if_recorded_after() -> None:
    earlier = incident("2020-01-09T19:00:00+00:00", recorded="2020-01-12T09:00:00+00:00")
    assert flags(RULE, view(plan(), earlier), "2020-02-01T00:00:00+00:00") == []


def test_newer_version_of_the_same_plan_resolves_another_plan_does_not() -> None:
    breach = incident("2020-01-20T19:00:00+00:00")
    revised = plan("2020-01-23T10:00:00+00:00", contact="supervised")
    v = view(plan(), breach, revised)
    assert [f.status for f in flags(RULE, v, "2020-01-23T09:59:59+00:00")] == ["open"]
    (flag,) = flags(RULE, v, "2020-01-23T10:00:00+00:00")
    assert flag.status == "resolved" and flag.resolved_by == revised.id
    other = plan("2020-01-23T10:00:00+00:00", ref="SP-2")
    assert [f.status for f in flags(RULE, view(plan(), breach, other), "2020-02-01T00:00:00+00:00")] == [
        "open"
    ]


def test_plan_revised_after_the_incident_but_before_it_was_recorded_is_no_gap() -> None:
    breach = incident("2020-01-20T19:00:00+00:00", recorded="2020-01-24T09:00:00+00:00")
    revised = plan("2020-01-22T10:00:00+00:00", contact="supervised")
    assert flags(RULE, view(plan(), breach, revised), "2020-02-01T00:00:00+00:00") == []


def test_breach_judged_against_the_version_in_force_when_it_happened() -> None:
    relaxed = plan("2020-01-15T10:00:00+00:00", contact="overnight-allowed")
    later = arrangement("2020-01-28T10:00:00+00:00", True)
    assert flags(RULE, view(plan(), relaxed, later), "2020-02-01T00:00:00+00:00") == []


def test_withdrawn_plan_and_corrected_terms() -> None:
    p, breach = plan(), incident("2020-01-20T19:00:00+00:00")
    gone = withdraw(p, "2020-01-25T10:00:00+00:00")
    v = view(p, breach, gone)
    assert len(open_flags(RULE, v, "2020-01-25T09:59:59+00:00")) == 1
    assert flags(RULE, v, "2020-01-25T10:00:00+00:00") == []
    fixed = correct(p, {"terms": [{"person": "P-dad", "contact": "supervised"}]}, "2020-01-26T10:00:00+00:00")
    v = view(p, breach, fixed)
    assert len(open_flags(RULE, v, "2020-01-26T09:59:59+00:00")) == 1
    assert flags(RULE, v, "2020-01-26T10:00:00+00:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        plan(),
        incident("2020-01-20T19:00:00+00:00"),
        arrangement("2020-01-28T10:00:00+00:00", True),
        plan("2020-01-29T10:00:00+00:00", contact="daytime-only"),
        arrangement("2020-02-03T10:00:00+00:00", True),
    ]
    assert_order_independent(RULE, events, "2020-02-10T00:00:00+00:00")
