"""father-not-in-assessment: a child and family assessment that neither sees a male parent figure
nor says why not (Family A: working with fathers)."""

from __future__ import annotations

from typing import Any

from policies.father_not_in_assessment import FatherNotInAssessment
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, open_flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = FatherNotInAssessment()
CSC = "csc/south-glos"
ASSESSED = "2022-03-01T15:00:00+00:00"


def registered(**fathers: Any) -> Event:
    return ev(
        "child.registered",
        {"dob": "2019-05-01", "mother": "P-mum", **fathers},
        "2019-05-02T09:00:00+01:00",
        source="midwifery/nbt",
    )


def assessment(
    at: str = ASSESSED, kind: str = "child-and-family", seen: tuple[str, ...] = ("P-mum", "C-1"), **extra: Any
) -> Event:
    return ev("assessment.completed", {"kind": kind, "persons_seen": list(seen), **extra}, at, source=CSC)


def test_assessment_without_the_father_is_flagged_from_the_assessment() -> None:
    a = assessment()
    v = view(registered(father="P-dad"), a)
    assert flags(RULE, v, "2022-03-01T14:59:59+00:00") == []
    (flag,) = open_flags(RULE, v, "2022-03-01T15:00:00+00:00")
    assert flag.due == t(ASSESSED) and flag.evidence == (a.id,) and flag.concerns == (CSC,)
    assert "P-dad" in flag.detail


def test_each_male_parent_figure_is_its_own_flag_mother_is_not_one() -> None:
    partner = ev(
        "person.linked",
        {"person": "P-partner", "role": "parent's-partner"},
        "2021-01-01T10:00:00+00:00",
        source=CSC,
    )
    (a,) = [assessment()]
    assert len(flags(RULE, view(registered(father="P-dad"), partner, a), "2022-04-01T00:00:00+01:00")) == 2
    assert flags(RULE, view(registered(), a), "2022-04-01T00:00:00+01:00") == []


def test_seen_or_reason_recorded_is_quiet() -> None:
    seen = assessment(seen=("P-mum", "P-dad"))
    reason = assessment(not_seen_reasons={"P-dad": "in custody"})
    assert flags(RULE, view(registered(father="P-dad"), seen), "2022-04-01T00:00:00+01:00") == []
    assert flags(RULE, view(registered(father="P-dad"), reason), "2022-04-01T00:00:00+01:00") == []


def test_other_kinds_of_assessment_are_out_of_scope() -> None:
    assert (
        flags(RULE, view(registered(father="P-dad"), assessment(kind="DASH")), "2022-04-01T00:00:00+01:00")
        == []
    )


def test_assessment_is_judged_by_the_father_figures_known_when_it_was_recorded() -> None:
    """A partner who appears after the assessment does not make it wrong; the next one must see him."""
    linked = ev(
        "person.linked", {"person": "P-dad", "role": "father"}, "2022-03-10T10:00:00+00:00", source=CSC
    )
    assert flags(RULE, view(registered(), assessment(), linked), "2022-04-01T00:00:00+01:00") == []
    next_one = assessment("2022-03-29T11:00:00+01:00")
    (flag,) = flags(RULE, view(registered(), assessment(), linked, next_one), "2022-04-01T00:00:00+01:00")
    assert flag.evidence == (next_one.id,)


def test_correction_adding_him_closes_the_gap_from_the_correction() -> None:
    a = assessment()
    fixed = correct(a, {"persons_seen": ["P-mum", "C-1", "P-dad"]}, "2022-03-03T10:00:00+00:00")
    v = view(registered(father="P-dad"), a, fixed)
    assert len(open_flags(RULE, v, "2022-03-03T09:59:59+00:00")) == 1
    (flag,) = flags(RULE, v, "2022-03-03T10:00:00+00:00")
    assert flag.status == "resolved" and flag.resolved_by == fixed.id
    assert flag.resolved_at == t("2022-03-03T10:00:00+00:00")


def test_later_assessment_including_him_resolves() -> None:
    later = assessment("2022-03-29T11:00:00+01:00", seen=("P-mum", "P-dad"))
    (flag,) = flags(RULE, view(registered(father="P-dad"), assessment(), later), "2022-04-01T00:00:00+01:00")
    assert flag.status == "resolved" and flag.resolved_by == later.id
    assert flag.resolved_at == t("2022-03-29T11:00:00+01:00")


def test_withdrawn_assessment_is_quiet_from_the_withdrawal() -> None:
    a = assessment()
    v = view(registered(father="P-dad"), a, withdraw(a, "2022-03-02T10:00:00+00:00"))
    assert len(flags(RULE, v, "2022-03-02T09:59:59+00:00")) == 1
    assert flags(RULE, v, "2022-03-02T10:00:00+00:00") == []


def test_delivery_order_does_not_change_flags() -> None:
    events = [
        registered(father="P-dad"),
        assessment(),
        ev(
            "person.linked",
            {"person": "P-sp", "role": "step-parent"},
            "2022-03-05T10:00:00+00:00",
            source=CSC,
        ),
        assessment("2022-03-29T11:00:00+01:00", seen=("P-mum", "P-dad")),
    ]
    assert_order_independent(RULE, events, "2022-04-01T00:00:00+01:00")
