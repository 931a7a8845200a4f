"""repeat-incidents: the third domestic-abuse incident within 365 days, with no referral to MARAC
or CSC and no child-and-family assessment recorded since the first of them (issue 3; Child
Charlie 1.4, 5)."""

from __future__ import annotations

from policies.engine import Flag
from policies.repeat_incidents import RepeatIncidents
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = RepeatIncidents()
POLICE = "police/avon-somerset"
LATER = "2022-06-30T00:00:00Z"
FIRST, SECOND, THIRD = "2020-01-10T10:00:00Z", "2020-05-10T10:00:00Z", "2020-12-01T10:00:00Z"


def incident(at: str, ref: str, *, domestic_abuse: bool = True, recorded: str | None = None) -> Event:
    data = {"incident_ref": ref, "children_present": True, "domestic_abuse": domestic_abuse, "parties": []}
    return ev("incident.reported", data, at, source=POLICE, recorded=recorded)


def three() -> list[Event]:
    return [incident(FIRST, "INC-1"), incident(SECOND, "INC-2"), incident(THIRD, "INC-3")]


def referral(to: str, at: str) -> Event:
    return ev("referral.made", {"referral_ref": "R-1", "to": to, "reason": "DA"}, at, source=POLICE)


def assessment(kind: str, at: str) -> Event:
    return ev("assessment.completed", {"kind": kind, "persons_seen": ["M-1"]}, at, source="csc/somerset")


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_at_the_third_incident() -> None:
    incs = three()
    v = view(*incs)
    assert flags(RULE, v, "2020-12-01T09:59:59Z") == []
    flag = only(flags(RULE, v, THIRD))
    assert (flag.status, flag.rule, flag.due) == ("open", "repeat-incidents", t(THIRD))
    assert set(flag.evidence) == {e.id for e in incs}
    assert flag.concerns == (POLICE,)
    assert all(ref in flag.detail for ref in ("INC-1", "INC-2", "INC-3"))


def test_two_incidents_are_quiet() -> None:
    assert flags(RULE, view(*three()[:2]), LATER) == []


def test_exactly_365_days_fires_and_one_second_more_does_not() -> None:
    start = incident("2020-01-01T10:00:00Z", "INC-1")
    mid = incident("2020-06-01T10:00:00Z", "INC-2")
    assert (
        only(flags(RULE, view(start, mid, incident("2020-12-31T10:00:00Z", "INC-3")), LATER)).status == "open"
    )
    assert flags(RULE, view(start, mid, incident("2020-12-31T10:00:01Z", "INC-3")), LATER) == []


def test_window_slides_to_later_incidents() -> None:
    old = incident("2018-01-10T10:00:00Z", "INC-0")
    incs = three()
    flag = only(flags(RULE, view(old, *incs), LATER))
    assert set(flag.evidence) == {e.id for e in incs}


def test_incidents_that_are_not_domestic_abuse_do_not_count() -> None:
    incs = [*three()[:2], incident(THIRD, "INC-3", domestic_abuse=False)]
    assert flags(RULE, view(*incs), LATER) == []


def test_referral_to_csc_or_marac_since_the_first_is_quiet() -> None:
    for to in ("csc/somerset", "marac/somerset"):
        assert flags(RULE, view(*three(), referral(to, "2020-02-01T10:00:00Z")), LATER) == []


def test_child_and_family_assessment_since_the_first_is_quiet() -> None:
    assert flags(RULE, view(*three(), assessment("child-and-family", "2020-02-01T10:00:00Z")), LATER) == []


def test_other_responses_do_not_count() -> None:
    v = view(
        *three(), referral("phn/somerset", "2020-02-01T10:00:00Z"), assessment("DASH", "2020-02-01T10:00:00Z")
    )
    assert only(flags(RULE, v, LATER)).status == "open"


def test_response_before_the_first_incident_does_not_count() -> None:
    v = view(*three(), referral("csc/somerset", "2020-01-10T09:59:59Z"))
    assert only(flags(RULE, v, LATER)).status == "open"


def test_response_at_the_first_and_at_the_third_incident_count() -> None:
    assert flags(RULE, view(*three(), referral("csc/somerset", FIRST)), LATER) == []
    assert flags(RULE, view(*three(), referral("csc/somerset", THIRD)), LATER) == []


def test_later_response_resolves() -> None:
    r = referral("csc/somerset", "2020-12-01T10:00:01Z")
    v = view(*three(), r)
    assert only(flags(RULE, v, THIRD)).status == "open"
    flag = only(flags(RULE, v, LATER))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", r.id, r.recordedtime)


def test_a_fourth_incident_does_not_raise_a_second_flag() -> None:
    assert len(flags(RULE, view(*three(), incident("2021-01-05T10:00:00Z", "INC-4")), LATER)) == 1


def test_three_new_incidents_after_a_response_raise_a_new_flag() -> None:
    r = referral("csc/somerset", "2020-12-02T10:00:00Z")
    more = [incident(f"2021-0{m}-05T10:00:00Z", f"INC-{m + 3}") for m in (1, 2, 3)]
    v = view(*three(), r, *more[:2])
    assert [f.status for f in flags(RULE, v, LATER)] == ["resolved"]
    found = flags(RULE, view(*three(), r, *more), LATER)
    assert [f.status for f in found] == ["resolved", "open"]
    assert set(found[1].evidence) == {e.id for e in more}


