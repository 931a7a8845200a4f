"""closure-without-father-contact: a closure must account for every male parent figure and person
of concern, or the closing agency must have contacted him since the referral (issue 3; Child
Charlie 2.10, 6.1; Family A)."""

from __future__ import annotations

from typing import Any

from policies.closure_without_father_contact import ClosureWithoutFatherContact
from policies.engine import Flag
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = ClosureWithoutFatherContact()
POLICE = "police/avon-somerset"
CSC = "csc/somerset"
EARLY = "2020-01-06T10:00:00Z"
REFERRED = "2020-03-02T10:00:00Z"
CLOSED = "2020-03-05T10:00:00Z"
LATER = "2020-06-30T00:00:00Z"


def linked(person: str, role: str, at: str = EARLY) -> Event:
    return ev("person.linked", {"person": person, "role": role}, at, source=CSC)


def referral(at: str = REFERRED) -> Event:
    return ev("referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "DA"}, at, source=POLICE)


def closure(at: str = CLOSED, **data: Any) -> Event:
    body = {
        "referral_ref": "R-1",
        "outcome": "nfa",
        "reason": "mother protective",
        "persons_contacted": ["M-1"],
        "worked_by": "SW-1",
        "authorised_by": "TM-1",
        **data,
    }
    return ev("referral.closed", body, at, source=CSC)


def contact(person: str, at: str, source: str = CSC) -> Event:
    return ev(
        "contact.recorded", {"person": person, "practitioner": "SW-1", "mode": "phone"}, at, source=source
    )


def family() -> list[Event]:
    return [linked("M-1", "mother"), linked("F-1", "father")]


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_at_the_closure() -> None:
    ref, close = referral(), closure()
    v = view(*family(), ref, close)
    assert flags(RULE, v, "2020-03-05T09:59:59Z") == []
    flag = only(flags(RULE, v, CLOSED))
    assert (flag.status, flag.rule, flag.due) == ("open", "closure-without-father-contact", t(CLOSED))
    assert set(flag.evidence) == {close.id, ref.id}
    assert flag.concerns == (CSC,)
    assert "F-1" in flag.detail


def test_contacted_father_is_quiet() -> None:
    assert flags(RULE, view(*family(), referral(), closure(persons_contacted=["M-1", "F-1"])), LATER) == []


def test_reason_for_not_contacting_is_quiet() -> None:
    c = closure(not_contacted_reasons={"F-1": "contact would increase risk"})
    assert flags(RULE, view(*family(), referral(), c), LATER) == []


def test_contact_by_the_closing_agency_since_the_referral_is_quiet() -> None:
    v = view(*family(), referral(), contact("F-1", "2020-03-03T10:00:00Z"), closure())
    assert flags(RULE, v, LATER) == []


def test_contact_at_the_referral_and_at_the_closure_instant_count() -> None:
    assert flags(RULE, view(*family(), referral(), contact("F-1", REFERRED), closure()), LATER) == []
    assert flags(RULE, view(*family(), referral(), contact("F-1", CLOSED), closure()), LATER) == []


def test_contact_one_second_before_the_referral_does_not_count() -> None:
    v = view(*family(), referral(), contact("F-1", "2020-03-02T09:59:59Z"), closure())
    assert only(flags(RULE, v, LATER)).status == "open"


def test_contact_by_another_agency_does_not_count() -> None:
    v = view(*family(), referral(), contact("F-1", "2020-03-03T10:00:00Z", source=POLICE), closure())
    assert only(flags(RULE, v, LATER)).status == "open"


def test_later_contact_by_the_closing_agency_resolves() -> None:
    late = contact("F-1", "2020-03-05T10:00:01Z")
    v = view(*family(), referral(), closure(), late)
    assert only(flags(RULE, v, CLOSED)).status == "open"
    flag = only(flags(RULE, v, LATER))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", late.id, late.recordedtime)


def test_other_male_parent_figures_count_and_mother_alone_does_not() -> None:
    v = view(
        linked("M-1", "mother"),
        linked("P-1", "parent's-partner"),
        linked("S-1", "step-parent"),
        referral(),
        closure(),
    )
    assert sorted(f.detail.split()[-1] for f in flags(RULE, v, LATER)) == ["P-1", "S-1"]
    assert (
        flags(RULE, view(linked("M-1", "mother"), linked("G-1", "grandparent"), referral(), closure()), LATER)
        == []
    )


def test_person_of_concern_in_an_incident_counts_and_a_victim_does_not() -> None:
    inc = ev(
        "incident.reported",
        {
            "incident_ref": "INC-1",
            "children_present": True,
            "domestic_abuse": True,
            "parties": [
                {"person": "V-1", "role": "victim"},
                {"person": "P-9", "role": "alleged-perpetrator"},
            ],
        },
        EARLY,
        source=POLICE,
    )
    v = view(linked("M-1", "mother"), inc, referral(), closure())
    assert [f.detail.split()[-1] for f in flags(RULE, v, LATER)] == ["P-9"]


def test_father_named_at_registration_counts() -> None:
    reg = ev("child.registered", {"dob": "2020-01-01", "mother": "M-1", "father": "F-1"}, EARLY, source=CSC)
    assert "F-1" in only(flags(RULE, view(reg, referral(), closure()), LATER)).detail


def test_closure_without_a_known_referral_still_fires() -> None:
    close = closure()
    flag = only(flags(RULE, view(*family(), close), LATER))
    assert flag.evidence == (close.id,)


def test_correction_adding_him_resolves_from_then() -> None:
    close = closure()
    fix = correct(close, {"persons_contacted": ["M-1", "F-1"]}, "2020-03-09T10:00:00Z")
    v = view(*family(), referral(), close, fix)
    assert only(flags(RULE, v, "2020-03-09T09:59:59Z")).status == "open"
    flag = only(flags(RULE, v, "2020-03-09T10:00:00Z"))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", fix.id, fix.recordedtime)
    assert flag.due == close.recordedtime


def test_correction_giving_a_reason_for_him_resolves() -> None:
    close = closure()
    reasons = {"not_contacted_reasons": {"F-1": "contact would raise risk"}}
    fix = correct(close, reasons, "2020-03-09T10:00:00Z")
    assert only(flags(RULE, view(*family(), referral(), close, fix), LATER)).resolved_by == fix.id


def test_correction_removing_him_is_due_from_the_correction() -> None:
    close = closure(persons_contacted=["M-1", "F-1"])
    removed = correct(close, {"persons_contacted": ["M-1"]}, "2020-03-09T10:00:00Z")
    assert flags(RULE, view(*family(), referral(), close), LATER) == []
    flag = only(flags(RULE, view(*family(), referral(), close, removed), LATER))
    assert (flag.status, flag.due) == ("open", removed.recordedtime)


def test_correction_by_another_agency_is_ignored() -> None:
    close = closure()
    fix = correct(close, {"persons_contacted": ["M-1", "F-1"]}, "2020-03-09T10:00:00Z", source=POLICE)
    assert only(flags(RULE, view(*family(), referral(), close, fix), LATER)).status == "open"


def test_withdrawn_closure_no_longer_counts() -> None:
    close = closure()
    v = view(*family(), referral(), close, withdraw(close, "2020-03-09T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-09T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-09T10:00:00Z") == []


def test_withdrawn_contact_reopens_the_gap() -> None:
    c = contact("F-1", "2020-03-03T10:00:00Z")
    v = view(*family(), referral(), c, closure(), withdraw(c, "2020-03-09T10:00:00Z"))
    assert flags(RULE, v, "2020-03-09T09:59:59Z") == []
    assert only(flags(RULE, v, "2020-03-09T10:00:00Z")).status == "open"


def test_withdrawn_father_link_no_longer_counts() -> None:
    f = linked("F-1", "father")
    v = view(linked("M-1", "mother"), f, referral(), closure(), withdraw(f, "2020-03-09T10:00:00Z"))
    assert flags(RULE, v, "2020-03-09T10:00:00Z") == []


def test_one_flag_per_closure_and_person() -> None:
    v = view(
        *family(), linked("P-1", "parent's-partner"), referral(), closure(), closure("2020-03-20T10:00:00Z")
    )
    found = flags(RULE, v, LATER)
    assert len(found) == 4
    assert len({f.id for f in found}) == 4


def test_flags_do_not_depend_on_delivery_order() -> None:
    closure = {
        "referral_ref": "R-1", "outcome": "nfa", "reason": "mother protective", "persons_contacted": ["M-1"],
        "worked_by": "W-1", "authorised_by": "M-9",
    }  # fmt: skip
    events = [
        ev("person.linked", {"person": "F-1", "role": "father"}, EARLY, source=CSC),
        ev("person.linked", {"person": "S-1", "role": "step-parent"}, EARLY, source=CSC),
        ev("referral.made", {"referral_ref": "R-1", "to": CSC, "reason": "DA"}, REFERRED, source=POLICE),
        ev("referral.closed", closure, CLOSED, source=CSC),
        ev("contact.recorded", {"person": "F-1", "practitioner": "SW-1", "mode": "phone"},
           "2020-03-09T10:00:00Z", source=CSC),
    ]  # fmt: skip
    assert_order_independent(RULE, events, LATER)
