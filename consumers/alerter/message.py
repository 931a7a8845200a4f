"""The email for one flag change (pure). Minimal by design: only the fields listed in
``ALLOWED``-style code below ever reach a message; event payloads are never read.

Headers are built only from validated values (issue 9): a flag change comes from a Kafka topic,
and a child id ``C-1\n`` once ended the headers early. The child id must be a CHILD_ID, the
severity one of the rule severities, the change a plain word; the title is printable text.
Anything else is shown as unreadable rather than refused, so the lead still gets the alert.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from consumers.alerter.config import PartnershipConfig
from ledger.identifiers import CHILD_ID
from policies.base import Severity

DOMAIN = "sgledger.alerts"
_CHANGE = re.compile(r"[a-z][a-z-]{0,15}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def child_label(value: object) -> str:
    """The child's id as mails show it: a valid CHILD_ID, or the partnership, or unreadable."""
    if value is None or value == "":
        return "partnership"
    return value if isinstance(value, str) and CHILD_ID.matches(value) else "(unreadable child id)"


def _subject(flag: dict[str, Any], change: object, prefix: str) -> str:
    severity = flag.get("severity")
    severity = severity if severity in {s.value for s in Severity} else "unknown severity"
    change = change if isinstance(change, str) and _CHANGE.fullmatch(change) else "changed"
    title = _CONTROL.sub(" ", str(flag.get("title") or flag.get("rule") or "flag")).strip()[:120]
    return f"{prefix}[{severity}] {title} ({change}) - child {child_label(flag.get('child'))}"


def message_id(change_id: str, recipient: str) -> str:
    digest = hashlib.sha256(f"{change_id}\n{recipient.lower()}".encode()).hexdigest()[:32]
    return f"<{digest}@{DOMAIN}>"


def _evidence_lines(change: dict[str, Any]) -> list[str]:
    lines = []
    for item in change.get("evidence_detail") or []:
        agency = str(item.get("source", "unknown agency"))
        when = str(item.get("time") or item.get("recordedtime") or "")[:10]
        kind = str(item.get("type", ""))
        lines.append(f"{agency}, {when}, {kind}")
    return lines


def summary_fields(change: dict[str, Any], config: PartnershipConfig) -> list[tuple[str, str]]:
    flag = change["flag"]
    child = child_label(flag.get("child"))
    return [
        ("Child (pseudonymous id)", child),
        ("Change", str(change.get("change", ""))),
        ("Rule", str(flag.get("title") or flag.get("rule", ""))),
        ("Severity", str(flag.get("severity", ""))),
        # agency ids, not people: which practice or service the expected action is for
        ("Agencies concerned", ", ".join(str(a) for a in flag.get("concerns") or []) or "(partnership)"),
        ("Due", str(flag.get("due", ""))),
        ("Expected action", str(flag.get("action", ""))),
        ("Source", str(flag.get("source", ""))),
        ("Open the child view", config.view_link.format(child=child)),
    ]


def build_message(
    change: dict[str, Any], recipient: str, config: PartnershipConfig, *, escalation: bool = False
) -> EmailMessage:
    flag = change["flag"]
    fields = summary_fields(change, config)
    evidence = _evidence_lines(change)
    prefix = "ESCALATION: " if escalation else ""
    subject = _subject(flag, change.get("change"), prefix)
    text = [f"{k}: {v}" for k, v in fields] + ["", "Evidence (agency, date, type):"]
    text += [f"  - {line}" for line in evidence] or ["  (none)"]
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in fields
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in evidence) or "<li>(none)</li>"
    body_html = (
        f"<html><body><h2>{html.escape(subject)}</h2><table>{rows}</table>"
        f"<h3>Evidence (agency, date, type)</h3><ul>{items}</ul></body></html>"
    )
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = config.smtp.sender
    msg["To"] = recipient
    key = f"{change['change_id']}:escalation" if escalation else str(change["change_id"])
    msg["Message-ID"] = message_id(key, recipient)
    changed = change.get("changed_at")
    if isinstance(changed, str):
        with contextlib.suppress(ValueError):
            msg["Date"] = format_datetime(datetime.fromisoformat(changed.replace("Z", "+00:00")))
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(body_html, subtype="html")
    return msg
