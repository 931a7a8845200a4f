"""The email for one flag change (pure). Minimal by design: only the fields listed in
``ALLOWED``-style code below ever reach a message; event payloads are never read."""

from __future__ import annotations

import contextlib
import hashlib
import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from consumers.alerter.config import PartnershipConfig

DOMAIN = "sgledger.alerts"


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
    child = str(flag.get("child") or "partnership")
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
    subject = (
        f"{prefix}[{flag.get('severity', '')}] {flag.get('title') or flag.get('rule')} "
        f"({change.get('change')}) - child {flag.get('child') or 'partnership'}"
    )
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
