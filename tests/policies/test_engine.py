"""policies.engine: findings -> flags; lifecycle (acknowledged, dismissed, resolved) and
determinism (issue 3, "How policies work")."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

import pytest

from policies.base import Finding, Policy, Severity
from policies.engine import FLAG_NAMESPACE, Flag, evaluate, flag_id, name_uuid
from policies.registry import ALL_POLICIES
from policies.vague_referral_destination import VagueReferralDestination
from policies.view import ChildView, Event
from tests.policies.helpers import ev, evaluation, flags, t, view

POLICE = "police/avon-somerset"
CSC = "csc/somerset"
PARTNERSHIP = "partnership/somerset"
LATER = "2021-06-30T00:00:00Z"


class EveryConcern(Policy):
    """Test rule: one gap per child whose evidence is every ``incident.reported`` so far."""

    id: ClassVar[str] = "test-every-concern"
    version: ClassVar[int] = 3
    severity: ClassVar[Severity] = Severity.LOW
    title: ClassVar[str] = "test"
    source: ClassVar[str] = "test source"
    explanation: ClassVar[str] = "test explanation"
    action: ClassVar[str] = "test action"

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        incidents = view.of_type("incident.reported")
        if incidents:
            yield Finding(
                key="k",
                due=incidents[0].recordedtime,
                evidence=tuple(e.id for e in incidents),
                concerns=(POLICE, POLICE),
            )


RULE = EveryConcern()
FLAG = flag_id(RULE.id, "C-1", "k")


def incident(at: str, ref: str = "INC-1") -> Event:
    return ev(
        "incident.reported",
        {"incident_ref": ref, "children_present": True, "domestic_abuse": True, "parties": []},
        at,
        source=POLICE,
    )


def dismissed(at: str, evidence: list[str], flag: str = FLAG) -> Event:
    data: dict[str, Any] = {"flag": flag, "by": "DSL Jones", "reason": "known to CSC", "evidence": evidence}
    return ev("flag.dismissed", data, at, source=PARTNERSHIP)


def acknowledged(at: str, by: str = "DSL Jones", flag: str = FLAG) -> Event:
    return ev("flag.acknowledged", {"flag": flag, "by": by}, at, source=PARTNERSHIP)


def test_flag_carries_the_rule_and_the_finding() -> None:
    i = incident("2020-03-02T10:00:00Z")
    (flag,) = flags(RULE, view(i), LATER)
    assert flag.id == FLAG
    assert (flag.rule, flag.version, flag.child, flag.severity) == (RULE.id, 3, "C-1", Severity.LOW)
    assert (flag.source, flag.explanation, flag.action, flag.title) == (
        "test source",
        "test explanation",
        "test action",
        "test",
    )
    assert (flag.due, flag.evidence, flag.concerns, flag.status) == (
        i.recordedtime,
        (i.id,),
        (POLICE,),
        "open",
    )


def test_flag_id_is_stable_and_distinguishes_rule_child_and_key() -> None:
    assert flag_id("r", "C-1", "k") == flag_id("r", "C-1", "k")
    assert (
        len(
            {
                flag_id("r", "C-1", "k"),
                flag_id("s", "C-1", "k"),
                flag_id("r", "C-2", "k"),
                flag_id("r", "C-1", "j"),
            }
        )
        == 4
    )


def test_pending_deadline_is_not_a_flag_but_sets_next_due() -> None:
    i = incident("2020-03-02T10:00:00Z")
    result = evaluation(RULE, view(i), "2020-03-02T09:00:00Z")
    assert result.flags == () and result.next_due is None  # not yet recorded: nothing known

    class Future(EveryConcern):
        def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
            for f in super().findings(view, as_of):
                yield Finding(f.key, t("2020-03-10T00:00:00Z"), f.evidence, f.concerns)

    pending = evaluate(view(i), t("2020-03-09T23:59:59Z"), [Future()])
    assert pending.flags == () and pending.next_due == t("2020-03-10T00:00:00Z")
    raised = evaluate(view(i), t("2020-03-10T00:00:00Z"), [Future()])
    assert len(raised.flags) == 1 and raised.next_due is None


def test_dismissal_stands_while_the_evidence_is_unchanged() -> None:
    i = incident("2020-03-02T10:00:00Z")
    v = view(i, dismissed("2020-03-03T10:00:00Z", [i.id]))
    (before,) = flags(RULE, v, "2020-03-03T09:59:59Z")
    assert before.status == "open"
    (flag,) = flags(RULE, v, LATER)
    assert (flag.status, flag.dismissed_by, flag.dismissed_reason) == (
        "dismissed",
        "DSL Jones",
        "known to CSC",
    )
    assert not flag.is_open
    assert evaluation(RULE, v, LATER).open == ()


def test_new_evidence_reopens_a_dismissed_flag() -> None:
    i, j = incident("2020-03-02T10:00:00Z"), incident("2020-03-05T10:00:00Z", "INC-2")
    v = view(i, dismissed("2020-03-03T10:00:00Z", [i.id]), j)
    assert [f.status for f in flags(RULE, v, "2020-03-05T09:59:59Z")] == ["dismissed"]
    (flag,) = flags(RULE, v, "2020-03-05T10:00:00Z")
    assert (flag.status, flag.dismissed_by) == ("open", None)
    assert flag.evidence == tuple(sorted((i.id, j.id)))


def test_dismissing_again_with_the_new_evidence_stands() -> None:
    i, j = incident("2020-03-02T10:00:00Z"), incident("2020-03-05T10:00:00Z", "INC-2")
    v = view(i, dismissed("2020-03-03T10:00:00Z", [i.id]), j, dismissed("2020-03-06T10:00:00Z", [i.id, j.id]))
    assert [f.status for f in flags(RULE, v, LATER)] == ["dismissed"]


def test_dismissal_without_evidence_does_not_dismiss() -> None:
    i = incident("2020-03-02T10:00:00Z")
    assert [f.status for f in flags(RULE, view(i, dismissed("2020-03-03T10:00:00Z", [])), LATER)] == ["open"]


def test_dismissal_of_another_flag_does_not_apply() -> None:
    i = incident("2020-03-02T10:00:00Z")
    other = flag_id(RULE.id, "C-2", "k")
    assert [
        f.status for f in flags(RULE, view(i, dismissed("2020-03-03T10:00:00Z", [i.id], flag=other)), LATER)
    ] == ["open"]


def test_acknowledgement_keeps_the_flag_open() -> None:
    i = incident("2020-03-02T10:00:00Z")
    v = view(i, acknowledged("2020-03-03T10:00:00Z"))
    (before,) = flags(RULE, v, "2020-03-03T09:59:59Z")
    assert before.acknowledged_by is None
    result = evaluation(RULE, v, LATER)
    (flag,) = result.flags
    assert (flag.status, flag.acknowledged_by, flag.is_open) == ("open", "DSL Jones", True)
    assert result.open == (flag,)


def test_later_acknowledgement_wins() -> None:
    i = incident("2020-03-02T10:00:00Z")
    v = view(i, acknowledged("2020-03-04T10:00:00Z", "B"), acknowledged("2020-03-03T10:00:00Z", "A"))
    assert flags(RULE, v, LATER)[0].acknowledged_by == "B"


def test_resolution_wins_over_dismissal() -> None:
    r = ev(
        "referral.made",
        {"referral_ref": "R-1", "to": "health", "reason": "DA"},
        "2020-03-02T10:00:00Z",
        source=POLICE,
    )
    rule = VagueReferralDestination()
    fid = flag_id(rule.id, "C-1", r.id)
    v = view(r, dismissed("2020-03-03T10:00:00Z", [r.id], flag=fid))
    (flag,) = flags(rule, v, LATER)
    assert flag.status == "dismissed"

    class Resolved(VagueReferralDestination):
        def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
            for f in super().findings(view, as_of):
                yield Finding(
                    f.key, f.due, f.evidence, f.concerns, f.detail, resolved_by="x", resolved_at=f.due
                )

    (resolved,) = evaluate(v, t(LATER), [Resolved()]).flags
    assert (resolved.status, resolved.resolved_by, resolved.dismissed_by) == ("resolved", "x", None)


def test_to_json_is_plain_json() -> None:
    i = incident("2020-03-02T10:00:00Z")
    (flag,) = flags(RULE, view(i, acknowledged("2020-03-03T10:00:00Z")), LATER)
    data = flag.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "open" and data["severity"] == "low" and data["acknowledged_by"] == "DSL Jones"
    assert t(data["due"]) == i.recordedtime
    assert data["evidence"] == [i.id] and data["resolved_at"] is None


def rich_history() -> list[Event]:
    """A busy child: several rules fire, resolve or stay quiet, with amendments and lifecycle."""
    police, csc, marac = POLICE, CSC, "marac/somerset"
    da = {"children_present": True, "domestic_abuse": True}
    inc1 = ev(
        "incident.reported",
        {
            **da,
            "incident_ref": "I1",
            "parties": [{"person": "M-1", "role": "victim"}, {"person": "F-1", "role": "perpetrator"}],
        },
        "2019-12-24T20:00:00Z",
        source=police,
    )
    inc2 = ev(
        "incident.reported",
        {**da, "incident_ref": "I2", "parties": [{"person": "F-1", "role": "perpetrator"}]},
        "2020-03-29T00:30:00Z",
        source=police,
    )
    inc3 = ev(
        "incident.reported",
        {**da, "incident_ref": "I3", "parties": []},
        "2020-06-01T23:30:00Z",
        source=police,
        recorded="2020-06-02T08:00:00Z",
    )
    ref = ev(
        "referral.made",
        {"referral_ref": "R-1", "to": "health", "reason": "DA"},
        "2019-12-27T10:00:00Z",
        source=police,
    )
    close = ev(
        "referral.closed",
        {
            "referral_ref": "R-1",
            "outcome": "step-down",
            "reason": "x",
            "persons_contacted": ["M-1"],
            "worked_by": "A",
            "authorised_by": "B",
        },
        "2020-01-10T10:00:00Z",
        source=csc,
    )
    plan = ev(
        "marac.plan.agreed",
        {"plan_ref": "MP-1", "meeting_date": "2020-04-01", "persons": ["M-1", "F-1"], "actions": []},
        "2020-04-01T10:00:00Z",
        source=marac,
    )
    return [
        ev(
            "child.registered",
            {"dob": "2019-10-01", "mother": "M-1", "father": "F-1"},
            "2019-10-02T10:00:00Z",
            source=csc,
        ),
        ev(
            "gp.registered",
            {"person": "C-1", "practice": "L85001"},
            "2019-10-03T10:00:00Z",
            source="gp/L85001",
        ),
        ev("gp.registered", {"person": "F-1", "practice": "Y00001"}, "2019-10-03T10:00:00Z", source=csc),
        ev("school.enrolled", {"school": "100001"}, "2019-10-04T10:00:00Z", source=csc),
        inc1,
        inc2,
        inc3,
        ev(
            "incident.triaged",
            {"incident_ref": "I1", "forum": "DAT", "outcome": "x"},
            "2019-12-30T10:00:00Z",
            source=police,
        ),
        ev(
            "notification.sent",
            {"to": "gp/L85001", "about": [inc1.id]},
            "2019-12-27T10:00:00Z",
            source=police,
        ),
        ref,
        ev(
            "referral.corrected",
            {"original": ref.id, "reason": "name it", "to": "phn/somerset"},
            "2020-01-03T10:00:00Z",
            source=police,
        ),
        close,
        ev(
            "contact.recorded",
            {"person": "F-1", "practitioner": "A", "mode": "phone"},
            "2020-01-15T10:00:00Z",
            source=csc,
        ),
        plan,
        ev(
            "marac.plan.shared",
            {"plan_ref": "MP-1", "to": [police, csc, "gp/L85001"]},
            "2020-04-02T10:00:00Z",
            source=marac,
        ),
        ev(
            "referral.withdrawn", {"original": close.id, "reason": "x"}, "2020-05-01T10:00:00Z", source=police
        ),  # wrong source
        ev(
            "flag.acknowledged",
            {"flag": flag_id("repeat-incidents", "C-1", inc3.id), "by": "DSL"},
            "2020-06-03T10:00:00Z",
            source=PARTNERSHIP,
        ),
        ev(
            "flag.dismissed",
            {
                "flag": flag_id("gp-not-notified", "C-1", f"{inc2.id}|gp/L85001"),
                "by": "DSL",
                "reason": "x",
                "evidence": [inc2.id],
            },
            "2020-06-03T10:00:00Z",
            source=PARTNERSHIP,
        ),
    ]


def test_shuffled_arrival_gives_identical_flags() -> None:
    events = rich_history()
    as_ofs = ["2019-12-28T00:00:01Z", "2020-04-03T00:00:00Z", "2020-06-03T23:00:01Z", LATER]
    baseline = {a: [f.to_json() for f in evaluate(view(*events), t(a), ALL_POLICIES).flags] for a in as_ofs}
    assert len(baseline[LATER]) >= 5
    statuses = {f["status"] for f in baseline[LATER]}
    assert {"open", "resolved", "dismissed"} <= statuses
    rng = random.Random(20201025)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        for a in as_ofs:
            got = [f.to_json() for f in evaluate(view(*shuffled), t(a), ALL_POLICIES).flags]
            assert json.dumps(got) == json.dumps(baseline[a])


def test_policy_order_does_not_change_the_flags() -> None:
    events = rich_history()
    forward = evaluate(view(*events), t(LATER), ALL_POLICIES)
    backward = evaluate(view(*events), t(LATER), tuple(reversed(ALL_POLICIES)))
    assert [f.to_json() for f in forward.flags] == [f.to_json() for f in backward.flags]
    assert forward.next_due == backward.next_due


def test_flags_are_sorted_by_due_rule_and_id() -> None:
    found: list[Flag] = list(evaluate(view(*rich_history()), t(LATER), ALL_POLICIES).flags)
    assert found == sorted(found, key=lambda f: (f.due, f.rule, f.id))


@pytest.mark.parametrize(
    ("rule", "child", "key"),
    [("gp-not-notified", "C-1", "e1|gp/L85001"), ("repeat-incidents", None, ""), ("x", "C-é", "ключ|1")],
)
def test_flag_id_is_the_uuid5_of_rule_child_and_key(rule: str, child: str | None, key: str) -> None:
    """Flag ids are stored, acknowledged and emailed: written out for speed, they must stay
    exactly the UUIDv5 they always were."""
    expected = uuid.uuid5(FLAG_NAMESPACE, f"{rule}|{child or ''}|{key}")
    assert flag_id(rule, child, key) == str(expected)
    assert uuid.UUID(flag_id(rule, child, key)).version == 5
    change = f"{expected}|raised|1"  # a flag change's id (views.flags) is made the same way
    assert name_uuid(change) == str(uuid.uuid5(FLAG_NAMESPACE, change))


def test_a_flags_texts_are_its_json_dumps() -> None:
    """``Flag.texts`` writes the stored payload and a change message's flag from per-rule
    templates and the flag's own values: both must be ``json.dumps`` of ``to_json`` (in its key
    order, and sorted) byte for byte, for flags of every rule in every lifecycle state, for
    values that need escaping (quotes, backslashes, ``%`` that the templates must not read as a
    placeholder, non-ASCII, control characters), and for values only ``json.dumps`` can write
    (a non-string acknowledgement, a list of evidence that is not all strings); and
    ``payload_text`` is the first text, whichever is made first."""
    found = evaluate(view(*rich_history()), t(LATER), ALL_POLICIES).flags
    assert {f.status for f in found} >= {"open", "resolved"}
    replace = dataclasses.replace
    awkward = 'a "quoted" \\ back%sslash %d 100% ünïcødé \u2028 \n\t\x01 end'
    variants = [
        *found,
        *(dataclasses.replace(f, detail=awkward, child=awkward, acknowledged_by="lead%s") for f in found),
        *(replace(f, status="dismissed", dismissed_by="%s", dismissed_reason=awkward) for f in found),
        dataclasses.replace(found[0], title=awkward, explanation=awkward + "%(x)s", action="%", source="%%"),
        dataclasses.replace(found[0], acknowledged_by={"b": 1, "a": [2]}),  # type: ignore[arg-type]
        dataclasses.replace(found[0], evidence=("e1", 2)),  # type: ignore[arg-type]
        dataclasses.replace(found[0], child=None, evidence=(), concerns=()),
    ]
    for flag in found:  # make_flag sets the fields itself: every one, as Flag() would
        assert vars(flag).keys() >= {field.name for field in dataclasses.fields(Flag)}
        assert flag == Flag(**{field.name: getattr(flag, field.name) for field in dataclasses.fields(Flag)})
    for flag in variants:
        stored, ordered = flag.texts()
        assert stored == json.dumps(flag.to_json()) == flag.payload_text
        assert ordered == json.dumps(flag.to_json(), sort_keys=True)
        again = dataclasses.replace(flag)  # payload_text made first this time
        assert again.payload_text == stored and again.texts() == (stored, ordered)


def test_a_finding_is_the_frozen_dataclass_its_fields_say() -> None:
    """``Finding`` sets its fields in its own ``__init__`` (cheaper than a frozen dataclass's):
    every field, by position and by name, defaults included, ``instant`` made from ``due``;
    still frozen, equal and hashed by its compared fields, and ``dataclasses.replace`` works."""
    due, at = t("2020-03-10T00:00:00Z"), t("2020-03-12T09:30:00Z")
    given = Finding("k", due, ("e1",), ("police/x",), "said", "e2", at)
    named = Finding(key="k", due=due, evidence=("e1",), concerns=("police/x",), detail="said",
                    resolved_by="e2", resolved_at=at)  # fmt: skip
    assert given == named and hash(given) == hash(named)
    assert {f.name: getattr(given, f.name) for f in dataclasses.fields(Finding)} == {
        "key": "k", "due": due, "evidence": ("e1",), "concerns": ("police/x",), "detail": "said",
        "resolved_by": "e2", "resolved_at": at, "instant": given.instant,
    }  # fmt: skip
    epoch = t("1970-01-01T00:00:00Z")
    assert given.instant == int((due - epoch).total_seconds() * 1_000_000)
    bare = Finding("k", due, (), ())
    assert (bare.detail, bare.resolved_by, bare.resolved_at) == ("", None, None)
    assert dataclasses.replace(given, due=at).instant == int((at - epoch).total_seconds() * 1_000_000)
    assert dataclasses.replace(given, detail="other") != given
    with pytest.raises(dataclasses.FrozenInstanceError):
        given.key = "other"  # type: ignore[misc]
