"""Which other children's events a child's view carries (``ChildView.household``).

A child's household, for the rules, is every other child with whom it may share a parent
figure. Who *may* is decided from the raw events (withdrawn and corrected links included), so
the candidates are a superset of the siblings at any as-of time, and the rule that reads them
(``sibling-not-considered``) decides from the events themselves, cut to as-of, who shares a
co-resident parent figure and since when. That keeps the rule a pure function of (view, as_of)
whoever assembled the view and whenever.

Pure: the projector and replay look the candidates up in the database
(``views.queries.household_events``), the scenario runner in memory (``households``); both use
``linked_persons`` for the question "who could make these children siblings?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from policies.facts import parent_figures
from policies.view import Event


def linked_persons(events: Iterable[Event]) -> frozenset[str]:
    """Everyone any event (withdrawn or not) names as a parent figure of the child."""
    return frozenset(parent_figures(events))


def households(events_by_child: Mapping[str, Sequence[Event]]) -> dict[str, dict[str, tuple[Event, ...]]]:
    """Child -> {other child sharing a linked parent figure -> that child's events}, from events
    held in memory (a scenario file)."""
    persons = {child: linked_persons(events) for child, events in events_by_child.items()}
    by_person: dict[str, set[str]] = {}
    for child, named in persons.items():
        for person in named:
            by_person.setdefault(person, set()).add(child)
    return {
        child: {
            other: tuple(events_by_child[other])
            for other in sorted({o for p in named for o in by_person[p]} - {child})
        }
        for child, named in persons.items()
    }
