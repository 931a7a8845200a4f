"""gp-not-notified: every GP practice of the family hears of a domestic-abuse incident within one
working day (issue 3; Child Charlie 2.14, Family A rec. 3)."""

from __future__ import annotations

from policies.engine import Flag
from policies.gp_not_notified import GpNotNotified
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = GpNotNotified()
POLICE = "police/avon-somerset"
CSC = "csc/somerset"
FATHER_GP = "gp/Y00001"
CHILD_GP = "gp/L85001"


def family(at: str = "2020-01-06T10:00:00Z") -> list[Event]:
    return [
        ev("person.linked", {"person": "F-1", "role": "father"}, at, source=CSC),
        ev("person.linked", {"person": "M-1", "role": "mother"}, at, source=CSC),
        ev("gp.registered", {"person": "F-1", "practice": "Y00001"}, at, source=CSC),
    ]


def incident(at: str, *, domestic_abuse: bool = True, parties: tuple[str, ...] = ("M-1", "F-1")) -> Event:
    roles = ("victim", "perpetrator")
    return ev(
        "incident.reported",
        {
            "incident_ref": "INC-1",
            "children_present": True,
            "domestic_abuse": domestic_abuse,
            "parties": [{"person": p, "role": roles[min(i, 1)]} for i, p in enumerate(parties)],
        },
        at,
        source=POLICE,
    )


def notify(to: str, about: str, at: str) -> Event:
    return ev("notification.sent", {"to": to, "about": [about]}, at, source=POLICE)


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


# Monday 2 March 2020 (GMT): within 1 working day = by the end of Tuesday 3 March.
MONDAY = "2020-03-02T10:00:00Z"
DUE = "2020-03-04T00:00:00Z"


def test_fires_one_working_day_after_the_incident() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc)
    assert flags(RULE, v, "2020-03-03T23:59:59Z") == []
    assert evaluation(RULE, v, "2020-03-03T23:59:59Z").next_due == t(DUE)
    flag = only(flags(RULE, v, "2020-03-04T00:00:01Z"))
    assert flag.status == "open"
    assert flag.rule == "gp-not-notified"
    assert flag.due == t(DUE)
    assert flag.evidence == (inc.id,)
    assert flag.concerns == (FATHER_GP, POLICE)
    assert FATHER_GP in flag.detail


def test_quiet_when_told_one_second_before_the_deadline() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc, notify(FATHER_GP, inc.id, "2020-03-03T23:59:59Z"))
    assert flags(RULE, v, "2020-03-20T00:00:00Z") == []


def test_told_by_incident_ref_counts() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc, notify(FATHER_GP, "INC-1", "2020-03-03T12:00:00Z"))
    assert flags(RULE, v, "2020-03-20T00:00:00Z") == []


def test_last_millisecond_is_in_time_and_the_next_is_late() -> None:
    inc = incident(MONDAY)
    in_time = view(*family(), inc, notify(FATHER_GP, inc.id, "2020-03-03T23:59:59.999Z"))
    assert flags(RULE, in_time, "2020-03-20T00:00:00Z") == []
    late = view(*family(), inc, notify(FATHER_GP, inc.id, DUE))
    assert only(flags(RULE, late, "2020-03-20T00:00:00Z")).status == "resolved"


def test_late_notification_resolves_with_its_id() -> None:
    inc = incident(MONDAY)
    n = notify(FATHER_GP, inc.id, "2020-03-04T00:00:01Z")
    v = view(*family(), inc, n)
    assert only(flags(RULE, v, "2020-03-04T00:00:00.500Z")).status == "open"
    flag = only(flags(RULE, v, "2020-03-04T00:00:01Z"))
    assert flag.status == "resolved"
    assert flag.resolved_by == n.id
    assert flag.resolved_at == n.recordedtime


def test_notification_to_another_practice_or_about_another_incident_does_not_count() -> None:
    inc = incident(MONDAY)
    v = view(
        *family(),
        inc,
        notify(CHILD_GP, inc.id, "2020-03-02T11:00:00Z"),
        notify(FATHER_GP, "INC-OTHER", "2020-03-02T11:00:00Z"),
    )
    assert only(flags(RULE, v, "2020-03-05T00:00:00Z")).status == "open"


