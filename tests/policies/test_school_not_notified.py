"""school-not-notified: an incident with the child present and the child's school not told before
09:00 London time on the next school day (Operation Encompass; Child Charlie 5)."""

from __future__ import annotations

from policies.school_not_notified import SchoolNotNotified
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = SchoolNotNotified()
POLICE, SCHOOL = "police/avon-somerset", "school/100001"


def enrolled(at: str = "2023-09-04T09:00:00+01:00", urn: str = "100001") -> Event:
    return ev("school.enrolled", {"school": urn}, at, source=f"school/{urn}")


def incident(at: str, present: bool = True, ref: str = "INC-1") -> Event:
    data = {
        "incident_ref": ref,
        "children_present": present,
        "domestic_abuse": True,
        "parties": [{"person": "P-mum", "role": "victim"}],
    }
    return ev("incident.reported", data, at, source=POLICE)


def told(at: str, about: str = "INC-1", to: str = SCHOOL) -> Event:
    return ev("notification.sent", {"to": to, "about": [about], "channel": "encompass"}, at, source=POLICE)


def test_friday_night_incident_is_due_at_nine_on_monday() -> None:
    inc = incident("2024-05-03T20:00:00+01:00")
    # Mon 6 May 2024 is a bank holiday: the next school day is Tue 7 May, 09:00 BST.
    v = view(enrolled(), inc)
    before = evaluation(RULE, v, "2024-05-07T08:59:59+01:00")
    assert before.flags == () and before.next_due == t("2024-05-07T09:00:00+01:00")
    (flag,) = open_flags(RULE, v, "2024-05-07T09:00:00+01:00")
    assert flag.due == t("2024-05-07T09:00:00+01:00")
    assert flag.evidence == (inc.id,) and flag.concerns == (POLICE,)
    assert SCHOOL in flag.detail and "INC-1" in flag.detail


def test_told_one_second_before_is_quiet_one_second_after_is_late() -> None:
    inc = incident("2024-05-03T20:00:00+01:00")
    assert (
        flags(RULE, view(enrolled(), inc, told("2024-05-07T08:59:59+01:00")), "2024-06-01T00:00:00+01:00")
        == []
    )
    late = told("2024-05-07T09:00:01+01:00")
    (flag,) = flags(RULE, view(enrolled(), inc, late), "2024-06-01T00:00:00+01:00")
    assert flag.status == "resolved" and flag.resolved_by == late.id
    assert flag.resolved_at == t("2024-05-07T09:00:01+01:00")


def test_easter_and_clocks_going_forward() -> None:
    inc = incident("2024-03-28T19:00:00+00:00")  # Thu before Good Friday, GMT
    (flag,) = flags(RULE, view(enrolled(), inc), "2024-04-02T09:00:00+01:00")
    assert flag.due == t("2024-04-02T08:00:00+00:00")  # 09:00 BST on Tue 2 Apr
    assert flags(RULE, view(enrolled(), inc), "2024-04-02T08:59:59+01:00") == []


def test_clocks_going_back() -> None:
    inc = incident("2024-10-25T19:00:00+01:00")  # Fri, BST; clocks go back Sun 27 Oct
    (flag,) = flags(RULE, view(enrolled(), inc), "2024-10-28T09:00:00+00:00")
    assert flag.due == t("2024-10-28T09:00:00+00:00")
    assert flags(RULE, view(enrolled(), inc), "2024-10-28T08:59:59+00:00") == []


def test_calendar_day_is_london_not_utc() -> None:
    """23:30 UTC on Wed 1 May is 00:30 BST on Thu 2 May: the next school day is Fri 3 May."""
    inc = incident("2024-05-01T23:30:00+00:00")
    assert flags(RULE, view(enrolled(), inc), "2024-05-03T08:59:59+01:00") == []
    assert len(flags(RULE, view(enrolled(), inc), "2024-05-03T09:00:00+01:00")) == 1


def test_child_not_present_not_enrolled_or_enrolled_after_the_incident_is_quiet() -> None:
    later = "2024-06-01T00:00:00+01:00"
    assert flags(RULE, view(enrolled(), incident("2024-05-03T20:00:00+01:00", present=False)), later) == []
    assert flags(RULE, view(incident("2024-05-03T20:00:00+01:00")), later) == []
    assert (
        flags(RULE, view(enrolled("2024-05-20T09:00:00+01:00"), incident("2024-05-03T20:00:00+01:00")), later)
        == []
    )


