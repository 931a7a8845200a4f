"""high-risk-no-marac-referral: a high-risk domestic-abuse assessment with no MARAC referral.

SafeLives MARAC guidance: a victim assessed as high risk (a DASH score of 14 or more "yes"
answers, or high on professional judgement) is referred to MARAC. Family A recommendation 7: the
MARAC plan and the children's plans must "reflect and compliment each other", which needs a
MARAC referral in the first place. The College of Policing's DARA replaces DASH in many forces:
its "high" counts the same.

High risk: ``dash_risk`` high, ``risk_level`` high (whatever ``risk_tool``), or ``dash_score``
14 or more. A MARAC referral (``marac.referral.made``, or a ``referral.made`` to a ``marac/``
agency) recorded at or after the incident, within one working day of its recording, answers it;
a later one resolves the flag. A correction lowering the risk withdraws the gap. Concerns: the
agency that recorded the incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.vocabulary import agency_kind
from policies.base import Finding, Fold, FoldingPolicy, Severity
from policies.facts import Timeline, domestic_abuse_incidents, due_after_working_days, late
from policies.view import ChildView, Event

HIGH_DASH_SCORE = 14


class HighRiskNoMaracReferral(FoldingPolicy):
    id = "high-risk-no-marac-referral"
    version = 1
    severity = Severity.HIGH
    title = "High-risk domestic abuse (DASH or DARA) with no MARAC referral"
    source = "SafeLives MARAC guidance (DASH 14+ or high); CSPR Family A recommendation 7"
    explanation = (
        "A victim assessed as high risk, by a DASH score of 14 or more or a high DASH or DARA "
        "grading, should be referred to MARAC within one working day, so that every agency plans "
        "around the same risk. High: these are the cases where serious harm or homicide is most "
        "likely."
    )
    action = "Refer the case to MARAC (marac.referral.made)."

    def start(self, view: ChildView) -> Fold:
        referrals = Timeline(e for e in view.of_type("marac.referral.made", "referral.made") if _to_marac(e))
        state = _State()
        for incident in domestic_abuse_incidents(view.of_type("incident.reported")):
            if is_high_risk(incident.data):
                state.judge(incident, referrals.first_from(incident.recordedtime))
        return Fold(list(state.found.values()), state)

    def resume(self, fold: Fold, view: ChildView, added: list[Event]) -> Fold | None:
        """Every addition was recorded after everything judged: a new high-risk incident has
        no referral yet, and a new MARAC referral answers the incidents still unanswered that
        were recorded by then (corrections make the engine start afresh)."""
        state: _State = fold.state
        for incident in domestic_abuse_incidents(e for e in added if e.type == "incident.reported"):
            if is_high_risk(incident.data):
                state.judge(incident, None)
        for referral in added:
            if referral.type != "incident.reported" and _to_marac(referral):
                waiting, state.unanswered = state.unanswered, []
                for incident in waiting:
                    state.judge(
                        incident, referral if incident.recordedtime <= referral.recordedtime else None
                    )
        return Fold(list(state.found.values()), state)


def _to_marac(event: Event) -> bool:
    return event.type == "marac.referral.made" or agency_kind(str(event.data["to"])) == "marac"


class _State:
    """The findings by incident, and the high-risk incidents no MARAC referral has answered yet."""

    def __init__(self) -> None:
        self.found: dict[str, Finding] = {}
        self.unanswered: list[Event] = []

    def judge(self, incident: Event, referral: Event | None) -> None:
        if referral is None:
            self.unanswered.append(incident)
        due = due_after_working_days(incident.recordedtime, 1)
        gap = late(referral, due)
        if gap is None:
            self.found.pop(incident.id, None)
            return
        self.found[incident.id] = Finding(
            key=incident.id,
            due=due,
            evidence=(incident.id,),
            concerns=(incident.source,),
            detail=f"incident {incident.data.get('incident_ref')} assessed high risk; no MARAC referral",
            resolved_by=gap.resolved_by,
            resolved_at=gap.resolved_at,
        )


def is_high_risk(data: Mapping[str, Any]) -> bool:
    score = data.get("dash_score")
    return (
        data.get("dash_risk") == "high"
        or data.get("risk_level") == "high"
        or (isinstance(score, int) and score >= HIGH_DASH_SCORE)
    )
