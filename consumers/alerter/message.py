"""The email for flag changes (pure). Minimal by design: only the fields below ever reach a
message; event payloads are never read. What a message may say about a flag is its short id, rule,
severity, due time, expected action, citation, the agency ids it concerns and the agency
references (incident, referral or plan refs) of its evidence: never names, addresses, person ids
or free text. The flag's own ``detail`` sentence is NOT used, because rules build it from event
data that may hold free text (e.g. a referral "to" value); the link leads to the full flag after
sign-in.

Headers are built only from validated values (issue 9): a flag change comes from a Kafka topic,
and a child id ``C-1\n`` once ended the headers early. The child id must be a CHILD_ID, the
severity one of the rule severities, the change a plain word; the title is printable text; a flag
id in a link is hex digits and dashes. Anything else is shown as unreadable rather than refused,
so the lead still gets the alert.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from consumers.alerter.config import PartnershipConfig
from ledger.identifiers import CHILD_ID
from policies.base import Severity
from views.flag_ids import short_flag_id
from views.summaries import readable_time

DOMAIN = "sgledger.alerts"
_CHANGE = re.compile(r"[a-z][a-z-]{0,15}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_FLAG_ID = re.compile(r"[0-9a-f-]{8,36}")
_SEVERITIES = ("high", "medium", "low")  # most severe first


def child_label(value: object) -> str:
    """The child's id as mails show it: a valid CHILD_ID, or the partnership, or unreadable."""
    if value is None or value == "":
        return "partnership"
    return value if isinstance(value, str) and CHILD_ID.matches(value) else "(unreadable child id)"


def _severity(flag: dict[str, Any]) -> str:
    severity = flag.get("severity")
    return severity if severity in {s.value for s in Severity} else "unknown severity"


def _subject(flag: dict[str, Any], change: object, prefix: str) -> str:
    change = change if isinstance(change, str) and _CHANGE.fullmatch(change) else "changed"
    title = _CONTROL.sub(" ", str(flag.get("title") or flag.get("rule") or "flag")).strip()[:120]
    return f"{prefix}[{_severity(flag)}] {title} ({change}) - child {child_label(flag.get('child'))}"


def message_id(change_id: str, recipient: str) -> str:
    digest = hashlib.sha256(f"{change_id}\n{recipient.lower()}".encode()).hexdigest()[:32]
    return f"<{digest}@{DOMAIN}>"


def short_id(flag_id: object) -> str:
    """The flag's short id, or "unreadable" for anything that is not a flag id (never in a link)."""
    text = str(flag_id)
    return short_flag_id(text) if _FLAG_ID.fullmatch(text) else "(unreadable flag id)"


def flag_link(config: PartnershipConfig, flag_id: object) -> str:
    """The flag's page in the web workspace (the lead signs in there to see the child)."""
    short = short_id(flag_id)
    return f"{config.web_base_url}/flags/{short}" if not short.startswith("(") else config.web_base_url


def _time(value: Any) -> str:
    """A message's time: London, to the minute ("Tue 10 Dec 2019 17:00 London"), never microseconds."""
    with contextlib.suppress(TypeError, ValueError):
        return f"{readable_time(datetime.fromisoformat(str(value).replace('Z', '+00:00')))} London"
    return str(value or "")


