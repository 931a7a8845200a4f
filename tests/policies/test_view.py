"""policies.view: the per-child view; ``known_at`` and ``effective`` (corrections, withdrawals,
amendments that do not count)."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime

import pytest

from ledger.vocabulary import is_amendment
from policies.view import SORT_KEY, ChildView, Event
from tests.policies.generated import history, registered_agencies
from tests.policies.helpers import REGISTERED, correct, ev, t, view, withdraw

POLICE = "police/avon-somerset"
CSC = "csc/somerset"


def referral(at: str = "2020-03-02T10:00:00Z", **data: object) -> Event:
    return ev(
        "referral.made", {"referral_ref": "R-1", "to": "health", "reason": "DA", **data}, at, source=POLICE
    )


def test_build_sorts_by_time_then_recorded_then_id() -> None:
    a = ev(
        "contact.recorded",
        {"person": "F-1"},
        "2020-03-02T10:00:00Z",
        source=CSC,
        recorded="2020-03-05T00:00:00Z",
    )
    b = ev(
        "contact.recorded",
        {"person": "F-1"},
        "2020-03-02T10:00:00Z",
        source=CSC,
        recorded="2020-03-03T00:00:00Z",
    )
    c = ev(
        "contact.recorded",
        {"person": "F-1"},
        "2020-03-01T10:00:00Z",
        source=CSC,
        recorded="2020-03-09T00:00:00Z",
    )
    v = view(a, b, c)
    assert v.events == (c, b, a)
    assert view(c, a, b).events == v.events


def test_known_at_cuts_by_recorded_time_inclusive() -> None:
    a = ev(
        "contact.recorded",
        {"person": "F-1"},
        "2020-03-01T10:00:00Z",
        source=CSC,
        recorded="2020-03-05T00:00:00Z",
    )
    b = ev("contact.recorded", {"person": "F-1"}, "2020-03-04T10:00:00Z", source=CSC)
    v = view(a, b)
    assert v.known_at(t("2020-03-04T23:59:59Z")).events == (b,)
    assert v.known_at(t("2020-03-05T00:00:00Z")).events == (a, b)
    assert v.known_at(t("2020-03-01T00:00:00Z")).events == ()


def test_known_at_cuts_registered_agencies() -> None:
    v = ChildView.build("C-1", [], {CSC: t("2020-01-01T00:00:00Z"), "idva/x": t("2020-03-01T00:00:00Z")})
    assert v.known_at(t("2020-02-01T00:00:00Z")).is_registered_agency(CSC)
    assert not v.known_at(t("2020-02-01T00:00:00Z")).is_registered_agency("idva/x")
    assert v.known_at(t("2020-03-01T00:00:00Z")).is_registered_agency("idva/x")


def test_is_registered_agency() -> None:
    v = view()
    assert all(v.is_registered_agency(a) for a in REGISTERED)
    assert not v.is_registered_agency("health")


def test_correction_replaces_fields_and_keeps_the_rest() -> None:
    r = referral()
    fix = correct(r, {"to": "gp/L85001"}, "2020-03-04T10:00:00Z")
    (effective,) = view(r, fix).effective()
    assert effective.id == r.id
    assert effective.data["to"] == "gp/L85001"
    assert effective.data["reason"] == "DA"
    assert effective.data["referral_ref"] == "R-1"
    assert "original" not in effective.data and "reason" in effective.data
    assert effective.corrected_by == (fix.id,)
    assert (effective.time, effective.recordedtime, effective.source) == (r.time, r.recordedtime, r.source)


def test_correction_reason_does_not_overwrite_the_original_reason() -> None:
    r = referral()
    (effective,) = view(r, correct(r, {"to": "gp/L85001"}, "2020-03-04T10:00:00Z")).effective()
    assert effective.data["reason"] == "DA"


def test_correction_counts_only_from_the_moment_it_was_recorded() -> None:
    r = referral()
    v = view(r, correct(r, {"to": "gp/L85001"}, "2020-03-04T10:00:00Z"))
    assert v.known_at(t("2020-03-04T09:59:59Z")).effective()[0].data["to"] == "health"
    assert v.known_at(t("2020-03-04T10:00:00Z")).effective()[0].data["to"] == "gp/L85001"


def test_corrections_apply_in_recorded_order_later_wins() -> None:
    r = referral()
    first = correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z")
    # Second correction claims an earlier time but was recorded later: it wins.
    second = correct(r, {"to": "gp/B"}, "2020-03-03T10:00:00Z", recorded="2020-03-05T10:00:00Z")
    (effective,) = view(second, r, first).effective()
    assert effective.data["to"] == "gp/B"
    assert effective.corrected_by == (first.id, second.id)


def test_corrections_accumulate_fields() -> None:
    r = referral()
    (effective,) = view(
        r,
        correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z"),
        correct(r, {"incident_refs": ["INC-1"]}, "2020-03-05T10:00:00Z"),
    ).effective()
    assert (effective.data["to"], effective.data["incident_refs"]) == ("gp/A", ["INC-1"])


def test_withdrawal_removes_the_event_from_then() -> None:
    r, other = referral(), referral("2020-03-03T10:00:00Z")
    v = view(r, other, withdraw(r, "2020-03-04T10:00:00Z"))
    assert v.effective() == (other,)
    assert v.known_at(t("2020-03-04T09:59:59Z")).effective() == (r, other)
    assert len(v.events) == 3  # the original and the withdrawal stay in the chronology


def test_withdrawal_after_a_correction_still_removes() -> None:
    r = referral()
    v = view(r, correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z"), withdraw(r, "2020-03-05T10:00:00Z"))
    assert v.effective() == ()


def test_amendments_are_not_effective_events() -> None:
    r = referral()
    v = view(r, correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z"))
    assert [e.type for e in v.effective()] == ["referral.made"]


@pytest.mark.parametrize("amend", ["correct", "withdraw"])
def test_amendment_from_another_source_is_ignored(amend: str) -> None:
    r = referral()
    a = (
        correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z", source=CSC)
        if amend == "correct"
        else withdraw(r, "2020-03-04T10:00:00Z", source=CSC)
    )
    assert view(r, a).effective() == (r,)


def test_amendment_of_another_family_is_ignored() -> None:
    r = referral()
    wrong = ev("contact.withdrawn", {"original": r.id, "reason": "x"}, "2020-03-04T10:00:00Z", source=POLICE)
    wrong_fix = ev(
        "incident.corrected",
        {"original": r.id, "reason": "x", "to": "gp/A"},
        "2020-03-04T10:00:00Z",
        source=POLICE,
    )
    assert view(r, wrong, wrong_fix).effective() == (r,)


def test_amendment_of_an_unknown_original_is_ignored() -> None:
    r = referral()
    stray = ev(
        "referral.withdrawn",
        {"original": "no-such-event", "reason": "x"},
        "2020-03-04T10:00:00Z",
        source=POLICE,
    )
    assert view(r, stray).effective() == (r,)


def test_amendment_may_name_any_type_of_its_family() -> None:
    closed = ev(
        "referral.closed", {"referral_ref": "R-1", "outcome": "nfa"}, "2020-03-04T10:00:00Z", source=CSC
    )
    fix = ev(
        "referral.corrected",
        {"original": closed.id, "reason": "x", "outcome": "step-down"},
        "2020-03-05T10:00:00Z",
        source=CSC,
    )
    (effective,) = view(closed, fix).effective()
    assert effective.data["outcome"] == "step-down"


def test_an_amendment_cannot_be_amended() -> None:
    r = referral()
    fix = correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z")
    undo = ev(
        "referral.withdrawn", {"original": fix.id, "reason": "x"}, "2020-03-05T10:00:00Z", source=POLICE
    )
    (effective,) = view(r, fix, undo).effective()
    assert effective.data["to"] == "gp/A"


def test_effective_does_not_change_the_original_events() -> None:
    r = referral()
    v = view(r, correct(r, {"to": "gp/A"}, "2020-03-04T10:00:00Z"))
    v.effective()
    assert r.data["to"] == "health"
    assert v.events[0].data["to"] == "health"
    with pytest.raises(TypeError):
        v.effective()[0].data["to"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.type = "x"  # type: ignore[misc]


def test_of_type_returns_effective_events_in_time_order() -> None:
    late, early = referral("2020-03-05T10:00:00Z"), referral("2020-03-01T10:00:00Z")
    gone = referral("2020-03-03T10:00:00Z")
    c = ev("contact.recorded", {"person": "F-1"}, "2020-03-02T10:00:00Z", source=CSC)
    v = view(late, c, early, gone, withdraw(gone, "2020-03-06T10:00:00Z"))
    assert v.of_type("referral.made") == [early, late]
    assert v.of_type("referral.made", "contact.recorded") == [early, c, late]


def test_from_envelope() -> None:
    e = Event.from_envelope(
        {
            "id": "e-1",
            "type": "referral.made",
            "source": POLICE,
            "subject": "C-1",
            "time": "2020-03-02T10:00:00+00:00",
            "recordedtime": "2020-03-02T11:00:00+01:00",
            "data": {"referral_ref": "R-1", "to": "health", "reason": "DA"},
            "sequence": 1,
        }
    )
    assert (e.id, e.subject, e.time, e.recordedtime) == (
        "e-1",
        "C-1",
        t("2020-03-02T10:00:00Z"),
        t("2020-03-02T10:00:00Z"),
    )
    assert e.data["to"] == "health"


def test_indexes_answer_as_a_scan_would() -> None:
    """of_type, notifications_to and notifications_about are built once per view; they must give
    what a scan of effective() gives, in the same order, corrections and withdrawals applied."""
    inc = ev("incident.reported", {"incident_ref": "INC-1"}, "2020-03-01T10:00:00Z", source=POLICE)
    by_ref = ev(
        "notification.sent", {"to": "gp/L85001", "about": ["INC-1"]}, "2020-03-02T10:00:00Z", source=POLICE
    )
    by_id = ev(
        "notification.sent", {"to": "gp/L85001", "about": [inc.id]}, "2020-03-01T12:00:00Z", source=POLICE
    )
    other = ev(
        "notification.sent",
        {"to": "school/100001", "about": ["INC-9"]},
        "2020-03-01T11:00:00Z",
        source=POLICE,
    )
    moved = ev(
        "notification.sent",
        {"to": "school/100001", "about": ["INC-1"]},
        "2020-03-01T13:00:00Z",
        source=POLICE,
    )
    fix = correct(moved, {"to": "phn/somerset"}, "2020-03-03T10:00:00Z")
    gone = withdraw(other, "2020-03-03T11:00:00Z")
    v = view(inc, by_ref, by_id, other, moved, fix, gone)
    effective = v.effective()
    assert v.of_type("notification.sent") == [e for e in effective if e.type == "notification.sent"]
    assert v.of_type("incident.reported", "notification.sent") == [
        e for e in effective if e.type in ("incident.reported", "notification.sent")
    ]
    assert [n.id for n in v.notifications_to("gp/L85001")] == [by_id.id, by_ref.id]
    assert [n.id for n in v.notifications_to("phn/somerset")] == [moved.id]
    assert v.notifications_to("school/100001") == ()
    assert [n.id for n in v.notifications_about(inc)] == [by_id.id, moved.id, by_ref.id]
    assert [n.id for n in v.notifications_about(inc, to="phn/somerset")] == [moved.id]
    assert v.event(fix.id) == fix


def test_household_is_cut_by_known_at_and_never_includes_the_child() -> None:
    mine = ev("person.linked", {"person": "M-1", "role": "mother"}, "2020-03-01T10:00:00Z", source=CSC)
    early = ev(
        "person.linked", {"person": "M-1", "role": "mother"}, "2020-03-01T10:00:00Z", source=CSC, child="C-2"
    )
    late = ev(
        "incident.reported", {"incident_ref": "INC-2"}, "2020-03-05T10:00:00Z", source=POLICE, child="C-2"
    )
    v = ChildView.build("C-1", [mine], {}, {"C-2": [late, early], "C-1": [mine], "C-3": []})
    assert list(v.household) == ["C-2", "C-3"]
    assert v.household["C-2"] == (early, late)
    assert [o.child for o in v.others()] == ["C-2"]  # a candidate with no events is no sibling view
    cut = v.known_at(t("2020-03-02T00:00:00Z"))
    assert cut.household["C-2"] == (early,)
    assert [o.events for o in cut.others()] == [(early,)]


# Every index ChildView.adopt takes over, and the order each keeps (dicts: insertion order too).
ADOPTED = (
    "_recorded_by_type",
    "_effective",
    "_notifications_by_recipient",
    "_notifications_by_about",
    "_aware_since",
    "_first_from",
    "_by_id",
)


@pytest.mark.parametrize(("seed", "amended"), [(0, False), (1, False), (2, False), (3, False), (4, True)])
def test_an_adopted_index_is_the_one_a_fresh_build_makes(seed: int, amended: bool) -> None:
    """Live traffic: each view of a child adopts the previous one's indexes (some built, some
    not), extended by what it adds; every index must equal, in content and order, the one a
    fresh view builds. Generated histories hold back-dated events (and, ``amended``,
    corrections and withdrawals, which make every later view build afresh), so some views must
    refuse and others adopt."""
    rng = random.Random(seed)
    events = sorted(history(f"C-{seed}", 200, seed), key=lambda e: (e.recordedtime, e.id))
    if not amended:
        events = [e for e in events if not is_amendment(e.type)]
    agencies = registered_agencies()
    arrived: list[Event] = []
    previous: ChildView | None = None
    outcomes: list[bool] = []
    while events:
        arrived += [events.pop(0) for _ in range(min(rng.randint(1, 4), len(events)))]
        current = ChildView.build(f"C-{seed}", arrived, agencies)
        if previous is not None:
            outcomes.append(current.adopt(previous))
        fresh = ChildView.build(f"C-{seed}", arrived, agencies)
        for name in rng.sample(ADOPTED, rng.randint(1, len(ADOPTED))):
            mine, theirs = getattr(current, name), getattr(fresh, name)
            assert mine == theirs, (seed, len(arrived), name)
            if isinstance(mine, dict):
                assert list(mine) == list(theirs), (seed, len(arrived), name)
        previous = current
    assert False in outcomes
    assert amended or True in outcomes


def test_a_view_adopts_nothing_from_another_child_or_once_it_has_built_its_own() -> None:
    events = history("C-1", 30, 1)
    old = ChildView.build("C-1", events[:20], registered_agencies())
    old.of_type("incident.reported")
    assert not ChildView.build("C-2", events, registered_agencies()).adopt(old)
    built = ChildView.build("C-1", events, registered_agencies())
    built.of_type("incident.reported")
    assert not built.adopt(old)


def _indexed(v: ChildView) -> ChildView:
    for name in ADOPTED:
        getattr(v, name)
    return v


def test_notifications_added_in_one_batch_are_indexed_in_recorded_order() -> None:
    """Recorded together, the later in time has the smaller id: the indexes list notifications
    in recorded order, ties by id, not in the view's time order."""
    first = ev("incident.reported", {"incident_ref": "INC-1"}, "2020-03-02T10:00:00Z", source=POLICE)
    data = {"to": "gp/L85001", "about": ["INC-1"]}
    late = ev(
        "notification.sent",
        data,
        "2020-03-03T10:00:00Z",
        source=POLICE,
        id="b",
        recorded="2020-03-04T00:00:00Z",
    )
    early = ev(
        "notification.sent",
        data,
        "2020-03-03T11:00:00Z",
        source=POLICE,
        id="a",
        recorded="2020-03-04T00:00:00Z",
    )
    adopted = view(first, late, early)
    assert adopted.adopt(_indexed(view(first)))
    fresh = view(first, late, early)
    assert adopted.notifications_to("gp/L85001") == fresh.notifications_to("gp/L85001")
    assert [n.id for n in adopted.notifications_about(first)] == ["a", "b"]


