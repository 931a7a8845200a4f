"""vague-referral-destination: a referral to "health" (or anything but a registered agency).

Child Charlie 2.6: "the term 'health' was used without specifying which health provider or part
of the health system was being referenced ... Information regarding domestic abuse incidents
considered by DAT were not shared with any other part of the health system, including primary
care." The table at 2.4 records the DAT outcome of incidents 2 and 4 as "Referred to health".

Two places name where a child was referred: ``referral.made`` (``to``) and a triage outcome
(``incident.triaged``, each entry of ``referred_to``). Version 2 reads both: version 1 read only
``referral.made``, so the very outcome the review quotes went unflagged. One flag per referral,
and one per (triage, vague entry); a correction naming registered agencies instead resolves it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.corrections import gap_history, versions
from policies.facts import Anchors
from policies.view import ChildView, Event


class VagueReferralDestination(FoldingPolicy):
    id = "vague-referral-destination"
    version = 2
    severity = Severity.MEDIUM
    title = "Referral names no registered agency"
    source = "CSPR Child Charlie 2.4 (table), 2.6"
    explanation = (
        "'Referred to health' in Charlie's case meant a report sent to public health nursing and "
        "to nobody else in the health system, while others assumed the GP knew. A referral, or a "
        "triage outcome that refers on, must name the agency that receives it. Medium: the "
        "referral exists, but may have reached no one."
    )
    action = (
        "Correct the referral (referral.corrected) or the triage outcome (incident.corrected) to "
        "name the receiving agency's id."
    )

    def start(self, view: ChildView) -> Fold:
        anchors = Anchors()
        for event in view.of_type("referral.made", "incident.triaged"):
            anchors.judge(event, self._judge(view, event))
        return anchors.fold()

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold:
        """A referral or triage is judged by its own versions and the registered agencies alone
        (a correction changes its type's fingerprint, a new registration the agencies read: the
        engine starts afresh on either), so only the new ones are judged (issue 13)."""
        anchors: Anchors = fold.state
        for event in added:
            anchors.judge(event, self._judge(view, event))
        return anchors.fold()

    def _judge(self, view: ChildView, event: Event) -> Iterator[Finding]:
        def vague(to: str) -> bool:
            return not view.is_registered_agency(to)

        if event.type == "referral.made":
            # A correction naming a registered agency resolves the flag (and says which one did).
            yield from self._finding(
                view,
                event,
                event.id,
                lambda v: vague(str(v.data["to"])),
                lambda v: str(v.data["to"]),
                f"referral {event.data['referral_ref']}",
            )
            return
        for entry in sorted({str(e) for v, _ in versions(view, event) for e in _referred_to(v)}):
            if not vague(entry):
                continue
            yield from self._finding(
                view,
                event,
                f"{event.id}|{entry}",
                _lists(entry),
                _always(entry),
                f"triage of incident {event.data['incident_ref']}",
            )

    @staticmethod
    def _finding(
        view: ChildView,
        event: Event,
        key: str,
        has_gap: Callable[[Event], bool],
        named: Callable[[Event], str],
        what: str,
    ) -> Iterator[Finding]:
        history = gap_history(view, event, has_gap)
        if history is None:
            return
        last = [named(v) for v, _ in versions(view, event) if has_gap(v)][-1]
        fixed = history.resolved_by
        yield Finding(
            key=key,
            due=history.began,
            evidence=(event.id,),
            concerns=(event.source,),  # only the referrer can say where it went
            detail=f"{what} is addressed to {last!r}",
            resolved_by=fixed.id if fixed else None,
            resolved_at=fixed.recordedtime if fixed else None,
        )


def _lists(entry: str) -> Callable[[Event], bool]:
    """Whether a version of the triage still refers to ``entry``."""
    return lambda triage: entry in _referred_to(triage)


def _always(entry: str) -> Callable[[Event], str]:
    return lambda _triage: entry


def _referred_to(triage: Event) -> list[str]:
    return [str(e) for e in triage.data.get("referred_to", ())]
