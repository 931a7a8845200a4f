"""Ledger integrity flags: a sequence hole still open an hour after it was noticed (lost-event),
and two signed events at one place in an agency's chain (equivocation)."""

from __future__ import annotations

import json
from datetime import timedelta

from policies.engine import flag_id
from policies.integrity import Equivocation, SequenceHole, integrity_flags
from tests.policies.helpers import t

NOTICED = t("2024-03-31T00:30:00+00:00")  # the hour straddles the March clock change (01:00 UTC)
DUE = NOTICED + timedelta(hours=1)
SECOND = timedelta(seconds=1)


def hole(filled_after: timedelta | None = None) -> SequenceHole:
    filled_at = NOTICED + filled_after if filled_after is not None else None
    return SequenceHole(
        source="gp/L85001",
        missing=(7, 9),
        noticed_at=NOTICED,
        later_event="ev-10",
        filled_at=filled_at,
        filled_by="ev-9" if filled_at else None,
    )


def equivocation() -> Equivocation:
    return Equivocation("police/avon-somerset", 42, "ev-a", "ev-b", t("2024-10-27T01:30:00+00:00"))


def test_open_hole_is_pending_for_an_hour_then_a_partnership_wide_flag() -> None:
    before = integrity_flags([hole()], [], DUE - SECOND)
    assert before.flags == () and before.next_due == DUE
    (flag,) = integrity_flags([hole()], [], DUE).flags
    assert flag.rule == "lost-event" and flag.child is None and flag.is_open
    assert flag.due == DUE and flag.evidence == ("ev-10",) and flag.concerns == ("gp/L85001",)
    assert flag.detail == "gp/L85001 sequence 7-9 missing"
    assert flag.id == flag_id("lost-event", None, "gp/L85001|7")


def test_hole_filled_within_the_hour_is_no_flag() -> None:
    assert integrity_flags([hole(timedelta(minutes=59, seconds=59))], [], DUE + timedelta(days=1)).flags == ()


def test_hole_filled_late_is_resolved_by_the_filling_event_from_then() -> None:
    late = hole(timedelta(hours=2))
    (still_open,) = integrity_flags([late], [], DUE + SECOND).flags
    assert still_open.is_open
    (flag,) = integrity_flags([late], [], NOTICED + timedelta(hours=2)).flags
    assert flag.status == "resolved" and flag.resolved_by == "ev-9"
    assert flag.resolved_at == NOTICED + timedelta(hours=2)


def test_single_missing_sequence_detail() -> None:
    single = SequenceHole("school/100001", (3, 3), NOTICED, "ev-4")
    (flag,) = integrity_flags([single], [], DUE).flags
    assert flag.detail == "school/100001 sequence 3 missing"


def test_equivocation_is_due_when_detected_and_stays_open() -> None:
    q = equivocation()
    assert integrity_flags([], [q], q.detected_at - SECOND).flags == ()
    (flag,) = integrity_flags([], [q], q.detected_at).flags
    assert flag.rule == "equivocation" and flag.child is None and flag.is_open
    assert flag.evidence == ("ev-a", "ev-b") and flag.concerns == ("police/avon-somerset",)
    assert integrity_flags([], [q], q.detected_at + timedelta(days=365)).open == (flag,)


def test_dismissal_and_acknowledgement_come_from_the_lifecycle() -> None:
    q = equivocation()
    fid = flag_id("equivocation", None, "police/avon-somerset|42")
    acked = {fid: {"acknowledged_by": "lead-1"}}
    (flag,) = integrity_flags([], [q], q.detected_at, acked).flags
    assert flag.is_open and flag.acknowledged_by == "lead-1"
    dismissed = {
        fid: {
            "dismissed_by": "lead-1",
            "dismissed_reason": "test system",
            "dismissed_evidence": ("ev-a", "ev-b"),
        }
    }
    (flag,) = integrity_flags([], [q], q.detected_at, dismissed).flags
    assert flag.status == "dismissed" and flag.dismissed_reason == "test system"


def test_input_order_does_not_change_flags() -> None:
    holes = [hole(), SequenceHole("school/100001", (3, 3), NOTICED, "ev-4")]
    equivocations = [equivocation(), Equivocation("gp/L85001", 5, "ev-x", "ev-y", NOTICED)]
    as_of = t("2024-11-01T00:00:00+00:00")
    forward = integrity_flags(holes, equivocations, as_of)
    backward = integrity_flags(holes[::-1], equivocations[::-1], as_of)
    assert json.dumps([f.to_json() for f in forward.flags]) == json.dumps(
        [f.to_json() for f in backward.flags]
    )
    assert len(forward.flags) == 4


def test_hole_filled_one_second_after_the_hour_is_raised_and_resolved() -> None:
    late = hole(timedelta(hours=1, seconds=1))
    (flag,) = integrity_flags([late], [], DUE).flags
    assert flag.is_open
    (flag,) = integrity_flags([late], [], DUE + SECOND).flags
    assert flag.status == "resolved" and flag.resolved_by == "ev-9" and flag.resolved_at == DUE + SECOND
    early = hole(timedelta(minutes=59, seconds=59))
    assert integrity_flags([early], [], DUE - SECOND).flags == ()
    assert integrity_flags([early], [], DUE - SECOND).next_due is None
