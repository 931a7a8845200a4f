"""A person's status as the partnership knows it, from ``person.status`` events in recorded order.

An agency may record one fact at a time (age one month, care leaver another), so a later status
that omits a field must not erase what an earlier one said: rules read fields by folding.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.view import Event


def person_statuses(events: Iterable[Event], person: str) -> list[Event]:
    """The person's ``person.status`` events in recorded order (ties by id, so delivery order
    never matters)."""
    return sorted(
        (e for e in events if e.type == "person.status" and e.data["person"] == person),
        key=lambda e: (e.recordedtime, e.id),
    )
