"""gp-not-notified: a GP practice of the family is not told of a domestic-abuse incident.

Child Charlie 2.14: "Neither GP practice had any knowledge about the five incidents of domestic
abuse reported to the Police and father's GP did not know he had become a parent." Family A
recommendation 3: "ensure all GPs for the family are recorded and that relevant information is
shared with them all".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.facts import (
    domestic_abuse_incidents,
    due_after_working_days,
    gp_links,
    names_incident,
    parent_figures,
    parties,
)
from policies.view import ChildView


class GpNotNotified(Policy):
    id = "gp-not-notified"
    version = 1
    severity = Severity.HIGH
    title = "GP practice not told of a domestic-abuse incident"
    source = "CSPR Child Charlie 2.14; CSPR Family A recommendation 3"
    explanation = (
        "GPs are the professionals victims most trust to disclose to, yet in Child Charlie neither "
        "family GP practice knew of any of the five domestic-abuse incidents. Every practice "
        "where the child, a parent figure or a party to the incident is registered should hear of "
        "it within one working day. High: a victim may disclose at the next appointment, and a GP who "
        "does not know of the abuse cannot recognise the disclosure or act on it."
    )
    action = "Send the incident (by id or incident reference) to the GP practice named in this flag."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        events = view.effective()
        notifications = [e for e in events if e.type == "notification.sent"]
        family = parent_figures(events) | {view.child}
        for incident in domestic_abuse_incidents(events):
            people = family | parties(incident)
            practices: dict[str, datetime] = {}
            for person, practice, link in gp_links(events):
                if person in people:
                    practices.setdefault(practice, link.recordedtime)
            for practice, linked_at in sorted(practices.items()):
                # A practice recorded only later could not have been told earlier: it is owed
                # the same working day from when the link was recorded (as parent-gp-unaware).
                due = due_after_working_days(max(incident.recordedtime, linked_at), 1)
                told = sorted(
                    (n for n in notifications if n.data["to"] == practice and names_incident(n, incident)),
                    key=lambda n: n.recordedtime,
                )
                if told and told[0].recordedtime < due:
                    continue
                late = told[0] if told else None
                yield Finding(
                    key=f"{incident.id}|{practice}",
                    due=due,
                    evidence=(incident.id,),
                    # The force that must send it, and the practice that should know (its lead can
                    # ask for it: the victim may disclose there first).
                    concerns=(incident.source, practice),
                    detail=f"{practice} not told of incident {incident.data.get('incident_ref')}",
                    resolved_by=late.id if late else None,
                    resolved_at=late.recordedtime if late else None,
                )
