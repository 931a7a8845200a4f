"""vague-referral-destination: a ``referral.made`` whose ``to`` is not a registered agency is
flagged until a ``referral.corrected`` names one (issue 3; Child Charlie 2.6)."""

from __future__ import annotations

from policies.engine import Flag
from policies.vague_referral_destination import VagueReferralDestination
from policies.view import ChildView, Event
from tests.policies.helpers import REGISTERED, correct, ev, flags, t, view, withdraw
from tests.policies.ordering import assert_order_independent

RULE = VagueReferralDestination()
POLICE = "police/avon-somerset"
REFERRED = "2020-03-02T10:00:00Z"
LATER = "2020-06-30T00:00:00Z"


def referral(to: str, at: str = REFERRED) -> Event:
    return ev("referral.made", {"referral_ref": "R-1", "to": to, "reason": "DA"}, at, source=POLICE)


def only(found: list[Flag]) -> Flag:
    assert len(found) == 1, [f.to_json() for f in found]
    return found[0]


def test_fires_when_the_referral_is_recorded() -> None:
    r = referral("health")
    v = view(r)
    assert flags(RULE, v, "2020-03-02T09:59:59Z") == []
    flag = only(flags(RULE, v, REFERRED))
    assert (flag.status, flag.rule, flag.due) == ("open", "vague-referral-destination", t(REFERRED))
    assert flag.evidence == (r.id,)
    assert flag.concerns == (POLICE,)
    assert "'health'" in flag.detail


def test_registered_destination_is_quiet() -> None:
    assert flags(RULE, view(*(referral(a) for a in REGISTERED)), LATER) == []


def test_well_formed_but_unregistered_agency_fires() -> None:
    assert only(flags(RULE, view(referral("csc/nowhere")), LATER)).status == "open"


def test_agency_counts_only_once_registered() -> None:
    at = {**dict.fromkeys(REGISTERED, t("2000-01-01T00:00:00Z")), "idva/somerset": t("2020-03-10T00:00:00Z")}
    v = ChildView.build("C-1", [referral("idva/somerset")], at)
    assert only(flags(RULE, v, "2020-03-09T23:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-10T00:00:00Z") == []


def test_correction_naming_a_registered_agency_resolves_from_then() -> None:
    r = referral("health")
    fix = correct(r, {"to": "gp/L85001"}, "2020-03-04T10:00:00Z")
    v = view(r, fix)
    assert only(flags(RULE, v, "2020-03-04T09:59:59Z")).status == "open"
    flag = only(flags(RULE, v, "2020-03-04T10:00:00Z"))
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("resolved", fix.id, fix.recordedtime)
    assert flag.due == r.recordedtime
    assert "'health'" in flag.detail  # the vague value it had, not the corrected one


def test_correction_making_a_good_referral_vague_is_due_from_the_correction() -> None:
    r = referral("csc/somerset")
    bad = correct(r, {"to": "social care"}, "2020-03-04T10:00:00Z")
    flag = only(flags(RULE, view(r, bad), LATER))
    assert (flag.status, flag.due) == ("open", bad.recordedtime)


def test_correction_to_another_vague_value_still_fires() -> None:
    r = referral("health")
    v = view(r, correct(r, {"to": "the GP"}, "2020-03-04T10:00:00Z"))
    assert "'the GP'" in only(flags(RULE, v, LATER)).detail


def test_correction_by_another_agency_is_ignored() -> None:
    r = referral("health")
    v = view(r, correct(r, {"to": "gp/L85001"}, "2020-03-04T10:00:00Z", source="csc/somerset"))
    assert only(flags(RULE, v, LATER)).status == "open"


def test_correction_from_the_same_source_of_another_family_is_ignored() -> None:
    r = referral("health")
    wrong = ev(
        "incident.corrected",
        {"original": r.id, "reason": "x", "to": "gp/L85001"},
        "2020-03-04T10:00:00Z",
        source=POLICE,
    )
    assert only(flags(RULE, view(r, wrong), LATER)).status == "open"


def test_withdrawn_referral_no_longer_counts() -> None:
    r = referral("health")
    v = view(r, withdraw(r, "2020-03-04T10:00:00Z"))
    assert only(flags(RULE, v, "2020-03-04T09:59:59Z")).status == "open"
    assert flags(RULE, v, "2020-03-04T10:00:00Z") == []


def test_each_vague_referral_is_its_own_flag() -> None:
    a, b = referral("health"), referral("education", "2020-03-03T10:00:00Z")
    assert [f.evidence for f in flags(RULE, view(a, b, referral("csc/somerset")), LATER)] == [
        (a.id,),
        (b.id,),
    ]


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [
        ev("referral.made", {"referral_ref": f"R-{n}", "to": to, "reason": "DA"}, REFERRED, source=POLICE)
        for n, to in enumerate(("health", "school", "csc/somerset"))
    ]
    assert_order_independent(RULE, events, LATER)
