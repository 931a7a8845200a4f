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

from collections.abc import Hashable, Iterator

from ledger.vocabulary import agency_kind
from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import (
    Anchors,
    Timeline,
    due_after_working_days,
    extend_timelines,
    first_from,
    late,
    timelines,
)
from policies.view import ChildView, Event

RECIPIENT_KINDS = frozenset({"gp", "school", "phn"})
WORKING_DAYS = 2


class NotificationNotAcknowledged(FoldingPolicy):
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

    def start(self, view: ChildView) -> Fold:
        # By (notification, acknowledging agency): only the recipient's acknowledgement counts,
        # whenever it was recorded.
        anchors = Anchors()
        anchors.context = timelines(view.of_type("notification.acknowledged"), _acknowledges)
        for notification in view.of_type("notification.sent"):
            anchors.judge(notification, _judge(anchors.context, notification))
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """A notification is judged by the first acknowledgement from its recipient (issue 13:
        re-judging every notification on every event was the largest rule left at 500 prior
        events): judge the new notifications, and those a new acknowledgement names."""
        anchors: Anchors = fold.state
        acks = [e for e in added if e.type == "notification.acknowledged"]
        extend_timelines(anchors.context, acks, _acknowledges)
        # the notifications the acknowledgements name, by id (a notification has no incident_ref)
        named = anchors.called(str(a.data["notification"]) for a in acks)
        for notification in [*named, *(e for e in added if e.type == "notification.sent")]:
            anchors.judge(notification, _judge(anchors.context, notification))
        return anchors.fold()


def _acknowledges(ack: Event) -> Hashable:
    return (ack.data["notification"], ack.source)


def _judge(acks: dict[Hashable, Timeline], notification: Event) -> Iterator[Finding]:
    to = str(notification.data["to"])
    if agency_kind(to) not in RECIPIENT_KINDS:
        return
    due = due_after_working_days(notification.recordedtime, WORKING_DAYS)
    gap = late(first_from(acks, (notification.id, to)), due)
    if gap is None:
        return
    yield Finding(
        key=notification.id,
        due=due,
        evidence=(notification.id,),
        concerns=(to, notification.source),
        detail=f"{to} has not acknowledged a notification from {notification.source}",
        resolved_by=gap.resolved_by,
        resolved_at=gap.resolved_at,
    )
