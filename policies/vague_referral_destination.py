"""vague-referral-destination: a referral to "health" (or anything but a registered agency).

Child Charlie 2.6: "the term 'health' was used without specifying which health provider or part
of the health system was being referenced ... Information regarding domestic abuse incidents
considered by DAT were not shared with any other part of the health system, including primary
care."
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policies.base import Finding, Policy, Severity
from policies.corrections import gap_history, versions
from policies.view import ChildView, Event


class VagueReferralDestination(Policy):
    id = "vague-referral-destination"
    version = 1
    severity = Severity.MEDIUM
    title = "Referral names no registered agency"
    source = "CSPR Child Charlie 2.6"
    explanation = (
        "'Referred to health' in Charlie's case meant a report sent to public health nursing and "
        "to nobody else in the health system, while others assumed the GP knew. A referral must "
        "name the agency that receives it. Medium: the referral exists, but may have reached no one."
    )
    action = "Correct the referral (referral.corrected) to name the receiving agency's id."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        def vague(referral: Event) -> bool:
            return not view.is_registered_agency(str(referral.data["to"]))

        for referral in (e for e in view.effective() if e.type == "referral.made"):
            # A correction naming a registered agency resolves the flag (and says which one did).
            history = gap_history(view, referral, vague)
            if history is None:
                continue
            named = [str(v.data["to"]) for v, _ in versions(view, referral) if vague(v)][-1]
            fixed = history.resolved_by
            yield Finding(
                key=referral.id,
                due=history.began,
                evidence=(referral.id,),
                concerns=(referral.source,),  # only the referrer can say where it went
                detail=f"referral {referral.data['referral_ref']} is addressed to {named!r}",
                resolved_by=fixed.id if fixed else None,
                resolved_at=fixed.recordedtime if fixed else None,
            )
