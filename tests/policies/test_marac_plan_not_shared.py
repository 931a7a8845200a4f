"""marac-plan-not-shared: one working day after a plan is agreed, every agency aware of the child,
the GP practice of the child or of a person in the plan, and the child's school are among the
``to`` of the plan's ``marac.plan.shared`` events; one flag per missing agency (issue 3; Family A
rec. 7)."""

from __future__ import annotations

from policies.engine import Flag
from policies.marac_plan_not_shared import MaracPlanNotShared
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = MaracPlanNotShared()
POLICE = "police/avon-somerset"
CSC = "csc/somerset"
MARAC = "marac/somerset"
EARLY = "2020-01-06T10:00:00Z"
MONDAY = "2020-03-02T10:00:00Z"
DUE = "2020-03-04T00:00:00Z"
LATER = "2021-06-30T00:00:00Z"
EXPECTED = [CSC, "gp/L85001", "gp/Y00001", POLICE, "school/100001"]


def background(at: str = EARLY) -> list[Event]:
    """Police and CSC aware; the child's and the father's GPs known; the child at school."""
    data = {"incident_ref": "INC-1", "children_present": True, "domestic_abuse": True, "parties": []}
    return [
        ev("incident.reported", data, at, source=POLICE),
        ev("person.linked", {"person": "F-1", "role": "father"}, at, source=CSC),
        ev("gp.registered", {"person": "C-1", "practice": "L85001"}, at, source=CSC),
        ev("gp.registered", {"person": "F-1", "practice": "Y00001"}, at, source=CSC),
        ev("school.enrolled", {"school": "100001"}, at, source=CSC),
    ]


def plan(at: str = MONDAY, *, ref: str = "MP-1", persons: tuple[str, ...] = ("M-1", "F-1")) -> Event:
    data = {"plan_ref": ref, "meeting_date": at[:10], "persons": list(persons), "actions": []}
    return ev("marac.plan.agreed", data, at, source=MARAC)


def shared(to: list[str], at: str, *, ref: str = "MP-1") -> Event:
    return ev("marac.plan.shared", {"plan_ref": ref, "to": to}, at, source=MARAC)


def missing(found: list[Flag]) -> list[str]:
    return [f.detail.rsplit(" ", 1)[-1] for f in found]


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_one_working_day_after_the_plan_one_flag_per_agency() -> None:
    p = plan()
    v = view(*background(), p)
    assert flags(RULE, v, "2020-03-03T23:59:59Z") == []
    assert evaluation(RULE, v, "2020-03-03T23:59:59Z").next_due == t(DUE)
    found = flags(RULE, v, "2020-03-04T00:00:01Z")
    assert sorted(missing(found)) == EXPECTED
    assert {(f.status, f.due, f.evidence, f.concerns) for f in found} == {("open", t(DUE), (p.id,), (MARAC,))}
    assert len({f.id for f in found}) == len(EXPECTED)


def test_shared_with_all_one_second_before_the_deadline_is_quiet() -> None:
    v = view(*background(), plan(), shared(EXPECTED, "2020-03-03T23:59:59Z"))
    assert flags(RULE, v, LATER) == []


def test_sharing_across_several_events_counts() -> None:
    v = view(
        *background(),
        plan(),
        shared(EXPECTED[:2], "2020-03-02T12:00:00Z"),
        shared(EXPECTED[2:], "2020-03-03T12:00:00Z"),
    )
    assert flags(RULE, v, LATER) == []


def test_only_the_missing_agency_is_flagged() -> None:
    v = view(*background(), plan(), shared([a for a in EXPECTED if a != "gp/Y00001"], "2020-03-02T12:00:00Z"))
    assert missing(flags(RULE, v, LATER)) == ["gp/Y00001"]


def test_late_share_resolves_with_its_id() -> None:
    late = shared(["school/100001"], "2020-03-04T00:00:01Z")
    v = view(
        *background(),
        plan(),
        shared([a for a in EXPECTED if a != "school/100001"], "2020-03-02T12:00:00Z"),
        late,
    )
    assert only(flags(RULE, v, "2020-03-04T00:00:00.500Z")).status == "open"
    flag = only(flags(RULE, v, LATER))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", late.id, late.recordedtime)


def test_share_of_another_plan_does_not_count() -> None:
    v = view(*background(), plan(), shared(EXPECTED, "2020-03-02T12:00:00Z", ref="MP-2"))
    assert sorted(missing(flags(RULE, v, LATER))) == EXPECTED


def test_gp_of_someone_outside_the_plan_is_not_expected() -> None:
    v = view(
        *background(), plan(persons=("M-1",)), shared([CSC, "gp/L85001", POLICE, "school/100001"], MONDAY)
    )
    assert flags(RULE, v, LATER) == []


def test_notified_agency_is_aware_and_marac_itself_is_not_expected() -> None:
    note = ev("notification.sent", {"to": "idva/somerset", "about": ["INC-1"]}, EARLY, source=POLICE)
    v = view(*background(), note, plan(), shared(EXPECTED, MONDAY))
    assert missing(flags(RULE, v, LATER)) == ["idva/somerset"]


