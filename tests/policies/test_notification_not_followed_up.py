"""notification-not-followed-up: health visiting told of an incident and no real contact (in person,
phone, video) with the child or a parent figure within five working days (Child Charlie 2.7, 6.1)."""

from __future__ import annotations

from policies.notification_not_followed_up import NotificationNotFollowedUp
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = NotificationNotFollowedUp()
POLICE, PHN = "police/avon-somerset", "phn/somerset"
# Notified Mon 23 Dec 2019: 25, 26 Dec and 1 Jan are bank holidays, so the fifth working day is
# Thu 2 Jan 2020 (24, 27, 30, 31 Dec, 2 Jan); the gap begins at 00:00 on Fri 3 Jan (GMT).
NOTIFIED = "2019-12-23T10:00:00+00:00"
DUE, BEFORE, AFTER = "2020-01-03T00:00:00+00:00", "2020-01-02T23:59:59+00:00", "2020-01-03T00:00:01+00:00"


def registered() -> Event:
    return ev(
        "child.registered",
        {"dob": "2019-10-01", "mother": "P-mum", "father": "P-dad"},
        "2019-10-02T09:00:00+00:00",
        source="midwifery/somerset",
    )


def incident() -> Event:
    data = {
        "incident_ref": "INC-3",
        "children_present": True,
        "domestic_abuse": True,
        "parties": [{"person": "P-mum", "role": "victim"}, {"person": "P-dad", "role": "perpetrator"}],
    }
    return ev("incident.reported", data, "2019-12-20T21:00:00+00:00", source=POLICE)


def notification(to: str = PHN, about: str = "INC-3", at: str = NOTIFIED) -> Event:
    return ev("notification.sent", {"to": to, "about": [about], "channel": "secure-email"}, at, source=POLICE)


def contact(at: str, mode: str = "phone", person: str = "P-mum", source: str = PHN) -> Event:
    return ev("contact.recorded", {"person": person, "practitioner": "HV-1", "mode": mode}, at, source=source)


def story() -> list[Event]:
    return [registered(), incident(), notification()]


def test_due_after_fifth_working_day_over_christmas() -> None:
    events = story()
    v = view(*events)
    before = evaluation(RULE, v, BEFORE)
    assert before.flags == () and before.next_due == t(DUE)
    (flag,) = open_flags(RULE, v, AFTER)
    assert flag.due == t(DUE)
    assert flag.evidence == (events[2].id,)
    assert flag.concerns == (PHN,)
    assert "INC-3" in flag.detail


def test_due_across_easter_and_the_march_clock_change() -> None:
    n = notification(at="2024-03-28T10:00:00+00:00")
    inc = ev("incident.reported", {**incident().data}, "2024-03-27T21:00:00+00:00", source=POLICE)
    v = view(registered(), inc, n)
    assert flags(RULE, v, "2024-04-08T22:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-04-08T23:00:01+00:00")
    assert flag.due == t("2024-04-09T00:00:00+01:00")


def test_real_contact_in_time_is_quiet_text_or_letter_is_not_enough() -> None:
    for mode in ("in-person", "phone", "video"):
        assert flags(RULE, view(*story(), contact(BEFORE, mode)), "2020-02-01T00:00:00+00:00") == []
    for mode in ("text", "letter"):
        assert len(open_flags(RULE, view(*story(), contact(BEFORE, mode)), AFTER)) == 1


def test_contact_with_the_child_counts_contact_with_others_or_by_others_does_not() -> None:
    assert flags(RULE, view(*story(), contact(BEFORE, person="C-1")), AFTER) == []
    assert len(flags(RULE, view(*story(), contact(BEFORE, person="P-gran")), AFTER)) == 1
    assert len(flags(RULE, view(*story(), contact(BEFORE, source="csc/somerset")), AFTER)) == 1


def test_contact_before_the_notification_is_not_a_follow_up() -> None:
    assert len(flags(RULE, view(*story(), contact("2019-12-23T09:00:00+00:00")), AFTER)) == 1


def test_late_contact_resolves() -> None:
    late = contact("2020-01-08T10:00:00+00:00", "in-person")
    v = view(*story(), late)
    assert [f.status for f in flags(RULE, v, "2020-01-08T09:59:59+00:00")] == ["open"]
    (flag,) = flags(RULE, v, "2020-01-08T10:00:00+00:00")
    assert flag.status == "resolved" and flag.resolved_by == late.id
    assert flag.resolved_at == t("2020-01-08T10:00:00+00:00")


def test_not_phn_or_not_about_a_known_incident_is_quiet() -> None:
    assert flags(RULE, view(registered(), incident(), notification(to="gp/L85001")), AFTER) == []
    assert flags(RULE, view(registered(), incident(), notification(about="INC-404")), AFTER) == []


def test_notification_naming_the_incident_event_id_counts() -> None:
    inc = incident()
    assert len(flags(RULE, view(registered(), inc, notification(about=inc.id)), AFTER)) == 1


def test_withdrawn_notification_and_corrected_recipient() -> None:
    events = story()
    gone = withdraw(events[2], "2020-01-06T10:00:00+00:00")
    v = view(*events, gone)
    assert len(open_flags(RULE, v, "2020-01-06T09:59:59+00:00")) == 1
    assert flags(RULE, v, "2020-01-06T10:00:00+00:00") == []
    redirected = correct(events[2], {"to": "gp/L85001"}, "2020-01-06T10:00:00+00:00")
    assert flags(RULE, view(*events, redirected), "2020-01-06T10:00:00+00:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [*story(), notification(at="2019-12-30T10:00:00+00:00"), contact("2020-01-08T10:00:00+00:00")]
    assert_order_independent(RULE, events, "2020-02-01T00:00:00+00:00")


def test_calendar_day_is_london_not_utc() -> None:
    """Sent 23:30 UTC Wed 1 May 2024 = 00:30 BST Thu 2 May; Mon 6 May is a bank holiday, so the
    fifth working day is Fri 10 May (counting from Wed 1 May it would be Thu 9 May)."""
    v = view(registered(), incident(), notification(at="2024-05-01T23:30:00+00:00"))
    assert flags(RULE, v, "2024-05-10T22:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-05-10T23:00:01+00:00")
    assert flag.due == t("2024-05-11T00:00:00+01:00")
    in_time = contact("2024-05-10T23:30:00+01:00")
    assert (
        flags(
            RULE,
            view(registered(), incident(), notification(at="2024-05-01T23:30:00+00:00"), in_time),
            "2024-06-01T00:00:00+01:00",
        )
        == []
    )


def test_due_across_the_october_clock_change() -> None:
    v = view(registered(), incident(), notification(at="2024-10-25T10:00:00+01:00"))
    assert flags(RULE, v, "2024-11-01T23:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-11-02T00:00:01+00:00")
    assert flag.due == t("2024-11-02T00:00:00+00:00")  # end of Fri 1 Nov, GMT
