"""parent-gp-unaware: a parent's GP practice does not know the child exists.

Child Charlie 2.2: "Father's GP did not know he had become a parent", although "primary care
held information about father's history of drug addiction, alcohol dependency". 2.14: father
"was registered with a different practice".

Version 2: a practice is owed over the spells in which it was a parent figure's practice as the
partnership knew it (``policies.facts.Family``: from the registration, or from the link that
made its patient a parent figure if later), not only while it is the *current* one. Version 1
dropped the finding when the parent moved practice, so a live projector kept a flag (resolved
"by the data changing") that a replay never raised (issue 13). A parent who left the practice
before the five working days were up never made a gap there; one who left later leaves the gap
standing, resolved by the registration elsewhere (the old practice no longer holds the parent's
record) unless the practice was told first; the new practice is owed from its registration.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from datetime import datetime
from itertools import chain

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import Spell, due_after_working_days, family_of, first_gap
from policies.view import ChildView, Event


class ParentGpUnaware(FoldingPolicy):
    id = "parent-gp-unaware"
    version = 2
    severity = Severity.MEDIUM
    title = "A parent's GP practice is not aware of the child"
    source = "CSPR Child Charlie 2.2, 2.14"
    explanation = (
        "Charlie's father's GP held his history of addiction but did not know he was a parent, so "
        "could not weigh the risk to a baby. Once an incident or referral concerns a child, the GP "
        "practice of every parent figure should know of the child within five working days. Medium: "
        "the risk is real but slower-moving than an unshared incident, which gp-not-notified covers."
    )
    action = "Tell the parent figure's GP practice about the child (notification.sent to the practice)."

    def start(self, view: ChildView) -> Fold:
        # The first incident or referral (recorded order; ties in time order), found without
        # sorting the history.
        first = min(
            chain(view.of_type("incident.reported"), view.of_type("referral.made")),
            key=lambda e: (e.recordedtime, e.time, e.id),
            default=None,
        )
        family = family_of(view)
        owed = family.practices(lambda parents, _: parents)
        aware = {
            str(practice): _awareness_event(
                view.first_event_from(str(practice)), view.notifications_to(str(practice))
            )
            for practice in owed
        }
        state = _Kept(first, owed, aware)
        return Fold(list(state.judged()), state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Once there is a first incident or referral, later ones change nothing; a practice is
        made aware once (its own first event about the child changes the agencies' first events,
        which makes the engine start afresh): only a first notification to a practice owed
        re-judges it. A new link or registration starts afresh."""
        state: _Kept = fold.state
        if state.first is None or any(
            e.type in ("child.registered", "person.linked", "gp.registered") for e in added
        ):
            return None
        changed = False
        for notification in added:
            to = str(notification.data.get("to")) if notification.type == "notification.sent" else ""
            if to in state.aware and state.aware[to] is None:
                state.aware[to], changed = notification, True
        return Fold(list(state.judged()), state) if changed else fold


class _Kept:
    """The first trigger, the spells of each practice owed, and the event that made each aware."""

    def __init__(
        self, first: Event | None, owed: dict[Hashable, list[Spell]], aware: dict[str, Event | None]
    ) -> None:
        self.first, self.owed, self.aware = first, owed, aware

    def judged(self) -> Iterator[Finding]:
        first = self.first
        if first is None:
            return

        def due_of(spell: Spell) -> datetime:
            return due_after_working_days(max(first.recordedtime, spell.start), 5)

        for practice, owed in sorted(self.owed.items()):
            name = str(practice)
            gap = first_gap(owed, due_of, self.aware[name])
            if gap is None:
                continue
            spell, due, late = gap
            yield Finding(
                key=name,
                due=due,
                evidence=(first.id, spell.payload.id),
                # The agency that first brought the child to attention holds what the practice
                # needs; the practice itself cannot be routed to: it does not know the child.
                concerns=(first.source,),
                detail=f"{practice} (a parent figure's practice) has not been told of the child",
                resolved_by=late.resolved_by,
                resolved_at=late.resolved_at,
            )


def _awareness_event(own: Event | None, notifications: Sequence[Event]) -> Event | None:
    """The event that made the practice aware: its own event about the child, or a notification."""
    aware = [e for e in (own, *notifications[:1]) if e is not None]
    return min(aware, key=lambda e: (e.recordedtime, e.id)) if aware else None
