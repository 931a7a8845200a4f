"""parent-gp-unaware: a parent's GP practice does not know the child exists.

Child Charlie 2.2: "Father's GP did not know he had become a parent", although "primary care
held information about father's history of drug addiction, alcohol dependency". 2.14: father
"was registered with a different practice".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, gp_links, parent_figures
from policies.view import ChildView, Event


class ParentGpUnaware(Policy):
    id = "parent-gp-unaware"
    version = 1
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

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        triggers = sorted(view.of_type("incident.reported", "referral.made"), key=lambda e: e.recordedtime)
        if not triggers:
            return
        first = triggers[0]
        parents = parent_figures(view.of_type("child.registered", "person.linked"))
        seen: set[str] = set()
        for person, practice, link in gp_links(view.of_type("gp.registered")):
            if person not in parents or practice in seen:
                continue
            seen.add(practice)
            due = due_after_working_days(max(first.recordedtime, link.recordedtime), 5)
            made_aware = _awareness_event(view.first_event_from(practice), view.notifications_to(practice))
            if made_aware is not None and made_aware.recordedtime < due:
                continue
            yield Finding(
                key=practice,
                due=due,
                evidence=(first.id, link.id),
                # The agency that first brought the child to attention holds what the practice
                # needs; the practice itself cannot be routed to: it does not know the child.
                concerns=(first.source,),
                detail=f"{practice} (a parent figure's practice) has not been told of the child",
                resolved_by=made_aware.id if made_aware else None,
                resolved_at=made_aware.recordedtime if made_aware else None,
            )


def _awareness_event(own: Event | None, notifications: Sequence[Event]) -> Event | None:
    """The event that made the practice aware: its own event about the child, or a notification."""
    aware = [e for e in (own, *notifications[:1]) if e is not None]
    return min(aware, key=lambda e: (e.recordedtime, e.id)) if aware else None
