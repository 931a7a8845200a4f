"""Sends due pending mail over SMTP (smtplib). A connection error or a 4xx reply leaves the mail
pending with exponential backoff; a 5xx for one recipient marks that mail failed, others go on."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from consumers.alerter.config import SmtpConfig
from consumers.alerter.store import AlertStore, OutgoingMail

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)


@dataclass
class SendReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


def backoff(attempts: int, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_MAX) -> timedelta:
    return min(cap, base * (2 ** max(0, attempts - 1)))


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """The client context for STARTTLS: certificate and host name verified (never turned off).

    With ``ca_file`` only that bundle is trusted (``create_default_context(cafile=...)`` does not
    load the system CAs then), for a relay whose certificate comes from the partnership's own CA;
    otherwise the system's default CAs.
    """
    return ssl.create_default_context(cafile=config.ca_file)


def open_smtp(config: SmtpConfig, password: str | None, timeout: float = 10.0) -> smtplib.SMTP:
    """Connect, STARTTLS and log in. A refused certificate (ssl.SSLCertVerificationError, an
    OSError) or a refused login (SMTPAuthenticationError) is raised like a connection error, so
    that ``send_due`` keeps the mail pending until the relay or the configuration is fixed."""
    smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
    try:
        if config.starttls:
            smtp.starttls(context=tls_context(config))
        if config.username:
            if password is None:
                raise smtplib.SMTPException(f"no password in ${config.password_env}")
            smtp.login(config.username, password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_one(smtp: smtplib.SMTP, sender: str, recipient: str, message: str | EmailMessage) -> None:
    """Raises SMTPResponseException (with smtp_code) for a refusal."""
    data = message if isinstance(message, str) else message.as_string()
    try:
        # bytes are sent as they are: line endings must already be CRLF
        wire = data.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
        smtp.sendmail(sender, [recipient], wire)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients[recipient]
        raise smtplib.SMTPResponseException(code, text) from exc


def send_due(
    store: AlertStore,
    config: SmtpConfig,
    password: str | None,
    now: datetime,
    base: timedelta = BACKOFF_BASE,
) -> SendReport:
    report = SendReport()
    with Session(store.engine) as session:
        due = list(
            session.scalars(
                select(OutgoingMail.id)
                .where(OutgoingMail.status == "pending", OutgoingMail.next_attempt_at <= now)
                .order_by(OutgoingMail.id)
            )
        )
    if not due:
        return report
    smtp: smtplib.SMTP | None = None
    try:
        smtp = open_smtp(config, password)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("SMTP %s:%s unavailable: %s", config.host, config.port, exc)
        _defer(store, due, now, f"SMTP unavailable: {exc}", base)
        report.deferred = len(due)
        return report
    lost: tuple[list[int], str] | None = None
    try:
        for index, mail_id in enumerate(due):
            with Session(store.engine) as session, session.begin():
                # another alerter process may be sending the same row: skip it while it is locked
                mail = session.get(OutgoingMail, mail_id, with_for_update={"skip_locked": True})
                if mail is None or mail.status != "pending":
                    continue
                mail.attempts += 1
                try:
                    send_one(smtp, config.sender, mail.recipient, mail.message)
                except smtplib.SMTPResponseException as exc:
                    error = f"{exc.smtp_code} {exc.smtp_error!r}"
                    mail.last_error = error
                    if 500 <= exc.smtp_code < 600:
                        mail.status = "failed"
                        report.failed += 1
                        log.error("permanent failure for %s (mail %s): %s", mail.recipient, mail.id, error)
                    else:
                        mail.next_attempt_at = now + backoff(mail.attempts, base)
                        report.deferred += 1
                    _reset(smtp)
                    continue
                except (OSError, smtplib.SMTPException) as exc:
                    mail.last_error = f"SMTP connection lost: {exc}"
                    mail.next_attempt_at = now + backoff(mail.attempts, base)
                    report.deferred += 1
                    lost = (due[index + 1 :], f"SMTP connection lost: {exc}")
                    break
                mail.status = "sent"
                mail.sent_at = now
                mail.last_error = None
                report.sent += 1
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    if lost is not None:
        _defer(store, lost[0], now, lost[1], base)
        report.deferred += len(lost[0])
    return report


def _reset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        smtp.rset()


def _defer(store: AlertStore, ids: list[int], now: datetime, error: str, base: timedelta) -> None:
    if not ids:
        return
    with Session(store.engine) as session, session.begin():
        for mail in session.scalars(select(OutgoingMail).where(OutgoingMail.id.in_(ids))):
            if mail.status != "pending":
                continue
            mail.attempts += 1
            mail.last_error = error
            mail.next_attempt_at = now + backoff(mail.attempts, base)
