"""share-without-lawful-basis: a notification that records no lawful basis for sharing.

UK GDPR articles 6 and 9 and the Data Protection Act 2018 section 8 and Schedule 1 (paragraph
18, "Safeguarding of children and of individuals at risk") allow sharing to safeguard a child,
but the sharer must identify the basis. Child Charlie section 5, Table 2, 4: "Schools raised
issues of consent and whether they could legitimately respond to notifications": an unrecorded
basis makes recipients unsure whether they may act.

A ``notification.sent`` without a ``lawful_basis`` is a gap from its recording (there is no
grace period: the basis is decided before sharing, not after). A correction that adds one
resolves the flag and names the correction. Concerns: the sender.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.corrections import gap_history
from policies.facts import Anchors
from policies.view import ChildView, Event


class ShareWithoutLawfulBasis(FoldingPolicy):
    id = "share-without-lawful-basis"
    version = 1
    severity = Severity.LOW
    title = "Notification shared without a recorded lawful basis"
    source = "UK GDPR art. 6, 9; DPA 2018 s.8, Sch.1 para 18; CSPR Child Charlie 5 (Table 2, 4)"
    explanation = (
        "Sharing to safeguard a child is lawful, but the basis must be recorded: recipients in "
        "Child Charlie were unsure whether they could act on what they were sent. Every "
        "notification should say on what lawful basis it was shared. Low: the information "
        "reached the agency; what is missing is the record that makes it safe to act on."
    )
    action = "Correct the notification (notification.corrected) with its lawful_basis."

    def start(self, view: ChildView) -> Fold:
        anchors = Anchors()
        for notification in view.of_type("notification.sent"):
            anchors.judge(notification, _judge(view, notification))
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """A notification is judged by its own versions alone: judge the new ones (a correction
        changes the type's fingerprint, and the engine starts afresh)."""
        anchors: Anchors = fold.state
        for notification in added:
            anchors.judge(notification, _judge(view, notification))
        return anchors.fold()


def _judge(view: ChildView, notification: Event) -> Iterator[Finding]:
    history = gap_history(view, notification, _without_basis)
    if history is None:
        return
    fixed = history.resolved_by
    yield Finding(
        key=notification.id,
        due=history.began,
        evidence=(notification.id,),
        concerns=(notification.source,),
        detail=f"notification to {notification.data['to']} records no lawful basis",
        resolved_by=fixed.id if fixed else None,
        resolved_at=fixed.recordedtime if fixed else None,
    )


def _without_basis(notification: Event) -> bool:
    return not notification.data.get("lawful_basis")
