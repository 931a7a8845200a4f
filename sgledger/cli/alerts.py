"""`sgledger alerts run|test-send|pending`: gap flags to safeguarding leads by email.

The SMTP password comes from the environment variable named by ``smtp.password_env`` in the
partnership file, never from the command line.
"""

from __future__ import annotations

import os
import smtplib
import time
import uuid
from datetime import UTC, datetime

import click

from consumers.alerter.alerter import Alerter
from consumers.alerter.config import ConfigError, PartnershipConfig, load_config
from consumers.alerter.message import build_message
from consumers.alerter.sender import SendReport, open_smtp, send_one
from consumers.alerter.store import AlertStore
from sgledger.cli.context import (
    AppContext,
    UserError,
    console,
    health_options,
    pass_app,
    print_json,
    start_health,
    stop_on_signals,
)

CONFIG = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="Partnership routing file (TOML), e.g. deploy/partnership.example.toml.",
)  # fmt: skip


def _config(path: str) -> PartnershipConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def _password(config: PartnershipConfig) -> str | None:
    name = config.smtp.password_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise UserError(f"smtp.password_env: environment variable {name} is not set")
    return value


@click.group()
def alerts() -> None:
    """Email gap flags to safeguarding leads.

    `run` is the service: consumer group sgledger-alerter on the gap-flags topic of a Kafka
    cluster (--bootstrap-servers), routing by a partnership file (README "Alerts",
    deploy/partnership.example.toml). `pending` shows what waits and why; `test-send` checks the
    SMTP route. `sgledger demo` shows the mail for the Child Charlie story on this machine.
    """


@alerts.command()
@CONFIG
@health_options
@pass_app
def run(app: AppContext, config_path: str, metrics_port: int | None, metrics_host: str) -> None:
    """Consume flag changes and send mail until Ctrl-C / SIGTERM. Each batch of mail sent,
    deferred or refused is logged with a timestamp on stderr and counted in /metrics."""
    config = _config(config_path)
    kafka = app.cluster(
        "alerts run needs a Kafka cluster: give --bootstrap-servers (the embedded broker lives "
        "only as long as each command; `sgledger demo` shows the mail on this machine)"
    )
    alerter = Alerter(kafka, config, app.settings.database_url, smtp_password=_password(config))
    last_step = [time.monotonic()]

    def ready() -> tuple[bool, str]:
        age = time.monotonic() - last_step[0]
        return (age < 120, f"last step {age:.1f} s ago")

    metrics, health = start_health("alerter", metrics_port, metrics_host, ready)

    def on_step(report: SendReport) -> None:
        last_step[0] = time.monotonic()
        metrics.last_success.set_to_current_time()
        for outcome in ("sent", "deferred", "failed"):
            if getattr(report, outcome):
                metrics.mail.labels(outcome).inc(getattr(report, outcome))

    stop = stop_on_signals()
    server = f"{config.smtp.host}:{config.smtp.port}"
    console.print(f"alerting from {kafka.topics.gap_flags} via {server} (Ctrl-C to stop)")
    try:
        alerter.run(stop, on_step=on_step)
    finally:
        alerter.close()
        if health is not None:
            health.stop()


def sample_change() -> dict[str, object]:
    return {
        "change_id": str(uuid.uuid4()),
        "change": "raised",
        "changed_at": datetime.now(UTC).isoformat(),
        "flag": {
            "id": str(uuid.uuid4()), "rule": "test", "version": 1, "child": "child-test-0000",
            "severity": "low", "title": "Test message from sgledger alerts", "status": "open",
            "due": datetime.now(UTC).isoformat(), "evidence": [], "concerns": [],
            "source": "(none: this is a test)", "action": "Nothing: this checks the mail route.",
        },
        "evidence_detail": [],
    }  # fmt: skip


@alerts.command("test-send")
@click.argument("address")
@CONFIG
def test_send(address: str, config_path: str) -> None:
    """Send a sample message to ADDRESS through the configured SMTP server."""
    config = _config(config_path)
    message = build_message(sample_change(), address, config)
    try:
        smtp = open_smtp(config.smtp, _password(config))
        try:
            send_one(smtp, config.smtp.sender, address, message)
        finally:
            smtp.quit()
    except smtplib.SMTPResponseException as exc:
        raise UserError(f"{config.smtp.host} refused: {exc.smtp_code} {exc.smtp_error!r}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise UserError(f"cannot send via {config.smtp.host}:{config.smtp.port}: {exc}") from exc
    console.print(f"sent {message['Message-ID']} to {address}")


@alerts.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--all", "include_sent", is_flag=True, help="Also mail already sent.")
@pass_app
def pending(app: AppContext, as_json: bool, include_sent: bool) -> None:
    """Mail waiting to be sent (and failed), with why."""
    store = AlertStore(app.settings.database_url)
    try:
        rows = [m for m in store.mail() if include_sent or m.status != "sent"]
    finally:
        store.close()
    listed = [
        {
            "change_id": m.change_id, "recipient": m.recipient, "flag_id": m.flag_id, "status": m.status,
            "attempts": m.attempts, "next_attempt_at": m.next_attempt_at.isoformat(),
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "last_error": m.last_error, "subject": m.subject, "message_id": m.message_id,
        }
        for m in rows
    ]  # fmt: skip
    if as_json:
        print_json(listed)
        return
    if not listed:
        console.print("no mail waiting")
        return
    for row in listed:  # one line per mail: readable in a narrow terminal and by grep
        if row["status"] == "sent":
            when, why = f"sent {row['sent_at']}", ""
        elif row["status"] == "failed":
            when, why = "not retried", f"  ({row['last_error']})"
        else:
            when, why = f"next {row['next_attempt_at']}", f"  ({row['last_error'] or 'not yet attempted'})"
        line = f"{row['status']:8} {row['recipient']}  {when}  attempts {row['attempts']}  {row['subject']}"
        console.print(line + why, markup=False, highlight=False)