def test_enrolment_recorded_late_counts_from_when_it_was_recorded() -> None:
    known_late = ev(
        "school.enrolled",
        {"school": "100001"},
        "2023-09-04T09:00:00+01:00",
        source=SCHOOL,
        recorded="2024-05-10T12:00:00+01:00",
    )
    (flag,) = flags(
        RULE, view(known_late, incident("2024-05-03T20:00:00+01:00")), "2024-06-01T00:00:00+01:00"
    )
    assert flag.due == t("2024-05-10T12:00:00+01:00")


def test_notice_to_another_school_or_about_another_incident_does_not_count() -> None:
    inc = incident("2024-05-03T20:00:00+01:00")
    other_school = told("2024-05-04T08:00:00+01:00", to="school/999999")
    other_incident = told("2024-05-04T08:00:00+01:00", about="INC-2")
    by_id = told("2024-05-04T08:00:00+01:00", about=inc.id)
    as_of = "2024-06-01T00:00:00+01:00"
    assert len(flags(RULE, view(enrolled(), inc, other_school), as_of)) == 1
    assert len(flags(RULE, view(enrolled(), inc, other_incident), as_of)) == 1
    assert flags(RULE, view(enrolled(), inc, by_id), as_of) == []


def test_one_flag_per_school() -> None:
    inc = incident("2024-05-03T20:00:00+01:00")
    v = view(enrolled(), enrolled(urn="100002"), inc, told("2024-05-04T08:00:00+01:00"))
    (flag,) = flags(RULE, v, "2024-06-01T00:00:00+01:00")
    assert "school/100002" in flag.detail


def test_withdrawn_incident_and_correction_saying_no_child_present() -> None:
    inc = incident("2024-05-03T20:00:00+01:00")
    v = view(enrolled(), inc, withdraw(inc, "2024-05-08T10:00:00+01:00"))
    assert len(open_flags(RULE, v, "2024-05-08T09:59:59+01:00")) == 1
    assert flags(RULE, v, "2024-05-08T10:00:00+01:00") == []
    absent = correct(inc, {"children_present": False}, "2024-05-08T10:00:00+01:00")
    assert flags(RULE, view(enrolled(), inc, absent), "2024-05-08T10:00:00+01:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        enrolled(),
        enrolled(urn="100002"),
        incident("2024-05-03T20:00:00+01:00"),
        incident("2024-05-10T20:00:00+01:00", ref="INC-2"),
        told("2024-05-13T10:00:00+01:00", about="INC-2"),
    ]
    assert_order_independent(RULE, events, "2024-06-01T00:00:00+01:00")


def left(at: str, *, recorded: str | None = None, urn: str = "100001") -> Event:
    return ev("school.left", {"school": urn}, at, source=f"school/{urn}", recorded=recorded)


def test_version_3_a_leaving_recorded_after_the_school_day_resolves_the_gap() -> None:
    """Leaving dated before the incident but recorded after the notice was due: version 2
    dropped the flag a live projector had raised; now it stays, resolved by the leaving."""
    inc = incident("2024-05-08T20:00:00+01:00")
    gone = left("2024-05-01T15:00:00+01:00", recorded="2024-05-10T12:00:00+01:00")
    (flag,) = flags(RULE, view(enrolled(), inc, gone), "2024-06-01T00:00:00+01:00")
    assert flag.due == t("2024-05-09T09:00:00+01:00")
    assert flag.status == "resolved" and flag.resolved_by == gone.id


def test_version_3_a_leaving_recorded_before_the_school_day_means_no_gap() -> None:
    inc = incident("2024-05-08T20:00:00+01:00")
    # Recorded the evening of the incident, before 09:00 the next day; dated after it, too.
    gone = left("2024-05-08T21:00:00+01:00", recorded="2024-05-08T22:00:00+01:00")
    assert flags(RULE, view(enrolled(), inc, gone), "2024-06-01T00:00:00+01:00") == []
