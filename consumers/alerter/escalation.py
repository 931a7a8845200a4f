"""Escalation and the daily digest, both driven by an injected clock (never slept on).

- Escalation: a high-severity flag still open (not acknowledged) after N working hours (09:00-17:00
  London on England working days) is re-sent once to the partnership's high-severity leads.
- Digest: each recipient with a ``[digests."address"]`` entry gets, at their London time each
  day, one message listing their open flags (if they have any).

Both use the mail table's unique (key, recipient), so each happens once.
"""

from __future__ import annotations

import html
import json
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.message import build_message, message_id, summary_fields
from consumers.alerter.routing import route
from consumers.alerter.store import AlertStore, FlagState
from policies.calendar import LONDON, is_working_day

DAY_START = time(9, 0)
DAY_END = time(17, 0)


def working_hours_between(start: datetime, end: datetime) -> float:
    """Hours of 09:00-17:00 London on working days between two instants."""
    if end <= start:
        return 0.0
    total = timedelta()
    day: date = start.astimezone(LONDON).date()
    last = end.astimezone(LONDON).date()
    while day <= last:
        if is_working_day(day):
            lo = max(start, datetime.combine(day, DAY_START, tzinfo=LONDON))
            hi = min(end, datetime.combine(day, DAY_END, tzinfo=LONDON))
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total.total_seconds() / 3600


def escalate_due(store: AlertStore, config: PartnershipConfig, now: datetime) -> int:
    leads = config.leads_by_severity.get("high", ())
    created = 0
    with Session(store.engine) as session, session.begin():
        rows = session.scalars(
            select(FlagState).where(
                FlagState.severity == "high", FlagState.state == "open", FlagState.escalated.is_(False)
            )
        )
        for row in rows:
            if working_hours_between(row.raised_at, now) < config.escalate_after_working_hours:
                continue
            change = json.loads(row.last_change)
            for recipient in leads:
                build = partial(build_message, change, recipient, config, escalation=True)
                key = f"{change['change_id']}:escalation"
                created += store.add_mail(session, key, recipient, row.flag_id, build, now)
            row.escalated = True
    return created


def digest_due(store: AlertStore, config: PartnershipConfig, now: datetime) -> int:
    """Today's digest for each recipient whose digest time (London) has passed and who has open
    flags; at most one per recipient per day (the mail key is the London date)."""
    local = now.astimezone(LONDON)
    due = {
        recipient
        for recipient, digest in config.digests.items()
        if local.time() >= time.fromisoformat(digest.time)
    }
    if not due:
        return 0
    key = f"digest:{local.date().isoformat()}"
    created = 0
    with Session(store.engine) as session, session.begin():
        by_recipient: dict[str, list[dict[str, Any]]] = {}
        for row in session.scalars(select(FlagState).where(FlagState.state != "closed")):
            change = json.loads(row.last_change)
            for recipient in due.intersection(route(change, config).recipients):
                by_recipient.setdefault(recipient, []).append(change)
        for recipient, changes in sorted(by_recipient.items()):
            build = partial(digest_message, changes, recipient, config, key)
            created += store.add_mail(session, key, recipient, "digest", build, now)
    return created


def digest_message(
    changes: list[dict[str, Any]], recipient: str, config: PartnershipConfig, key: str
) -> EmailMessage:
    changes = sorted(changes, key=lambda c: (str(c["flag"].get("due")), str(c["flag"].get("id"))))
    subject = f"Daily digest {key.removeprefix('digest:')}: {len(changes)} open gap flag(s)"
    text_parts: list[str] = []
    html_parts: list[str] = []
    for change in changes:
        fields = summary_fields(change, config)
        text_parts.append("\n".join(f"{k}: {v}" for k, v in fields))
        items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in fields)
        html_parts.append(f"<ul>{items}</ul>")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = config.smtp.sender
    msg["To"] = recipient
    msg["Message-ID"] = message_id(key, recipient)
    msg.set_content(subject + "\n\n" + "\n\n".join(text_parts) + "\n")
    msg.add_alternative(f"<html><body><h2>{html.escape(subject)}</h2>{''.join(html_parts)}</body></html>",
                        subtype="html")  # fmt: skip
    return msg
