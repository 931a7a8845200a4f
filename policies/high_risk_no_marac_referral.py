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

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ledger.vocabulary import agency_kind
from policies.base import Finding, Policy, Severity
from policies.facts import Timeline, domestic_abuse_incidents, due_after_working_days, late
from policies.view import ChildView

HIGH_DASH_SCORE = 14


class HighRiskNoMaracReferral(Policy):
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

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        referrals = Timeline(
            [
                *view.of_type("marac.referral.made"),
                *(r for r in view.of_type("referral.made") if agency_kind(str(r.data["to"])) == "marac"),
            ]
        )
        for incident in domestic_abuse_incidents(view.of_type("incident.reported")):
            if not is_high_risk(incident.data):
                continue
            due = due_after_working_days(incident.recordedtime, 1)
            gap = late(referrals.first_from(incident.recordedtime), due)
            if gap is None:
                continue
            yield Finding(
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
