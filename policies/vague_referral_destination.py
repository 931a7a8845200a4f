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
from policies.view import ChildView


class VagueReferralDestination(Policy):
    id = "vague-referral-destination"
    version = 1
    severity = Severity.MEDIUM
    title = "Referral names no registered agency"
    source = "CSPR Child Charlie 2.6"
    explanation = (
        "'Referred to health' in Charlie's case meant a report sent to public health nursing and "
        "to nobody else in the health system, while others assumed the GP knew. A referral must "
        "name the agency that receives it."
    )
    action = "Correct the referral (referral.corrected) to name the receiving agency's id."

    def findings(self, view: ChildView, as_of: datetime) -> Iterator[Finding]:
        for referral in (e for e in view.effective() if e.type == "referral.made"):
            destination = str(referral.data["to"])
            if view.is_registered_agency(destination):
                continue
            yield Finding(
                key=referral.id,
                due=referral.recordedtime,
                evidence=(referral.id,),
                concerns=(referral.source,),
                detail=f"referral {referral.data['referral_ref']} is addressed to {destination!r}",
            )
