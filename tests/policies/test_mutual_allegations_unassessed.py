"""mutual-allegations-unassessed: claims and counter-claims between the same two adults with no DASH
or child and family assessment within ten working days (Family A: "who does what to who")."""

from __future__ import annotations

from policies.mutual_allegations_unassessed import MutualAllegationsUnassessed
from policies.view import Event
from tests.policies.helpers import correct, ev, evaluation, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = MutualAllegationsUnassessed()
POLICE, CSC = "police/avon-somerset", "csc/south-glos"
# Later incident recorded Thu 28 Mar 2024: ten working days (Easter, clocks forward) end on Mon 15 Apr.
DUE, BEFORE, AFTER = "2024-04-15T23:00:00+00:00", "2024-04-15T22:59:59+00:00", "2024-04-15T23:00:01+00:00"


def incident(ref: str, at: str, victim: str, other: str, role: str = "perpetrator", da: bool = True) -> Event:
    data = {
        "incident_ref": ref,
        "children_present": True,
        "domestic_abuse": da,
        "parties": [{"person": victim, "role": "victim"}, {"person": other, "role": role}],
    }
    return ev("incident.reported", data, at, source=POLICE)


def assessment(at: str, kind: str = "DASH") -> Event:
    return ev("assessment.completed", {"kind": kind, "persons_seen": ["P-mum", "P-dad"]}, at, source=CSC)


def mirrored() -> list[Event]:
    return [
        incident("INC-1", "2024-03-01T22:00:00+00:00", "P-mum", "P-dad"),
        incident("INC-2", "2024-03-28T10:00:00+00:00", "P-dad", "P-mum", role="alleged-perpetrator"),
    ]


def test_roles_reversed_across_two_incidents_is_due_after_ten_working_days_of_the_later() -> None:
    events = mirrored()
    v = view(*events)
    before = evaluation(RULE, v, BEFORE)
    assert before.flags == () and before.next_due == t(DUE)
    (flag,) = open_flags(RULE, v, AFTER)
    assert flag.due == t(DUE)
    assert flag.evidence == tuple(sorted(e.id for e in events))
    assert flag.concerns == (POLICE,)
    assert "INC-1" in flag.detail and "INC-2" in flag.detail


def test_single_counter_allegation_is_enough() -> None:
    only = incident("INC-7", "2024-10-21T10:00:00+01:00", "P-mum", "P-dad", role="counter-allegation")
    (flag,) = flags(RULE, view(only), "2024-11-06T00:00:00+00:00")
    # Crosses the October clock change: tenth working day Mon 4 Nov ends 23:59:59.999 GMT.
    assert flag.due == t("2024-11-05T00:00:00+00:00") and flag.evidence == (only.id,)


def test_assessment_in_time_is_quiet_late_resolves_other_kinds_do_not_count() -> None:
    for kind in ("DASH", "child-and-family"):
        assert flags(RULE, view(*mirrored(), assessment(BEFORE, kind)), "2024-05-01T00:00:00+01:00") == []
    late = assessment(AFTER, "child-and-family")
    (flag,) = flags(RULE, view(*mirrored(), late), "2024-05-01T00:00:00+01:00")
    assert flag.status == "resolved" and flag.resolved_by == late.id and flag.resolved_at == t(AFTER)
    assert len(open_flags(RULE, view(*mirrored(), assessment(BEFORE, "FHNA")), AFTER)) == 1


def test_assessment_before_the_later_incident_does_not_follow_it() -> None:
    early = assessment("2024-03-20T10:00:00+00:00")
    assert len(open_flags(RULE, view(*mirrored(), early), AFTER)) == 1


def test_same_roles_each_time_or_not_domestic_abuse_is_quiet() -> None:
    same = [
        incident("INC-1", "2024-03-01T22:00:00+00:00", "P-mum", "P-dad"),
        incident("INC-2", "2024-03-28T10:00:00+00:00", "P-mum", "P-dad"),
    ]
    assert flags(RULE, view(*same), "2024-05-01T00:00:00+01:00") == []
    not_da = [
        incident("INC-1", "2024-03-01T22:00:00+00:00", "P-mum", "P-dad"),
        incident("INC-2", "2024-03-28T10:00:00+00:00", "P-dad", "P-mum", da=False),
    ]
    assert flags(RULE, view(*not_da), "2024-05-01T00:00:00+01:00") == []