def test_partnership_events_do_not_make_the_partnership_expected() -> None:
    ack = ev(
        "flag.acknowledged",
        {"flag": "6f1f8f4e-5d7a-4c1e-9a8e-2b1f0d0c5a11", "by": "DSL"},
        EARLY,
        source="partnership/somerset",
    )
    assert flags(RULE, view(*background(), ack, plan(), shared(EXPECTED, MONDAY)), LATER) == []


def test_christmas_2019() -> None:
    v = view(*background("2019-01-01T10:00:00Z"), plan("2019-12-24T15:00:00Z"))
    assert flags(RULE, v, "2019-12-27T23:59:59Z") == []
    assert {f.due for f in flags(RULE, v, "2019-12-28T00:00:01Z")} == {t("2019-12-28T00:00:00Z")}


def test_easter_2020() -> None:
    v = view(*background(), plan("2020-04-09T10:00:00Z"))
    assert flags(RULE, v, "2020-04-14T22:59:59Z") == []
    assert {f.due for f in flags(RULE, v, "2020-04-14T23:00:01Z")} == {t("2020-04-14T23:00:00Z")}


def test_2330_utc_in_summer_is_the_next_london_day() -> None:
    p = plan("2020-06-01T23:30:00Z")
    v = view(*background(), p)
    assert flags(RULE, v, "2020-06-03T22:59:59Z") == []
    assert {f.due for f in flags(RULE, v, "2020-06-03T23:00:01Z")} == {t("2020-06-03T23:00:00Z")}
    assert flags(RULE, view(*background(), p, shared(EXPECTED, "2020-06-03T22:59:59Z")), LATER) == []
    late = flags(RULE, view(*background(), p, shared(EXPECTED, "2020-06-03T23:00:01Z")), LATER)
    assert {f.status for f in late} == {"resolved"}


def test_clocks_change_inside_the_window() -> None:
    back = view(*background(), plan("2020-10-23T12:00:00Z"))
    assert flags(RULE, back, "2020-10-26T23:59:59Z") == []
    assert {f.due for f in flags(RULE, back, "2020-10-27T00:00:01Z")} == {t("2020-10-27T00:00:00Z")}
    forward = view(*background(), plan("2020-03-27T12:00:00Z"))
    assert flags(RULE, forward, "2020-03-30T22:59:59Z") == []
    assert {f.due for f in flags(RULE, forward, "2020-03-30T23:00:01Z")} == {t("2020-03-30T23:00:00Z")}


def test_withdrawn_share_reopens_the_gap() -> None:
    s = shared(EXPECTED, "2020-03-02T12:00:00Z")
    v = view(*background(), plan(), s, withdraw(s, "2020-03-10T10:00:00Z"))
    assert flags(RULE, v, "2020-03-10T09:59:59Z") == []
    assert sorted(missing(flags(RULE, v, "2020-03-10T10:00:00Z"))) == EXPECTED


def test_withdrawn_plan_no_longer_counts() -> None:
    p = plan()
    v = view(*background(), p, withdraw(p, "2020-03-10T10:00:00Z"))
    assert len(flags(RULE, v, "2020-03-10T09:59:59Z")) == len(EXPECTED)
    assert flags(RULE, v, "2020-03-10T10:00:00Z") == []


def test_correction_of_the_share_adds_the_agency_from_then() -> None:
    s = shared(EXPECTED[:-1], "2020-03-02T12:00:00Z")
    v = view(*background(), plan(), s, correct(s, {"to": EXPECTED}, "2020-03-10T10:00:00Z"))
    assert missing(flags(RULE, v, "2020-03-10T09:59:59Z")) == ["school/100001"]
    assert flags(RULE, v, "2020-03-10T10:00:00Z") == []


def test_correction_of_the_plan_persons_changes_the_expected_gps() -> None:
    p = plan()
    s = shared([CSC, "gp/L85001", POLICE, "school/100001"], MONDAY)
    v = view(*background(), p, s, correct(p, {"persons": ["M-1"]}, "2020-03-10T10:00:00Z"))
    assert missing(flags(RULE, v, "2020-03-10T09:59:59Z")) == ["gp/Y00001"]
    assert flags(RULE, v, "2020-03-10T10:00:00Z") == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    plan = {
        "plan_ref": "M-1", "meeting_date": "2020-03-02", "persons": ["M-1"],
        "actions": [{"agency": POLICE, "action": "flag address"}],
    }  # fmt: skip
    events = [
        ev("incident.reported", {"incident_ref": "INC-1", "children_present": True, "domestic_abuse": True,
                                 "parties": []}, EARLY, source=POLICE),
        ev("gp.registered", {"person": "M-1", "practice": "Y00001"}, EARLY, source=CSC),
        ev("school.enrolled", {"school": "100001"}, EARLY, source="school/100001"),
        ev("marac.plan.agreed", plan, MONDAY, source=MARAC),
        ev("marac.plan.shared", {"plan_ref": "M-1", "to": [POLICE]}, MONDAY, source=MARAC),
        ev("marac.plan.shared", {"plan_ref": "M-1", "to": [CSC]}, "2020-03-10T10:00:00Z", source=MARAC),
    ]  # fmt: skip
    assert_order_independent(RULE, events, LATER)