def _refs(item: dict[str, Any]) -> list[str]:
    refs = item.get("refs")
    return [str(r) for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


def _evidence_lines(change: dict[str, Any]) -> list[str]:
    lines = []
    for item in change.get("evidence_detail") or []:
        agency = str(item.get("source", "unknown agency"))
        when = str(item.get("time") or item.get("recordedtime") or "")[:10]
        kind = " ".join([str(item.get("type", "")), *_refs(item)])
        lines.append(f"{agency}, {when}, {kind}")
    return lines


def which(change: dict[str, Any]) -> str:
    """What tells this flag from others of its rule: the agency references of its evidence and
    the agencies it concerns, e.g. "INC-CH-1; concerns gp/L85002, police/avon-somerset"."""
    refs = sorted({r for item in change.get("evidence_detail") or [] for r in _refs(item)})
    concerns = [str(a) for a in change["flag"].get("concerns") or []]
    parts = [", ".join(refs)] if refs else []
    parts.append(f"concerns {', '.join(concerns)}" if concerns else "partnership-wide")
    return "; ".join(parts)


def summary_fields(change: dict[str, Any], config: PartnershipConfig) -> list[tuple[str, str]]:
    flag = change["flag"]
    flag_id = flag.get("id", "")
    return [
        ("Child (pseudonymous id)", child_label(flag.get("child"))),
        ("Flag", short_id(flag_id)),
        ("Change", str(change.get("change", ""))),
        ("Rule", str(flag.get("title") or flag.get("rule", ""))),
        ("Which", which(change)),
        ("Severity", str(flag.get("severity", ""))),
        ("Due", _time(flag.get("due"))),
        ("Expected action", str(flag.get("action", ""))),
        ("Source", str(flag.get("source", ""))),
        ("Open the flag", flag_link(config, flag_id)),
    ]


def _subject_line(change: dict[str, Any], prefix: str = "") -> str:
    return _subject(change["flag"], change.get("change"), prefix)


def _envelope(
    subject: str, recipient: str, key: str, changed: Any, config: PartnershipConfig
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = config.smtp.sender
    msg["To"] = recipient
    msg["Message-ID"] = message_id(key, recipient)
    if isinstance(changed, str):
        with contextlib.suppress(ValueError):
            msg["Date"] = format_datetime(datetime.fromisoformat(changed.replace("Z", "+00:00")))
    return msg


def _flag_text(change: dict[str, Any], config: PartnershipConfig) -> list[str]:
    text = [f"{k}: {v}" for k, v in summary_fields(change, config)]
    text += ["Evidence (agency, date, type and reference):"]
    return text + ([f"  - {line}" for line in _evidence_lines(change)] or ["  (none)"])


def _flag_html(change: dict[str, Any], config: PartnershipConfig) -> str:
    fields = summary_fields(change, config)
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>"
        + (f"<a href='{html.escape(v)}'>{html.escape(v)}</a>" if k == "Open the flag" else html.escape(v))
        + "</td></tr>"
        for k, v in fields
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _evidence_lines(change)) or "<li>(none)</li>"
    return f"<table>{rows}</table><h3>Evidence (agency, date, type and reference)</h3><ul>{items}</ul>"


def build_message(
    change: dict[str, Any], recipient: str, config: PartnershipConfig, *, escalation: bool = False
) -> EmailMessage:
    subject = _subject_line(change, "ESCALATION: " if escalation else "")
    key = f"{change['change_id']}:escalation" if escalation else str(change["change_id"])
    msg = _envelope(subject, recipient, key, change.get("changed_at"), config)
    msg.set_content("\n".join(_flag_text(change, config)) + "\n")
    msg.add_alternative(
        f"<html><body><h2>{html.escape(subject)}</h2>{_flag_html(change, config)}</body></html>",
        subtype="html",
    )
    return msg


def build_batch_message(
    changes: Sequence[dict[str, Any]], recipient: str, config: PartnershipConfig, key: str
) -> EmailMessage:
    """One message for several changes about one child that arrived together (e.g. the five flags
    one incident raises): a lead reads one email about the child, not one per flag row."""
    ordered = sorted(changes, key=lambda c: (str(c["flag"].get("due")), str(c["flag"].get("id"))))
    child = child_label(ordered[0]["flag"].get("child"))
    severities = {_severity(c["flag"]) for c in ordered}
    top = next((s for s in _SEVERITIES if s in severities), "unknown severity")
    subject = f"[{top}] {len(ordered)} gap flag changes - child {child}"
    msg = _envelope(subject, recipient, key, max(str(c.get("changed_at")) for c in ordered), config)
    blocks = [
        f"{n}. {_subject_line(c)}\n" + "\n".join(_flag_text(c, config)) for n, c in enumerate(ordered, 1)
    ]
    msg.set_content(subject + "\n\n" + "\n\n".join(blocks) + "\n")
    sections = "".join(
        f"<h3>{n}. {html.escape(_subject_line(c))}</h3>{_flag_html(c, config)}"
        for n, c in enumerate(ordered, 1)
    )
    msg.add_alternative(
        f"<html><body><h2>{html.escape(subject)}</h2>{sections}</body></html>", subtype="html"
    )
    return msg
