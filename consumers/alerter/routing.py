"""Who hears about a flag change (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumers.alerter.config import PartnershipConfig


@dataclass(frozen=True)
class Route:
    recipients: tuple[str, ...]  # everyone the flag concerns (what their digests list); sorted
    immediate: tuple[str, ...]  # those of them mailed at once


def route(change: dict[str, Any], config: PartnershipConfig) -> Route:
    """Leads of every agency the flag concerns, plus partnership leads by severity and by rule.

    A recipient with a daily digest gets quiet rules (and, if they chose ``digest-only``, low
    severities) only in the digest. A recipient without one gets everything at once, quiet rules
    included: a flag must never be routed to someone and then never sent.
    """
    flag = change["flag"]
    recipients: set[str] = set()
    for agency in flag.get("concerns") or []:
        recipients.update(config.agency_leads.get(agency, ()))
    recipients.update(config.leads_by_severity.get(flag.get("severity", ""), ()))
    recipients.update(config.leads_by_rule.get(flag.get("rule", ""), ()))
    quiet = flag.get("rule") in config.quiet_rules
    low = flag.get("severity") == "low"

    def at_once(recipient: str) -> bool:
        digest = config.digests.get(recipient)
        if digest is None:
            return True
        return not quiet and not (low and digest.low_severity == "digest-only")

    everyone = tuple(sorted(recipients))
    return Route(everyone, tuple(r for r in everyone if at_once(r)))
