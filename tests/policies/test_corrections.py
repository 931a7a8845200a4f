"""Walking an event's versions to find the correction that closed a gap (policies/corrections.py)."""

from __future__ import annotations

from policies.corrections import GapHistory, gap_history, versions
from policies.view import Event
from tests.policies.helpers import correct, ev, t, view

POLICE = "police/avon-somerset"


def referral(to: str) -> Event:
    return ev("referral.made", {"referral_ref": "R-1", "to": to, "reason": "DA"}, "2020-03-02T10:00:00Z",
              source=POLICE)  # fmt: skip


def vague(event: Event) -> bool:
    return "/" not in str(event.data["to"])


def test_versions_fold_corrections_in_recorded_order_ignoring_foreign_ones() -> None:
    r = referral("health")
    second = correct(r, {"to": "csc/somerset"}, "2020-03-05T10:00:00Z")
    first = correct(r, {"to": "the GP", "reason": "typo"}, "2020-03-04T10:00:00Z")
    foreign = correct(r, {"to": "gp/L85001"}, "2020-03-03T10:00:00Z", source="csc/somerset")
    v = view(r, second, first, foreign)
    (made,) = v.of_type("referral.made")
    found = versions(v, made)
    assert [version.data["to"] for version, _ in found] == ["health", "the GP", "csc/somerset"]
    assert [c.id if c else None for _, c in found] == [None, first.id, second.id]
    assert found[1][0].data["reason"] == "DA"  # a correction's own reason is not the event's


def test_gap_history_from_first_gap_to_the_correction_that_closed_it() -> None:
    r = referral("health")
    fix = correct(r, {"to": "csc/somerset"}, "2020-03-05T10:00:00Z")
    v = view(r, fix)
    (made,) = v.of_type("referral.made")
    assert gap_history(v, made, vague) == GapHistory(r.recordedtime, fix)


def test_gap_history_none_without_a_gap_and_open_when_reopened() -> None:
    r = referral("csc/somerset")
    v = view(r)
    assert gap_history(v, v.of_type("referral.made")[0], vague) is None
    broken = correct(r, {"to": "health"}, "2020-03-04T10:00:00Z")
    fixed = correct(r, {"to": "csc/somerset"}, "2020-03-05T10:00:00Z")
    again = correct(r, {"to": "social care"}, "2020-03-06T10:00:00Z")
    v = view(r, broken, fixed, again)
    assert gap_history(v, v.of_type("referral.made")[0], vague) == GapHistory(t("2020-03-04T10:00:00Z"), None)
