"""self-authorised-closure: a closure signed off by the person who did the work, or by someone who
signed off another closure for the same child within 90 days.

Child Charlie 2.10: "this decision was made independent of management oversight as EDT
practitioners ... signed off their own work". 6.1: "EDT social workers now reassign contact
records to Team Managers to authorise ... Team Managers ... will reassign the authorising of a
contact to another Team Manager if they have signed it off in the previous three-month period."

Raised at the closure's recorded time. "Within 90 days" is 90 x 24 hours of elapsed time before
it (the earlier closure recorded strictly earlier, for another referral_ref). A correction naming
another authoriser resolves the flag from the correction on, naming it (the issue's "resolved by a
correction naming another authoriser"); the chronology keeps both. Concerns: the closing agency,
whose manager must re-authorise.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import timedelta

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.corrections import gap_history, versions
from policies.facts import Timeline, extend_timelines, timelines
from policies.view import ChildView, Event

WINDOW = timedelta(days=90)


class SelfAuthorisedClosure(FoldingPolicy):
    id = "self-authorised-closure"
    version = 1
    severity = Severity.MEDIUM
    title = "Closure authorised by the worker, or by a recent authoriser of this child's closures"
    source = "CSPR Child Charlie 2.10, 6.1"
    explanation = (
        "Charlie's case was closed by the worker who did the work, with no manager's oversight. "
        "A closure needs an authoriser other than the worker, and not the person who authorised "
        "another closure for the same child in the last 90 days."
    )
    action = "Have another manager review and authorise the closure (referral.corrected naming them)."

    def start(self, view: ChildView) -> Fold:
        closures = view.of_type("referral.closed")
        by_authoriser = timelines(closures, _authoriser)
        return Fold([f for c in closures if (f := self._finding(view, c, by_authoriser))], by_authoriser)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """Closures recorded after every earlier one: a closure is judged against the closures
        recorded before it, so the earlier findings stand and only the new closures are judged."""
        extend_timelines(fold.state, added, _authoriser)
        fold.findings += [f for c in added if (f := self._finding(view, c, fold.state))]
        return fold

    def _finding(
        self, view: ChildView, closure: Event, by_authoriser: dict[Hashable, Timeline]
    ) -> Finding | None:
        # A correction naming another authoriser resolves the flag (and says which one did).
        history = gap_history(view, closure, lambda v: self._gap(v, by_authoriser) is not None)
        if history is None:
            return None
        detail, earlier = [g for v, _ in versions(view, closure) if (g := self._gap(v, by_authoriser))][-1]
        fixed = history.resolved_by
        return Finding(
            key=closure.id,
            due=history.began,
            evidence=(closure.id, *(c.id for c in earlier)),
            concerns=(closure.source,),
            detail=detail,
            resolved_by=fixed.id if fixed else None,
            resolved_at=fixed.recordedtime if fixed else None,
        )

    @staticmethod
    def _gap(closure: Event, by_authoriser: dict[Hashable, Timeline]) -> tuple[str, list[Event]] | None:
        """(detail, earlier closures by the same authoriser, in time order) if this version is
        self-authorised. The authoriser's closures come from an index, by recorded time, so a
        closure is compared with the few in its 90 days, not with every closure of the child."""
        authoriser = closure.data["authorised_by"]
        line = by_authoriser.get(authoriser)
        window = line.between(closure.recordedtime - WINDOW, closure.recordedtime) if line else []
        earlier = sorted(
            (
                c
                for c in window
                if c.id != closure.id
                and c.data["referral_ref"] != closure.data["referral_ref"]
                and c.recordedtime < closure.recordedtime
            ),
            key=lambda e: e.sort_key,
        )
        if authoriser == closure.data["worked_by"]:
            return (
                f"referral {closure.data['referral_ref']} closed and authorised by the same person",
                earlier,
            )
        if earlier:
            return (
                f"referral {closure.data['referral_ref']} authorised by the authoriser of "
                f"referral {earlier[0].data['referral_ref']} within 90 days"
            ), earlier
        return None


def _authoriser(closure: Event) -> Hashable:
    return closure.data["authorised_by"]
