"""incident-not-triaged: an incident with children present needs an ``incident.triaged`` with the
same ``incident_ref`` within one working day (issue 3; Child Charlie 2.4, 5)."""

from __future__ import annotations

from policies.engine import Flag
from policies.incident_not_triaged import IncidentNotTriaged
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = IncidentNotTriaged()
POLICE = "police/avon-somerset"
CSC = "csc/somerset"

MONDAY = "2020-03-02T10:00:00Z"
DUE = "2020-03-04T00:00:00Z"  # the end of Tuesday 3 March (GMT), plus 1 ms
LATER = "2021-01-31T00:00:00Z"


def incident(at: str, *, ref: str = "INC-1", children_present: bool = True) -> Event:
    data = {"incident_ref": ref, "children_present": children_present, "domestic_abuse": True, "parties": []}
    return ev("incident.reported", data, at, source=POLICE)


def triage(at: str, *, ref: str = "INC-1", source: str = CSC) -> Event:
    return ev(
        "incident.triaged",
        {"incident_ref": ref, "forum": "DAT", "outcome": "no further action"},
        at,
        source=source,
    )


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_one_working_day_after_the_incident() -> None:
    inc = incident(MONDAY)
    v = view(inc)
    assert flags(RULE, v, "2020-03-03T23:59:59Z") == []
    assert evaluation(RULE, v, "2020-03-03T23:59:59Z").next_due == t(DUE)
    flag = only(flags(RULE, v, "2020-03-04T00:00:01Z"))
    assert (flag.status, flag.rule, flag.due) == ("open", "incident-not-triaged", t(DUE))
    assert flag.evidence == (inc.id,)
    assert flag.concerns == (POLICE,)


def test_triage_one_second_before_the_deadline_is_in_time() -> None:
    assert flags(RULE, view(incident(MONDAY), triage("2020-03-03T23:59:59Z")), LATER) == []


def test_triage_by_police_counts_too() -> None:
    assert flags(RULE, view(incident(MONDAY), triage("2020-03-02T11:00:00Z", source=POLICE)), LATER) == []


def test_late_triage_resolves_with_its_id() -> None:
    late = triage("2020-03-04T00:00:01Z")
    v = view(incident(MONDAY), late)
    assert only(flags(RULE, v, "2020-03-04T00:00:00.500Z")).status == "open"
    flag = only(flags(RULE, v, LATER))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", late.id, late.recordedtime)


def test_triage_of_another_incident_does_not_count() -> None:
    v = view(incident(MONDAY), triage("2020-03-02T11:00:00Z", ref="INC-2"))
    assert only(flags(RULE, v, LATER)).status == "open"


def test_no_children_present_is_quiet() -> None:
    assert flags(RULE, view(incident(MONDAY, children_present=False)), LATER) == []


def test_each_incident_is_its_own_flag() -> None:
    a, b = incident(MONDAY, ref="INC-1"), incident(MONDAY, ref="INC-2")
    found = flags(RULE, view(a, b, triage("2020-03-02T11:00:00Z", ref="INC-2")), LATER)
    assert [f.evidence for f in found] == [(a.id,)]


def test_christmas_2019_dat_not_running() -> None:
    # Christmas Eve 2019 (Tuesday): 25th and 26th are bank holidays; deadline end of Friday 27th.
    v = view(incident("2019-12-24T20:00:00Z"))
    assert flags(RULE, v, "2019-12-27T23:59:59Z") == []
    assert only(flags(RULE, v, "2019-12-28T00:00:01Z")).due == t("2019-12-28T00:00:00Z")
    assert flags(RULE, view(incident("2019-12-24T20:00:00Z"), triage("2019-12-27T23:59:59Z")), LATER) == []


def test_new_years_eve_2019_skips_new_years_day() -> None:
    v = view(incident("2019-12-31T23:30:00Z"))  # GMT: still 31 December in London
    assert flags(RULE, v, "2020-01-02T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-01-03T00:00:01Z")).due == t("2020-01-03T00:00:00Z")


