"""Who hears about a flag change (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumers.alerter.config import PartnershipConfig


@dataclass(frozen=True)
class Route:
    recipients: tuple[str, ...]  # sorted, unique
    immediate: bool  # False: quiet rule, digest only


def route(change: dict[str, Any], config: PartnershipConfig) -> Route:
    """Leads of every agency the flag concerns, plus partnership leads by severity and by rule."""
    flag = change["flag"]
    recipients: set[str] = set()
    for agency in flag.get("concerns") or []:
        recipients.update(config.agency_leads.get(agency, ()))
    recipients.update(config.leads_by_severity.get(flag.get("severity", ""), ()))
    recipients.update(config.leads_by_rule.get(flag.get("rule", ""), ()))
    return Route(tuple(sorted(recipients)), flag.get("rule") not in config.quiet_rules)
