"""care-leaver-parent-unsupported: a parent figure who is a care leaver aged 25 or under, and no
leaving care service told within ten working days (Family A recommendation 8)."""

from __future__ import annotations

from typing import Any

from policies.care_leaver_parent_unsupported import CareLeaverParentUnsupported
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = CareLeaverParentUnsupported()
POLICE, CSC, LEAVING_CARE = "police/avon-somerset", "csc/south-glos", "leaving-care/somerset"
# First incident recorded Thu 28 Mar 2024: ten working days over Easter and the clock change.
DUE, BEFORE, AFTER = "2024-04-15T23:00:00+00:00", "2024-04-15T22:59:59+00:00", "2024-04-15T23:00:01+00:00"


def registered() -> Event:
    return ev(
        "child.registered",
        {"dob": "2021-06-01", "mother": "P-mum", "father": "P-dad"},
        "2021-06-02T09:00:00+01:00",
        source="midwifery/nbt",
    )


def status(at: str, person: str = "P-mum", **fields: Any) -> Event:
    return ev("person.status", {"person": person, **fields}, at, source=CSC)


def incident() -> Event:
    data = {
        "incident_ref": "INC-1",
        "children_present": True,
        "domestic_abuse": True,
        "parties": [{"person": "P-mum", "role": "victim"}, {"person": "P-dad", "role": "perpetrator"}],
    }
    return ev("incident.reported", data, "2024-03-28T10:00:00+00:00", source=POLICE)


def notified(at: str, to: str = LEAVING_CARE) -> Event:
    return ev("notification.sent", {"to": to, "about": ["INC-1"]}, at, source=CSC)


def story() -> list[Event]:
    return [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=True, age=22), incident()]


def test_due_ten_working_days_after_the_first_incident() -> None:
    events = story()
    v = view(*events)
    before = evaluation(RULE, v, BEFORE)
    assert before.flags == () and before.next_due == t(DUE)
    (flag,) = open_flags(RULE, v, AFTER)
    assert flag.due == t(DUE)
    assert flag.evidence == tuple(sorted((events[1].id, events[2].id)))
    assert flag.concerns == (POLICE,)
    assert "P-mum" in flag.detail


def test_status_learned_later_starts_the_clock_then() -> None:
    late_status = status("2024-10-21T10:00:00+01:00", care_leaver=True, age=22)
    (flag,) = flags(RULE, view(registered(), incident(), late_status), "2024-11-06T00:00:00+00:00")
    assert flag.due == t("2024-11-05T00:00:00+00:00")  # across the October clock change


def test_notification_in_time_is_quiet_late_resolves_elsewhere_does_not_count() -> None:
    assert flags(RULE, view(*story(), notified(BEFORE)), "2024-05-01T00:00:00+01:00") == []
    late = notified(AFTER)
    (flag,) = flags(RULE, view(*story(), late), "2024-05-01T00:00:00+01:00")
    assert flag.status == "resolved" and flag.resolved_by == late.id and flag.resolved_at == t(AFTER)
    assert len(open_flags(RULE, view(*story(), notified(BEFORE, to=CSC)), AFTER)) == 1


def test_over_25_not_a_care_leaver_or_not_a_parent_figure_is_quiet() -> None:
    older = [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=True, age=26), incident()]
    assert flags(RULE, view(*older), AFTER) == []
    aged_24 = [registered(), status("2024-03-20T10:00:00+00:00", care_leaver=True, age=24), incident()]
    assert len(flags(RULE, view(*aged_24), AFTER)) == 1
    # Version 2: support runs *to* the 25th birthday, so a 25-year-old is not owed it.
    aged_25 = [registered(), status("2024-03-20T10:00:00+00:00", care_leaver=True, age=25), incident()]
    assert flags(RULE, view(*aged_25), AFTER) == []
    not_leaver = [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=False, age=20), incident()]
    assert flags(RULE, view(*not_leaver), AFTER) == []
    aunt = [
        registered(),
        status("2023-01-10T10:00:00+00:00", person="P-aunt", care_leaver=True, age=20),
        incident(),
    ]
    assert flags(RULE, view(*aunt), AFTER) == []


