"""Tell the partnership's designated leads, by email, each time someone breaks the glass.

The read itself is already in the ledger (an ``access.recorded`` with the reason) and on the
audit page; the email makes sure a person looks at it soon. It goes through the alerter's SMTP
code (``consumers.alerter.sender``: STARTTLS with verified certificates, login with the password
from the environment variable the routing file names) to the addresses in the routing file's
``[partnership] leads_by_severity`` (the partnership's designated leads). Sending happens on a
short-lived thread so the page is not held up by a slow relay; a failure is logged, and the
audit page still lists the read.

The message carries the child's pseudonymous id, who, their agency and role, when and the
reason typed: the reason is what the designated lead must judge.
"""

from __future__ import annotations

import logging
import os
import threading
from email.message import EmailMessage

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.sender import open_smtp, send_one
from producers.service import Actor

log = logging.getLogger(__name__)


def designated_leads(config: PartnershipConfig) -> list[str]:
    return sorted({address for addresses in config.leads_by_severity.values() for address in addresses})


class BreakGlassMailer:
    def __init__(self, config: PartnershipConfig, base_url: str | None = None) -> None:
        self.config = config
        self.recipients = designated_leads(config)
        self.base_url = base_url.rstrip("/") if base_url else None

    def message(self, actor: Actor, child: str, reason: str, when: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"Break-glass read of child {child}'s record by {actor.id}"
        msg["From"] = self.config.smtp.sender
        msg["To"] = ", ".join(self.recipients)
        link = f"\nAudit page: {self.base_url}/audit\n" if self.base_url else ""
        msg.set_content(
            f"{actor.id} ({actor.role}{', ' + actor.agency if actor.agency else ''}) opened the record "
            f"of child {child} at {when} without a legitimate relationship, giving this reason:\n\n"
            f"    {reason}\n\nThe read is recorded in the ledger as a signed access event.{link}"
        )
        return msg

    def send(self, actor: Actor, child: str, reason: str, when: str) -> threading.Thread:
        message = self.message(actor, child, reason, when)
        thread = threading.Thread(target=self._send, args=(message,), name="break-glass-mail", daemon=True)
        thread.start()
        return thread

    def _send(self, message: EmailMessage) -> None:
        smtp_config = self.config.smtp
        password = os.environ.get(smtp_config.password_env) if smtp_config.password_env else None
        try:
            smtp = open_smtp(smtp_config, password)
            try:
                for recipient in self.recipients:
                    send_one(smtp, smtp_config.sender, recipient, message)
            finally:
                smtp.quit()
        except Exception as exc:  # the audit page still lists the read
            log.error("could not email the break-glass read to the designated leads: %s", exc)
