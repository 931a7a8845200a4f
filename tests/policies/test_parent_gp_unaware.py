"""parent-gp-unaware: a parent figure's GP practice is aware of the child five working days after
the first incident or referral (or the GP link, if later) (issue 3; Child Charlie 2.2, 2.14)."""

from __future__ import annotations

from policies.engine import Flag
from policies.parent_gp_unaware import ParentGpUnaware
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = ParentGpUnaware()
POLICE = "police/avon-somerset"
CSC = "csc/somerset"
PRACTICE = "gp/Y00001"
EARLY = "2020-01-06T10:00:00Z"
MONDAY = "2020-03-02T10:00:00Z"
DUE = "2020-03-10T00:00:00Z"  # 5 working days after Monday 2 March: end of Monday 9th, + 1 ms
LATER = "2020-06-30T00:00:00Z"


def father(at: str = EARLY, *, role: str = "father") -> Event:
    return ev("person.linked", {"person": "F-1", "role": role}, at, source=CSC)


def gp_link(at: str = EARLY, *, person: str = "F-1", practice: str = "Y00001") -> Event:
    # Recorded by CSC: a practice's own event would make it aware of the child.
    return ev("gp.registered", {"person": person, "practice": practice}, at, source=CSC)


def incident(at: str = MONDAY) -> Event:
    data = {"incident_ref": "INC-1", "children_present": True, "domestic_abuse": True, "parties": []}
    return ev("incident.reported", data, at, source=POLICE)


def notify(at: str, to: str = PRACTICE) -> Event:
    return ev("notification.sent", {"to": to, "about": ["C-1"]}, at, source=CSC)


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_five_working_days_after_the_first_incident() -> None:
    inc, link = incident(), gp_link()
    v = view(father(), link, inc)
    assert flags(RULE, v, "2020-03-09T23:59:59Z") == []
    assert evaluation(RULE, v, "2020-03-09T23:59:59Z").next_due == t(DUE)
    flag = only(flags(RULE, v, "2020-03-10T00:00:01Z"))
    assert (flag.status, flag.rule, flag.due) == ("open", "parent-gp-unaware", t(DUE))
    assert set(flag.evidence) == {inc.id, link.id}
    assert flag.concerns == (POLICE,)
    assert PRACTICE in flag.detail


def test_a_referral_also_starts_the_clock() -> None:
    ref = ev(
        "referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "x"}, MONDAY, source="phn/somerset"
    )
    assert only(flags(RULE, view(father(), gp_link(), ref), "2020-03-10T00:00:01Z")).due == t(DUE)


def test_the_first_trigger_sets_the_clock() -> None:
    v = view(father(), gp_link(), incident(MONDAY), incident("2020-03-06T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-10T00:00:01Z")).due == t(DUE)


def test_notification_one_second_before_the_deadline_is_in_time() -> None:
    assert flags(RULE, view(father(), gp_link(), incident(), notify("2020-03-09T23:59:59Z")), LATER) == []


def test_practice_already_aware_is_quiet() -> None:
    own = ev(
        "contact.recorded",
        {"person": "F-1", "practitioner": "Dr A", "mode": "in-person"},
        EARLY,
        source=PRACTICE,
    )
    assert flags(RULE, view(father(), gp_link(), own, incident()), LATER) == []


def test_late_notification_resolves_with_its_id() -> None:
    n = notify("2020-03-10T00:00:01Z")
    v = view(father(), gp_link(), incident(), n)
    assert only(flags(RULE, v, "2020-03-10T00:00:00.500Z")).status == "open"
    flag = only(flags(RULE, v, LATER))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", n.id, n.recordedtime)


def test_practice_becoming_aware_through_its_own_event_resolves() -> None:
    own = ev(
        "contact.recorded",
        {"person": "F-1", "practitioner": "Dr A", "mode": "phone"},
        "2020-03-12T10:00:00Z",
        source=PRACTICE,
    )
    flag = only(flags(RULE, view(father(), gp_link(), incident(), own), LATER))
    assert (flag.status, flag.resolved_by) == ("resolved", own.id)


def test_notification_to_another_practice_does_not_count() -> None:
    v = view(father(), gp_link(), incident(), notify("2020-03-03T10:00:00Z", to="gp/L85001"))
    assert only(flags(RULE, v, LATER)).status == "open"


def test_gp_link_later_than_the_incident_starts_the_clock() -> None:
    # Linked Wednesday 11 March: five working days end on Wednesday 18th.
    v = view(father(), incident(), gp_link("2020-03-11T10:00:00Z"))
    assert flags(RULE, v, "2020-03-18T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-19T00:00:01Z")).due == t("2020-03-19T00:00:00Z")


def test_mother_counts_and_non_parents_do_not() -> None:
    mother = ev("person.linked", {"person": "M-1", "role": "mother"}, EARLY, source=CSC)
    sibling = ev("person.linked", {"person": "S-1", "role": "sibling"}, EARLY, source=CSC)
    v = view(
        mother,
        sibling,
        gp_link(person="M-1", practice="M00001"),
        gp_link(person="S-1", practice="S00001"),
        gp_link(person="C-1", practice="L85001"),
        incident(),
    )
    assert [f.detail.split()[0] for f in flags(RULE, v, LATER)] == ["gp/M00001"]


