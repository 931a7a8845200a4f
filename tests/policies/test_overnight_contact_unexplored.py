"""overnight-contact-unexplored: a child under two, a parent figure living elsewhere who is a person
of concern or misuses substances, and nobody records the contact arrangements within ten working
days (Child Charlie 1.6, 5 practice learning 3)."""

from __future__ import annotations

from policies.overnight_contact_unexplored import OvernightContactUnexplored
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = OvernightContactUnexplored()
POLICE, PHN, CSC = "police/avon-somerset", "phn/somerset", "csc/somerset"
# Later fact recorded Thu 28 Mar 2024: Good Friday and Easter Monday are bank holidays and the
# clocks go forward on Sun 31 Mar, so the 10th working day is Mon 15 Apr, ending 23:59:59.999 BST.
DUE = "2024-04-15T23:00:00+00:00"
BEFORE, AFTER = "2024-04-15T22:59:59+00:00", "2024-04-15T23:00:01+00:00"


def registered(dob: str = "2023-11-01") -> Event:
    data = {"dob": dob, "mother": "P-mum", "father": "P-dad"}
    return ev("child.registered", data, "2023-11-02T09:00:00+00:00", source="midwifery/somerset")


def linked(at: str, lives_with_child: bool, role: str = "father", person: str = "P-dad") -> Event:
    data = {"person": person, "role": role, "lives_with_child": lives_with_child}
    return ev("person.linked", data, at, source=PHN)


def incident(at: str, person: str = "P-dad", role: str = "perpetrator", domestic_abuse: bool = True) -> Event:
    data = {
        "incident_ref": "INC-1",
        "children_present": True,
        "domestic_abuse": domestic_abuse,
        "parties": [{"person": "P-mum", "role": "victim"}, {"person": person, "role": role}],
    }
    return ev("incident.reported", data, at, source=POLICE)


def arrangement(at: str, person: str = "P-dad") -> Event:
    return ev("contact-arrangement.recorded", {"person": person, "overnight": True}, at, source=CSC)


def story() -> list[Event]:
    return [registered(), linked("2024-03-20T12:00:00+00:00", False), incident("2024-03-28T10:00:00+00:00")]


def test_due_just_after_tenth_working_day_across_easter_and_clock_change() -> None:
    events = story()
    v = view(*events)
    before = evaluation(RULE, v, BEFORE)
    assert before.flags == () and before.next_due == t(DUE)
    (flag,) = open_flags(RULE, v, AFTER)
    assert flag.due == t(DUE)
    assert flag.evidence == tuple(sorted((events[1].id, events[2].id)))
    assert flag.concerns == (PHN, POLICE)
    assert "P-dad" in flag.detail


def test_arrangement_recorded_in_time_is_quiet_late_one_resolves() -> None:
    in_time = arrangement(BEFORE)
    assert flags(RULE, view(*story(), in_time), "2024-05-01T00:00:00+00:00") == []
    late = arrangement(AFTER)
    (flag,) = flags(RULE, view(*story(), late), "2024-05-01T00:00:00+00:00")
    assert flag.status == "resolved"
    assert flag.resolved_by == late.id and flag.resolved_at == t(AFTER)
    assert [f.status for f in flags(RULE, view(*story(), late), AFTER)] == ["resolved"]


def test_arrangement_for_another_person_does_not_count() -> None:
    assert len(open_flags(RULE, view(*story(), arrangement(BEFORE, person="P-gran")), AFTER)) == 1


def test_child_aged_two_at_the_later_fact_is_out_of_scope() -> None:
    two_that_day = [registered("2022-03-28"), *story()[1:]]
    a_day_short = [registered("2022-03-29"), *story()[1:]]
    assert flags(RULE, view(*two_that_day), AFTER) == []
    assert len(flags(RULE, view(*a_day_short), AFTER)) == 1


def test_age_uses_the_london_calendar_day() -> None:
    """23:30 UTC on 27 Mar in GMT is still the 27th in London; 23:30 UTC on 1 Apr is the 2nd (BST)."""
    late_evening = [
        registered("2022-03-28"),
        linked("2024-03-20T12:00:00+00:00", False),
        incident("2024-03-27T23:30:00+00:00"),
    ]
    assert len(flags(RULE, view(*late_evening), "2024-06-01T00:00:00+01:00")) == 1
    after_midnight_bst = [
        registered("2022-04-02"),
        linked("2024-03-20T12:00:00+00:00", False),
        incident("2024-04-01T23:30:00+00:00"),
    ]
    assert flags(RULE, view(*after_midnight_bst), "2024-06-01T00:00:00+01:00") == []