def test_one_flag_per_practice_child_and_parent() -> None:
    inc = incident(MONDAY)
    child_gp = ev(
        "gp.registered", {"person": "C-1", "practice": "L85001"}, "2020-01-06T10:00:00Z", source=CSC
    )
    v = view(*family(), child_gp, inc, notify(CHILD_GP, inc.id, "2020-03-05T10:00:00Z"))
    found = {f.detail.split()[0]: f for f in flags(RULE, v, "2020-03-06T00:00:00Z")}
    assert set(found) == {CHILD_GP, FATHER_GP}
    assert found[CHILD_GP].status == "resolved"
    assert found[FATHER_GP].status == "open"
    assert found[CHILD_GP].id != found[FATHER_GP].id


def test_party_who_is_not_a_parent_counts_and_a_stranger_does_not() -> None:
    inc = incident(MONDAY, parties=("M-1", "P-9"))
    party_gp = ev("gp.registered", {"person": "P-9", "practice": "P00009"}, MONDAY, source=CSC)
    stranger_gp = ev("gp.registered", {"person": "X-1", "practice": "X00001"}, MONDAY, source=CSC)
    v = view(inc, party_gp, stranger_gp)
    assert [f.detail.split()[0] for f in flags(RULE, v, "2020-03-05T00:00:00Z")] == ["gp/P00009"]


def test_incidents_between_other_parties_owe_other_practices() -> None:
    """Who is owed is judged per incident: ``Family.practices`` keeps one answer per set of
    parties, so two incidents with different parties in one view (one naming a party with his
    own practice, one not) must each get their own practices, in either order."""
    party_gp = ev("gp.registered", {"person": "P-9", "practice": "P00009"}, MONDAY, source=CSC)
    with_party = incident(MONDAY, parties=("M-1", "P-9"))
    without = incident("2020-03-02T11:00:00Z", parties=("M-1",))
    for events in ([party_gp, with_party, without], [party_gp, without, with_party]):
        found = flags(RULE, view(*events), "2020-03-05T00:00:00Z")
        assert [(f.evidence, f.detail.split()[0]) for f in found] == [((with_party.id,), "gp/P00009")]


def test_not_domestic_abuse_is_quiet() -> None:
    v = view(*family(), incident(MONDAY, domestic_abuse=False))
    assert flags(RULE, v, "2020-03-20T00:00:00Z") == []


def test_no_gp_known_is_quiet_and_a_late_gp_link_gives_a_working_day_from_the_link() -> None:
    inc = incident(MONDAY)
    parents = family()[:2]
    link = ev("gp.registered", {"person": "F-1", "practice": "Y00001"}, "2020-03-10T10:00:00Z", source=CSC)
    v = view(*parents, inc, link)
    assert flags(RULE, v, "2020-03-09T23:59:59Z") == []
    assert evaluation(RULE, v, "2020-03-10T10:00:00Z").next_due == t("2020-03-12T00:00:00Z")
    assert flags(RULE, v, "2020-03-11T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-12T00:00:01Z")).status == "open"


def test_christmas_2019_bank_holidays_extend_the_window() -> None:
    # Christmas Eve (Tuesday): 25 and 26 December are bank holidays, so the day is Friday 27th.
    inc = incident("2019-12-24T20:00:00Z")
    v = view(*family("2019-01-01T10:00:00Z"), inc)
    assert flags(RULE, v, "2019-12-27T23:59:59Z") == []
    assert only(flags(RULE, v, "2019-12-28T00:00:01Z")).due == t("2019-12-28T00:00:00Z")
    told = view(*family("2019-01-01T10:00:00Z"), inc, notify(FATHER_GP, inc.id, "2019-12-27T23:59:59Z"))
    assert flags(RULE, told, "2020-01-10T00:00:00Z") == []


def test_easter_2020_good_friday_and_easter_monday() -> None:
    # Thursday 9 April 2020 (BST): the next working day is Tuesday 14th, ending 22:59:59.999Z.
    inc = incident("2020-04-09T10:00:00Z")
    v = view(*family(), inc)
    assert flags(RULE, v, "2020-04-14T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-04-14T23:00:01Z")).due == t("2020-04-14T23:00:00Z")


def test_2330_utc_in_summer_is_the_next_london_day() -> None:
    # Monday 1 June 2020 23:30Z is Tuesday 00:30 BST: the deadline is the end of Wednesday 3rd.
    inc = incident("2020-06-01T23:30:00Z")
    v = view(*family(), inc)
    assert flags(RULE, v, "2020-06-03T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-06-03T23:00:01Z")).due == t("2020-06-03T23:00:00Z")
    in_time = view(*family(), inc, notify(FATHER_GP, inc.id, "2020-06-03T22:59:59Z"))
    assert flags(RULE, in_time, "2020-06-10T00:00:00Z") == []
    late = view(*family(), inc, notify(FATHER_GP, inc.id, "2020-06-03T23:00:01Z"))
    assert only(flags(RULE, late, "2020-06-10T00:00:00Z")).status == "resolved"