def test_each_new_counter_allegation_needs_its_own_assessment() -> None:
    events = [
        *mirrored(),
        assessment(BEFORE),
        incident("INC-3", "2024-05-01T10:00:00+01:00", "P-mum", "P-dad", role="counter-allegation"),
    ]
    (flag,) = flags(RULE, view(*events), "2024-06-01T00:00:00+01:00")
    assert flag.evidence == (events[3].id,)


def test_withdrawn_or_corrected_incident_removes_the_mirror() -> None:
    events = mirrored()
    gone = withdraw(events[0], "2024-04-20T10:00:00+01:00")
    v = view(*events, gone)
    assert len(open_flags(RULE, v, "2024-04-20T09:59:59+01:00")) == 1
    assert flags(RULE, v, "2024-04-20T10:00:00+01:00") == []
    same_way = correct(
        events[1],
        {"parties": [{"person": "P-mum", "role": "victim"}, {"person": "P-dad", "role": "perpetrator"}]},
        "2024-04-20T10:00:00+01:00",
    )
    assert flags(RULE, view(*events, same_way), "2024-04-20T10:00:00+01:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        *mirrored(),
        assessment("2024-04-17T10:00:00+01:00"),
        incident("INC-3", "2024-05-01T10:00:00+01:00", "P-mum", "P-dad", role="counter-allegation"),
    ]
    assert_order_independent(RULE, events, "2024-06-01T00:00:00+01:00")


def test_a_person_with_two_roles_in_one_incident_keeps_both() -> None:
    first = incident("INC-1", "2024-03-01T22:00:00+00:00", "P-mum", "P-dad")
    both = ev(
        "incident.reported",
        {
            "incident_ref": "INC-2",
            "children_present": True,
            "domestic_abuse": True,
            "parties": [
                {"person": "P-dad", "role": "victim"},
                {"person": "P-dad", "role": "perpetrator"},
                {"person": "P-mum", "role": "perpetrator"},
            ],
        },
        "2024-03-28T10:00:00+00:00",
        source=POLICE,
    )
    (flag,) = flags(RULE, view(first, both), AFTER)
    assert flag.evidence == tuple(sorted((first.id, both.id)))


def test_calendar_day_is_london_not_utc() -> None:
    """Later incident at 23:30 UTC Wed 1 May 2024 = Thu 2 May in London; with the May bank
    holiday the tenth working day is Fri 17 May (counting from Wed 1 May it would be Thu 16)."""
    first = incident("INC-1", "2024-04-20T22:00:00+01:00", "P-mum", "P-dad")
    later = incident("INC-2", "2024-05-01T23:30:00+00:00", "P-dad", "P-mum", role="alleged-perpetrator")
    v = view(first, later)
    assert flags(RULE, v, "2024-05-17T22:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-05-17T23:00:01+00:00")
    assert flag.due == t("2024-05-18T00:00:00+01:00")
    assert (
        flags(RULE, view(first, later, assessment("2024-05-17T23:59:00+01:00")), "2024-06-01T00:00:00+01:00")
        == []
    )


def test_due_across_the_october_clock_change() -> None:
    first = incident("INC-1", "2024-10-01T22:00:00+01:00", "P-mum", "P-dad")
    later = incident("INC-2", "2024-10-25T10:00:00+01:00", "P-dad", "P-mum", role="alleged-perpetrator")
    v = view(first, later)
    assert flags(RULE, v, "2024-11-08T23:59:59+00:00") == []
    (flag,) = flags(RULE, v, "2024-11-09T00:00:01+00:00")
    assert flag.due == t("2024-11-09T00:00:00+00:00")  # end of Fri 8 Nov, GMT