def test_parent_living_with_the_child_is_quiet_until_the_latest_link_says_otherwise() -> None:
    living = [registered(), linked("2024-03-20T12:00:00+00:00", True), incident("2024-03-28T10:00:00+00:00")]
    assert flags(RULE, view(*living), "2024-06-01T00:00:00+01:00") == []
    moved_out = linked("2024-05-01T12:00:00+01:00", False)
    (flag,) = flags(RULE, view(*living, moved_out), "2024-06-01T00:00:00+01:00")
    # Ten working days from Wed 1 May (Mon 6 May is a bank holiday): end of Thu 16 May, BST.
    assert flag.due == t("2024-05-17T00:00:00+01:00")
    assert moved_out.id in flag.evidence


def test_not_a_parent_figure_or_not_a_person_of_concern_is_quiet() -> None:
    grandparent = [
        registered(),
        linked("2024-03-20T12:00:00+00:00", False, role="grandparent", person="P-gran"),
        incident("2024-03-28T10:00:00+00:00", person="P-gran"),
    ]
    assert flags(RULE, view(*grandparent), "2024-06-01T00:00:00+01:00") == []
    victim_only = [
        registered(),
        linked("2024-03-20T12:00:00+00:00", False),
        incident("2024-03-28T10:00:00+00:00", role="victim"),
    ]
    assert flags(RULE, view(*victim_only), "2024-06-01T00:00:00+01:00") == []
    not_domestic = [
        registered(),
        linked("2024-03-20T12:00:00+00:00", False),
        incident("2024-03-28T10:00:00+00:00", domestic_abuse=False),
    ]
    assert flags(RULE, view(*not_domestic), "2024-06-01T00:00:00+01:00") == []


def test_substance_misuse_counts_until_a_later_status_says_otherwise() -> None:
    misuse = ev(
        "person.status",
        {"person": "P-dad", "substance_misuse": True},
        "2024-10-21T10:00:00+01:00",
        source="gp/L85002",
    )
    base = [registered("2023-11-01"), linked("2024-10-01T12:00:00+01:00", False), misuse]
    (flag,) = flags(RULE, view(*base), "2024-11-06T00:00:00+00:00")
    # Ten working days from Mon 21 Oct cross the October clock change: end of Mon 4 Nov, GMT.
    assert flag.due == t("2024-11-05T00:00:00+00:00")
    age_only = ev("person.status", {"person": "P-dad", "age": 30}, "2024-10-22T10:00:00+01:00", source=CSC)
    assert len(flags(RULE, view(*base, age_only), "2024-11-06T00:00:00+00:00")) == 1
    stopped = ev(
        "person.status",
        {"person": "P-dad", "substance_misuse": False},
        "2024-10-22T10:00:00+01:00",
        source="gp/L85002",
    )
    assert flags(RULE, view(*base, stopped), "2024-11-06T00:00:00+00:00") == []


def test_withdrawn_incident_and_corrected_link_stop_counting_from_then() -> None:
    events = story()
    gone = withdraw(events[2], "2024-04-20T10:00:00+01:00")
    v = view(*events, gone)
    assert len(open_flags(RULE, v, "2024-04-20T09:59:59+01:00")) == 1
    assert flags(RULE, v, "2024-04-20T10:00:00+01:00") == []
    lives_there = correct(events[1], {"lives_with_child": True}, "2024-04-22T10:00:00+01:00")
    v = view(*events, lives_there)
    assert len(open_flags(RULE, v, "2024-04-22T09:59:59+01:00")) == 1
    assert flags(RULE, v, "2024-04-22T10:00:00+01:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    assert_order_independent(
        RULE, [*story(), arrangement("2024-05-01T10:00:00+01:00")], "2024-06-01T00:00:00+01:00"
    )


def test_without_a_date_of_birth_the_age_test_cannot_be_made() -> None:
    assert flags(RULE, view(*story()[1:]), AFTER) == []


def test_version_2_a_later_link_resolves_instead_of_dropping_or_moving_the_flag() -> None:
    """After the ten working days the father is recorded as living with the child (version 1
    dropped the flag) or again as living elsewhere (version 1 moved its due): the flag stays,
    resolved by the move in, or unchanged."""
    moved_in = linked("2024-04-20T10:00:00+01:00", True)
    (flag,) = flags(RULE, view(*story(), moved_in), "2024-05-20T00:00:00+01:00")
    assert flag.due == t(DUE) and flag.status == "resolved" and flag.resolved_by == moved_in.id
    again = linked("2024-04-20T10:00:00+01:00", False)
    (flag,) = flags(RULE, view(*story(), again), "2024-05-20T00:00:00+01:00")
    assert flag.due == t(DUE) and flag.status == "open"
    in_time = linked("2024-04-02T10:00:00+01:00", True)
    assert flags(RULE, view(*story(), in_time), "2024-05-20T00:00:00+01:00") == []