def test_parent_named_at_registration_counts() -> None:
    reg = ev("child.registered", {"dob": "2020-01-01", "father": "F-1"}, EARLY, source=CSC)
    assert only(flags(RULE, view(reg, gp_link(), incident()), LATER)).status == "open"


def test_no_incident_or_referral_is_quiet() -> None:
    assert flags(RULE, view(father(), gp_link()), LATER) == []


def test_easter_2020() -> None:
    # Thursday 9 April: Tue 14, Wed 15, Thu 16, Fri 17, Mon 20 -> end of Monday 20th BST.
    v = view(father(), gp_link(), incident("2020-04-09T10:00:00Z"))
    assert flags(RULE, v, "2020-04-20T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-04-20T23:00:01Z")).due == t("2020-04-20T23:00:00Z")


def test_christmas_2019() -> None:
    # Monday 23 December 2019: Tue 24, Fri 27, Mon 30, Tue 31, Thu 2 Jan (1 Jan is a holiday).
    v = view(
        father("2019-01-01T10:00:00Z"), gp_link("2019-01-01T10:00:00Z"), incident("2019-12-23T10:00:00Z")
    )
    assert flags(RULE, v, "2020-01-02T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-01-03T00:00:01Z")).due == t("2020-01-03T00:00:00Z")


def test_2330_utc_in_summer_is_the_next_london_day() -> None:
    # Monday 1 June 23:30Z = Tuesday 00:30 BST: Wed 3 ... Tue 9 -> 22:59:59.999Z on Tuesday 9th.
    v = view(father(), gp_link(), incident("2020-06-01T23:30:00Z"))
    assert flags(RULE, v, "2020-06-09T22:59:59Z") == []
    assert only(flags(RULE, v, "2020-06-09T23:00:01Z")).due == t("2020-06-09T23:00:00Z")
    told = view(father(), gp_link(), incident("2020-06-01T23:30:00Z"), notify("2020-06-09T22:59:59Z"))
    assert flags(RULE, told, LATER) == []


def test_clocks_go_back_inside_the_window() -> None:
    # Tuesday 20 October 2020 (BST) -> Tuesday 27th (GMT): due at midnight UTC on the 28th.
    v = view(father(), gp_link(), incident("2020-10-20T12:00:00Z"))
    assert flags(RULE, v, "2020-10-27T23:59:59Z") == []
    assert only(flags(RULE, v, "2020-10-28T00:00:01Z")).due == t("2020-10-28T00:00:00Z")


def test_withdrawn_parent_link_no_longer_counts_from_the_withdrawal() -> None:
    link = father()
    v = view(link, gp_link(), incident(), withdraw(link, "2020-03-12T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-12T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-12T10:00:00Z") == []


def test_withdrawn_notification_reopens_the_gap() -> None:
    n = notify("2020-03-03T10:00:00Z")
    v = view(father(), gp_link(), incident(), n, withdraw(n, "2020-03-12T10:00:00Z"))
    assert flags(RULE, v, "2020-03-12T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-12T10:00:00Z")).status == "open"


def test_correction_of_the_role_removes_the_gap_from_then() -> None:
    link = father()
    v = view(link, gp_link(), incident(), correct(link, {"role": "other"}, "2020-03-12T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-12T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-12T10:00:00Z") == []


def test_correction_by_another_agency_is_ignored() -> None:
    link = father()
    fix = correct(link, {"role": "other"}, "2020-03-04T10:00:00Z", source=POLICE)
    assert only(flags(RULE, view(link, gp_link(), incident(), fix), LATER)).status == "open"


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [
        ev("person.linked", {"person": "F-1", "role": "father"}, EARLY, source=CSC),
        ev("person.linked", {"person": "M-1", "role": "mother"}, EARLY, source=CSC),
        ev("gp.registered", {"person": "F-1", "practice": "Y00001"}, EARLY, source=CSC),
        ev("gp.registered", {"person": "M-1", "practice": "Y00002"}, EARLY, source=CSC),
        ev("referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "DA"}, MONDAY, source=POLICE),
        ev("notification.sent", {"to": "gp/Y00002", "about": ["R-1"]}, "2020-03-20T10:00:00Z", source=CSC),
    ]
    assert_order_independent(RULE, events, LATER)


def test_version_2_a_parent_who_moves_practice_after_the_deadline_leaves_the_gap_resolved() -> None:
    """Version 1 dropped the old practice's flag when the father moved; now it stays, resolved
    by the registration elsewhere, and the new practice is owed five working days from it."""
    inc, link = incident(), gp_link()
    moved = gp_link("2020-03-12T10:00:00Z", practice="Y00002")
    found = {f.id: f for f in flags(RULE, view(father(), link, inc, moved), LATER)}
    old = next(f for f in found.values() if PRACTICE in f.detail)
    assert old.status == "resolved" and old.resolved_by == moved.id and old.due == t(DUE)
    new = next(f for f in found.values() if "gp/Y00002" in f.detail)
    assert new.status == "open" and new.due == t("2020-03-20T00:00:00Z")  # Thu 12th + 5 working days


def test_version_2_a_parent_who_moved_before_the_deadline_never_made_a_gap_there() -> None:
    moved = gp_link("2020-03-04T10:00:00Z", practice="Y00002")
    found = flags(RULE, view(father(), gp_link(), incident(), moved), LATER)
    assert [PRACTICE in f.detail for f in found] == [False]
