"""Which correction closed a gap: the versions an event went through as corrections were folded in.

``ChildView.effective()`` gives only an event's latest version, so a gap that a correction closed
would simply vanish from the flags, and an auditor asking "which flags were raised, and how did
they end?" would not see it. Rules whose table entry says "resolved by a correction" walk the
versions here to name the correction that closed the gap and when it was recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from policies.view import ChildView, Event

AMENDMENT_FIELDS = ("original", "reason")  # what a correction says about itself, not the event


@dataclass(frozen=True)
class GapHistory:
    began: datetime  # recorded time of the first version with the gap
    resolved_by: Event | None  # the correction after which no version had it, if the latest has none


def versions(view: ChildView, event: Event) -> list[tuple[Event, Event | None]]:
    """(version, the correction that produced it): the event as first recorded (no correction),
    then after each correction ``effective()`` folded into it, in the same order, same fields."""
    # Uncorrected, the effective event is the one recorded (no lookup: the view's index by id is
    # built per view, O(the history), only for this).
    current = view.event(event.id) if event.corrected_by else event
    found: list[tuple[Event, Event | None]] = [(current, None)]
    for correction_id in event.corrected_by:
        correction = view.event(correction_id)
        fields = {k: v for k, v in correction.data.items() if k not in AMENDMENT_FIELDS}
        current = replace(current, data=MappingProxyType({**current.data, **fields}))
        found.append((current, correction))
    return found


def gap_history(view: ChildView, event: Event, has_gap: Callable[[Event], bool]) -> GapHistory | None:
    """When the gap began and, if the latest version no longer has it, the correction that closed
    it; None if no version ever had the gap. A gap a later correction re-opens is open again."""
    began: datetime | None = None
    closed_by: Event | None = None
    for version, correction in versions(view, event):
        if has_gap(version):
            if began is None:
                began = correction.recordedtime if correction else version.recordedtime
            closed_by = None
        elif began is not None and closed_by is None:
            closed_by = correction
    return None if began is None else GapHistory(began, closed_by)