def test_a_recorded_age_moves_on_with_time() -> None:
    """24 when recorded in January 2023: at least 25 by the incident of March 2024 (version 1
    read 24 for ever and flagged)."""
    moved_on = [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=True, age=24), incident()]
    assert flags(RULE, view(*moved_on), AFTER) == []
    young = [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=True, age=23), incident()]
    (flag,) = flags(RULE, view(*young), AFTER)
    assert "aged 24" in flag.detail


def test_age_from_a_date_of_birth_where_known() -> None:
    """The 25th birthday on the day before the incident is recorded ends the support; the day
    after, the parent is still owed it (the dob wins over a recorded age)."""
    birthday_before = status("2023-01-10T10:00:00+00:00", care_leaver=True, age=20, dob="1999-03-27")
    assert flags(RULE, view(registered(), birthday_before, incident()), AFTER) == []
    birthday_after = status("2023-01-10T10:00:00+00:00", care_leaver=True, age=30, dob="1999-03-29")
    (flag,) = flags(RULE, view(registered(), birthday_after, incident()), AFTER)
    assert "aged 24" in flag.detail


def test_no_incident_or_referral_is_quiet() -> None:
    assert flags(RULE, view(*story()[:2]), "2025-01-01T00:00:00+00:00") == []


def test_facts_recorded_separately_are_folded_and_a_later_age_ends_the_rule() -> None:
    split = [
        registered(),
        status("2023-01-10T10:00:00+00:00", care_leaver=True),
        status("2024-04-02T10:00:00+01:00", age=23),
        incident(),
    ]
    (flag,) = flags(RULE, view(*split), "2024-05-01T00:00:00+01:00")
    assert split[2].id in flag.evidence  # the clock starts once both facts are known
    assert flag.due == t("2024-04-17T00:00:00+01:00")
    aged_out = status("2024-04-10T10:00:00+01:00", age=26)
    assert flags(RULE, view(*split, aged_out), "2024-05-01T00:00:00+01:00") == []


def test_withdrawn_status_and_corrected_age() -> None:
    events = story()
    gone = withdraw(events[1], "2024-04-20T10:00:00+01:00")
    v = view(*events, gone)
    assert len(open_flags(RULE, v, "2024-04-20T09:59:59+01:00")) == 1
    assert flags(RULE, v, "2024-04-20T10:00:00+01:00") == []
    older = correct(events[1], {"age": 27}, "2024-04-20T10:00:00+01:00")
    assert flags(RULE, view(*events, older), "2024-04-20T10:00:00+01:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        *story(),
        status("2023-02-01T10:00:00+00:00", person="P-dad", care_leaver=True, age=24),
        notified("2024-04-20T10:00:00+01:00"),
    ]
    assert_order_independent(RULE, events, "2024-05-01T00:00:00+01:00")


def test_calendar_day_is_london_not_utc() -> None:
    """First incident at 23:30 UTC Wed 1 May 2024 = Thu 2 May in London; with the May bank
    holiday the tenth working day is Fri 17 May (counting from Wed 1 May it would be Thu 16)."""
    inc = ev("incident.reported", dict(incident().data), "2024-05-01T23:30:00+00:00", source=POLICE)
    base = [registered(), status("2023-01-10T10:00:00+00:00", care_leaver=True, age=22), inc]
    v = view(*base)
    assert flags(RULE, v, "2024-05-17T22:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-05-17T23:00:01+00:00")
    assert flag.due == t("2024-05-18T00:00:00+01:00")
    assert flags(RULE, view(*base, notified("2024-05-17T23:59:00+01:00")), "2024-06-01T00:00:00+01:00") == []


def test_version_3_a_status_after_the_deadline_resolves_instead_of_dropping_the_flag() -> None:
    """Recorded as no longer a care leaver after the ten working days: version 2 dropped the
    flag (a live projector had raised it); now it stays, resolved by that status."""
    later = status("2024-04-20T10:00:00+01:00", care_leaver=False)
    (flag,) = flags(RULE, view(*story(), later), "2024-05-01T00:00:00+01:00")
    assert flag.due == t(DUE) and flag.status == "resolved" and flag.resolved_by == later.id
    earlier = status("2024-04-02T10:00:00+01:00", care_leaver=False)
    assert flags(RULE, view(*story(), earlier), "2024-05-01T00:00:00+01:00") == []