def test_withdrawn_incident_no_longer_counts() -> None:
    incs = three()
    v = view(*incs, withdraw(incs[1], "2020-12-05T10:00:00Z"))
    assert only(flags(RULE, v, "2020-12-05T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-12-05T10:00:00Z") == []


def test_correction_to_not_domestic_abuse_removes_the_gap() -> None:
    incs = three()
    v = view(*incs, correct(incs[0], {"domestic_abuse": False}, "2020-12-05T10:00:00Z"))
    assert only(flags(RULE, v, "2020-12-05T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-12-05T10:00:00Z") == []


def test_withdrawn_response_reopens_the_gap() -> None:
    r = referral("csc/somerset", "2020-02-01T10:00:00Z")
    v = view(*three(), r, withdraw(r, "2020-12-05T10:00:00Z"))
    assert flags(RULE, v, "2020-12-05T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-12-05T10:00:00Z")).status == "open"


def test_correction_of_the_referral_destination_counts_from_then() -> None:
    r = referral("health", "2020-02-01T10:00:00Z")
    v = view(*three(), r, correct(r, {"to": "csc/somerset"}, "2020-12-05T10:00:00Z"))
    assert only(flags(RULE, v, "2020-12-05T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-12-05T10:00:00Z") == []


def test_gap_begins_when_the_third_incident_is_known() -> None:
    # The middle incident is recorded late: the pattern is only visible from then.
    late = "2021-01-20T10:00:00Z"
    incs = [incident(FIRST, "INC-1"), incident(SECOND, "INC-2", recorded=late), incident(THIRD, "INC-3")]
    assert flags(RULE, view(*incs), "2021-01-20T09:59:59Z") == []
    assert only(flags(RULE, view(*incs), late)).due == t(late)


def test_response_recorded_before_the_pattern_was_known_prevents_the_flag() -> None:
    # A CSC referral after the first incident but before the late-recorded one: no gap ever.
    late = "2021-01-20T10:00:00Z"
    incs = [incident(FIRST, "INC-1"), incident(SECOND, "INC-2", recorded=late), incident(THIRD, "INC-3")]
    assert flags(RULE, view(*incs, referral("csc/somerset", "2020-12-15T10:00:00Z")), LATER) == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [
        ev("incident.reported", {"incident_ref": f"INC-{n}", "children_present": True, "domestic_abuse": True,
                                 "parties": []}, f"2020-0{n}-02T22:00:00Z", source=POLICE)
        for n in range(1, 5)
    ] + [ev("referral.made", {"referral_ref": "R-1", "to": "csc/somerset", "reason": "pattern"},
            "2020-03-20T10:00:00Z", source=POLICE)]  # fmt: skip
    assert_order_independent(RULE, events, LATER)


def test_an_incident_reported_late_does_not_move_the_flag_raised_when_the_pattern_was_known() -> None:
    """v3: the flag raised at the third incident is the same flag (same id, same due) after an
    incident that happened between them is reported late; v2 re-cut its windows by the time
    the incidents happened and found the pattern under another key from then on."""
    incs = three()
    late = incident("2020-03-01T10:00:00Z", "INC-L", recorded="2020-12-20T10:00:00Z")
    before = only(flags(RULE, view(*incs, late), "2020-12-10T10:00:00Z"))
    after = only(flags(RULE, view(*incs, late), LATER))
    assert (after.id, after.due, after.evidence) == (before.id, t(THIRD), before.evidence)


def test_the_latest_three_recorded_are_the_pattern() -> None:
    """A response answers the patterns whose first incident came before it; once three
    incidents have been recorded since it, the pattern is there again."""
    incs = [*three(), incident("2020-12-20T10:00:00Z", "INC-4")]
    v = view(*incs, referral("csc/somerset", "2020-01-15T10:00:00Z"))
    assert flags(RULE, v, "2020-12-19T10:00:00Z") == []  # INC-1..3: the referral came after INC-1
    flag = only(flags(RULE, v, LATER))  # INC-2..4: nothing since INC-2
    assert set(flag.evidence) == {e.id for e in incs[1:]}
    assert flag.due == t("2020-12-20T10:00:00Z")


def test_three_incidents_more_than_a_year_apart_in_recorded_order_still_count_if_any_three_fit() -> None:
    """A late report completes a pattern among earlier incidents, not only the latest two."""
    a, b = incident("2020-01-10T10:00:00Z", "INC-A"), incident("2020-02-10T10:00:00Z", "INC-B")
    far = incident("2021-06-10T10:00:00Z", "INC-FAR")
    late = incident("2020-03-10T10:00:00Z", "INC-LATE", recorded="2021-06-20T10:00:00Z")
    flag = only(flags(RULE, view(a, b, far, late), LATER))
    assert set(flag.evidence) == {a.id, b.id, late.id}
    assert flag.due == t("2021-06-20T10:00:00Z")