def test_easter_2020() -> None:
    # Thursday 9 April 2020: Good Friday and Easter Monday are bank holidays -> Tuesday 14th (BST).
    v = view(incident("2020-04-09T10:00:00Z"))
    assert flags(RULE, v, "2020-04-14T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-04-14T23:00:01Z")).due == t("2020-04-14T23:00:00Z")


def test_2330_utc_in_summer_is_the_next_london_day() -> None:
    # Monday 1 June 2020 23:30Z = Tuesday 00:30 BST -> deadline end of Wednesday 3rd (22:59:59.999Z).
    v = view(incident("2020-06-01T23:30:00Z"))
    assert flags(RULE, v, "2020-06-03T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-06-03T23:00:01Z")).due == t("2020-06-03T23:00:00Z")
    assert flags(RULE, view(incident("2020-06-01T23:30:00Z"), triage("2020-06-03T22:59:59Z")), LATER) == []
    late = view(incident("2020-06-01T23:30:00Z"), triage("2020-06-03T23:00:01Z"))
    assert only(flags(RULE, late, LATER)).status == "resolved"


def test_clocks_change_inside_the_window() -> None:
    back = view(incident("2020-10-23T12:00:00Z"))  # Friday BST -> Monday 26th GMT
    assert flags(RULE, back, "2020-10-26T23:59:59Z") == []
    assert only(flags(RULE, back, "2020-10-27T00:00:01Z")).due == t("2020-10-27T00:00:00Z")
    forward = view(incident("2020-03-27T12:00:00Z"))  # Friday GMT -> Monday 30th BST
    assert flags(RULE, forward, "2020-03-30T22:59:59Z") == []
    assert only(flags(RULE, forward, "2020-03-30T23:00:01Z")).due == t("2020-03-30T23:00:00Z")


def test_deadline_uses_recorded_time_not_event_time() -> None:
    # Happened on Friday, recorded on Monday: the working day runs from Monday.
    inc = ev(
        "incident.reported",
        {"incident_ref": "INC-1", "children_present": True, "domestic_abuse": True, "parties": []},
        "2020-02-28T22:00:00Z",
        source=POLICE,
        recorded=MONDAY,
    )
    assert only(flags(RULE, view(inc), "2020-03-04T00:00:01Z")).due == t(DUE)


def test_withdrawn_incident_no_longer_counts_from_the_withdrawal() -> None:
    inc = incident(MONDAY)
    v = view(inc, withdraw(inc, "2020-03-05T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-05T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-05T10:00:00Z") == []


def test_withdrawn_triage_reopens_the_gap() -> None:
    tr = triage("2020-03-02T11:00:00Z")
    v = view(incident(MONDAY), tr, withdraw(tr, "2020-03-05T10:00:00Z"))
    assert flags(RULE, v, "2020-03-05T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-05T10:00:00Z")).status == "open"


def test_correction_to_no_children_present_removes_the_gap_from_then() -> None:
    inc = incident(MONDAY)
    v = view(inc, correct(inc, {"children_present": False}, "2020-03-05T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-05T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-05T10:00:00Z") == []


def test_amendment_from_another_agency_is_ignored() -> None:
    inc = incident(MONDAY)
    v = view(inc, correct(inc, {"children_present": False}, "2020-03-03T10:00:00Z", source=CSC))
    assert only(flags(RULE, v, LATER)).status == "open"


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [
        ev("incident.reported", {"incident_ref": ref, "children_present": True, "domestic_abuse": True,
                                 "parties": []}, MONDAY, source=POLICE)
        for ref in ("INC-1", "INC-2", "INC-3")
    ] + [
        ev("incident.triaged", {"incident_ref": "INC-1", "forum": "DAT", "outcome": "refer"},
           "2020-03-03T10:00:00Z", source=POLICE),
        ev("incident.triaged", {"incident_ref": "INC-2", "forum": "DAT", "outcome": "refer"},
           "2020-03-06T10:00:00Z", source=POLICE),
    ]  # fmt: skip
    assert_order_independent(RULE, events, LATER)
