"""notification-not-acknowledged: a GP practice, school or health visiting does not acknowledge
a notification.

Child Charlie section 5, Table 2, 4: "There was a lack of clarity about roles/expectations of
those partner agencies who received the notifications ... Schools raised issues of consent and
whether they could legitimately respond to notifications and practitioners in PHN understood
that GPs and Children's Social Care as well as the Police knew about all the incidents".

A notification to a ``gp/``, ``school/`` or ``phn/`` agency must be acknowledged by that agency
(``notification.acknowledged`` naming it, from the recipient) within two working days: sending
is not the same as being received and understood. A later acknowledgement resolves the flag.
Concerns: the recipient (to acknowledge) and the sender (to follow up).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import due_after_working_days, first_from, late, timelines
from policies.view import ChildView

RECIPIENT_KINDS = frozenset({"gp", "school", "phn"})
WORKING_DAYS = 2


class NotificationNotAcknowledged(Policy):
    id = "notification-not-acknowledged"
    version = 1
    severity = Severity.MEDIUM
    title = "Notification to a GP practice, school or health visiting not acknowledged"
    source = "CSPR Child Charlie 5 (Table 2, 4: roles of the recipients of notifications)"
    explanation = (
        "In Child Charlie each recipient of a notification assumed others knew and acted; "
        "schools were unsure they could respond at all. A GP practice, school or health visiting "
        "team that is told of something about a child should acknowledge it within two working "
        "days, so the sender knows it arrived. Medium: the information may be sitting unread."
    )
    action = "Recipient: acknowledge the notification (notification.acknowledged); sender: follow up."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        # By (notification, acknowledging agency): only the recipient's acknowledgement counts,
        # whenever it was recorded.
        acks = timelines(
            view.of_type("notification.acknowledged"), lambda a: (a.data["notification"], a.source)
        )
        for notification in view.of_type("notification.sent"):
            to = str(notification.data["to"])
            if agency_kind(to) not in RECIPIENT_KINDS:
                continue
            due = due_after_working_days(notification.recordedtime, WORKING_DAYS)
            gap = late(first_from(acks, (notification.id, to)), due)
            if gap is None:
                continue
            yield Finding(
                key=notification.id,
                due=due,
                evidence=(notification.id,),
                concerns=(to, notification.source),
                detail=f"{to} has not acknowledged a notification from {notification.source}",
                resolved_by=gap.resolved_by,
                resolved_at=gap.resolved_at,
            )