def test_clocks_go_back_inside_the_window() -> None:
    # Friday 23 October 2020 (BST) -> Monday 26th (GMT after Sunday 25th): due at midnight UTC.
    v = view(*family(), incident("2020-10-23T12:00:00Z"))
    assert flags(RULE, v, "2020-10-26T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-10-27T00:00:01Z")).due == t("2020-10-27T00:00:00Z")


def test_clocks_go_forward_inside_the_window() -> None:
    # Friday 27 March 2020 (GMT) -> Monday 30th (BST after Sunday 29th): due at 23:00 UTC.
    v = view(*family(), incident("2020-03-27T12:00:00Z"))
    assert flags(RULE, v, "2020-03-30T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-30T23:00:01Z")).due == t("2020-03-30T23:00:00Z")


def test_withdrawn_incident_no_longer_counts_from_the_withdrawal() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc, withdraw(inc, "2020-03-06T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-06T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-06T10:00:00Z") == []


def test_withdrawn_notification_reopens_the_gap() -> None:
    inc = incident(MONDAY)
    n = notify(FATHER_GP, inc.id, "2020-03-02T12:00:00Z")
    v = view(*family(), inc, n, withdraw(n, "2020-03-06T10:00:00Z"))
    assert flags(RULE, v, "2020-03-06T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-06T10:00:00Z")).status == "open"


def test_withdrawal_by_another_agency_is_ignored() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc, withdraw(inc, "2020-03-03T10:00:00Z", source=CSC))
    assert only(flags(RULE, v, "2020-03-06T10:00:00Z")).status == "open"


def test_correction_to_not_domestic_abuse_removes_the_gap_from_then() -> None:
    inc = incident(MONDAY)
    v = view(*family(), inc, correct(inc, {"domestic_abuse": False}, "2020-03-06T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-06T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-06T10:00:00Z") == []


def test_correction_to_domestic_abuse_counts_from_the_correction() -> None:
    inc = incident(MONDAY, domestic_abuse=False)
    v = view(*family(), inc, correct(inc, {"domestic_abuse": True}, "2020-03-06T10:00:00Z"))
    assert flags(RULE, v, "2020-03-06T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-06T10:00:00Z")).status == "open"


def test_correction_of_the_notification_to_the_right_practice_counts() -> None:
    inc = incident(MONDAY)
    n = notify(CHILD_GP, inc.id, "2020-03-02T12:00:00Z")
    v = view(*family(), inc, n, correct(n, {"to": FATHER_GP}, "2020-03-03T10:00:00Z"))
    assert flags(RULE, v, "2020-03-10T00:00:00Z") == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    first, second = incident(MONDAY), incident("2020-03-09T10:00:00Z")
    events = [*family(), first, second, notify(FATHER_GP, first.id, "2020-03-05T09:00:00Z")]
    assert_order_independent(RULE, events, "2020-03-20T00:00:00Z")


def test_version_3_a_practice_left_after_the_deadline_keeps_its_gap_resolved_by_the_move() -> None:
    """The father's practice was owed the incident; he registers elsewhere after the working day
    was up. Version 2 dropped the flag (his practice was no longer "current"), which a live
    projector had already raised: now it stays, resolved by the new registration, and the new
    practice is owed from when it was recorded."""
    inc = incident(MONDAY)
    moved = ev("gp.registered", {"person": "F-1", "practice": "Y00002"}, "2020-03-05T10:00:00Z", source=CSC)
    v = view(*family(), inc, moved)
    by_key = {f.detail.split()[0]: f for f in flags(RULE, v, "2020-03-20T00:00:00Z")}
    old = by_key[FATHER_GP]
    assert old.status == "resolved" and old.resolved_by == moved.id and old.due == t(DUE)
    assert by_key["gp/Y00002"].status == "open"
    assert by_key["gp/Y00002"].due == t("2020-03-07T00:00:00Z")  # a working day after the move


def test_version_3_a_practice_left_before_the_deadline_was_never_owed() -> None:
    inc = incident(MONDAY)
    moved = ev("gp.registered", {"person": "F-1", "practice": "Y00002"}, "2020-03-03T10:00:00Z", source=CSC)
    details = [f.detail for f in flags(RULE, view(*family(), inc, moved), "2020-03-20T00:00:00Z")]
    assert not any(d.startswith(FATHER_GP) for d in details) and any("gp/Y00002" in d for d in details)