def test_an_event_recorded_before_what_the_view_held_is_not_adopted() -> None:
    """Later in time but recorded earlier than the previous view's last event: when the agency
    became aware moves earlier, so the view builds its indexes afresh."""
    known = ev(
        "contact.recorded",
        {"person": "M-1"},
        "2020-03-02T10:00:00Z",
        source=CSC,
        recorded="2020-03-09T00:00:00Z",
    )
    earlier = ev(
        "contact.recorded",
        {"person": "M-1"},
        "2020-03-03T10:00:00Z",
        source=CSC,
        recorded="2020-03-05T00:00:00Z",
    )
    adopted = view(known, earlier)
    assert not adopted.adopt(_indexed(view(known)))
    assert adopted.aware_since()[CSC] == t("2020-03-05T00:00:00Z")


@pytest.mark.parametrize("seed", range(4))
def test_a_view_built_from_the_previous_one_is_a_fresh_build(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ChildView.build(..., previous)`` keeps the previous view's order and sorts only what
    follows it: a child's events and a sibling's arrive in batches, in recorded order or
    shuffled (back-dated and late events sort before what the previous view held), sometimes
    in a list that does not start with the previous one's (shuffled, its first event left out,
    the siblings left out);
    every view must equal, in order, a fresh build of the same events, and most builds of live
    traffic must have sorted only what was added (counted by the sort key's calls)."""
    calls = [0]

    def counted(event: Event) -> tuple[datetime, datetime, str]:
        calls[0] += 1
        return SORT_KEY(event)

    rng = random.Random(seed)
    mine = history(f"C-{seed}", 150, seed)
    theirs = history(f"S-{seed}", 60, seed + 100)
    others = history(f"T-{seed}", 60, seed + 200)
    live = seed % 2 == 1
    if live:  # by recorded time, as the ledger accepts them
        mine.sort(key=lambda e: (e.recordedtime, e.id))
        theirs.sort(key=lambda e: (e.recordedtime, e.id))
        others.sort(key=lambda e: (e.recordedtime, e.id))
    agencies = registered_agencies()
    arrived: list[Event] = []
    sibling: list[Event] = []
    other: list[Event] = []
    previous: ChildView | None = None
    builds = cheap = 0  # builds, and those that sorted fewer events than given
    while mine:
        take = rng.randint(1, 6)
        arrived, mine = arrived + mine[:take], mine[take:]
        take = rng.randint(0, 2)
        sibling, theirs = sibling + theirs[:take], theirs[take:]
        other, others = other + others[:take], others[take:]
        given = rng.choice((list(arrived),) * 8 + (rng.sample(arrived, len(arrived)), arrived[1:]))
        household = {f"S-{seed}": list(sibling), f"T-{seed}": list(other)} if rng.random() > 0.1 else {}
        monkeypatch.setattr("policies.view.SORT_KEY", counted)
        calls[0] = 0
        built = ChildView.build(f"C-{seed}", given, agencies, household, previous)
        builds, cheap = builds + 1, cheap + (calls[0] < len(given))
        monkeypatch.setattr("policies.view.SORT_KEY", SORT_KEY)
        fresh = ChildView.build(f"C-{seed}", given, agencies, household)
        assert built.events == fresh.events
        assert built.household == fresh.household
        previous = built
    assert cheap, builds  # the fast way was taken


def test_what_is_derived_once_per_view_is_read_by_every_rule_that_asks() -> None:
    """``ChildView.derived`` builds a value once per view (``policies.facts.family_of``: one
    ``Family`` for the three rules that read it) and records its types as read on every call,
    so a rule that found it already made still reads what it is made of (the engine re-runs
    it when they change), and another view builds its own."""
    from policies.facts import FAMILY_TYPES, Family, family_of
    from policies.view import reading

    events = [
        ev("child.registered", {"dob": "2019-06-01", "mother": "P-1"}, "2020-01-01T09:00:00Z", source=CSC),
        ev("gp.registered", {"person": "P-1", "practice": "L1"}, "2020-01-02T09:00:00Z", source="gp/L1"),
    ]
    one = view(*events)
    with reading() as first:
        made = family_of(one)
    with reading() as second:
        again = family_of(one)
    assert again is made and isinstance(made, Family)
    assert first == second == set(FAMILY_TYPES)
    other = view(*events)
    assert family_of(other) is not made
    assert [state[0].id for state in family_of(other).states] == [e.id for e in events]
