"""`sgledger alerts run|test-send|pending`: gap flags to safeguarding leads by email.

The SMTP password comes from the environment variable named by ``smtp.password_env`` in the
partnership file, never from the command line.
"""

from __future__ import annotations

import json
import os
import smtplib
import time
import uuid
from datetime import UTC, datetime

import click

from consumers.alerter.alerter import Alerter, utc_now
from consumers.alerter.config import ConfigError, PartnershipConfig, is_email, load_config
from consumers.alerter.message import build_message
from consumers.alerter.routing import route
from consumers.alerter.sender import SendReport, open_smtp, send_due, send_one
from consumers.alerter.store import AlertStore, UnroutedChange
from sgledger.cli.context import (
    AppContext,
    UserError,
    console,
    health_options,
    parse_as_of,
    pass_app,
    print_json,
    start_health,
    stop_on_signals,
)
from views.flag_ids import short_flag_id

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


def _schema_first(app: AppContext) -> str:
    """The database URL once the ledger has created or checked the schema (the alerter's tables
    are in its migrations): alert tables made first on an empty database made the ledger take it
    for an unversioned old release that `db upgrade` could not migrate, and on a database an
    older release made the alerter ran where every other service refuses."""
    app.ledger  # noqa: B018  (opening the ledger creates or checks its schema)
    return app.settings.database_url


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
    alerter = Alerter(kafka, config, _schema_first(app), smtp_password=_password(config))
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
@click.option(
    "--unrouted", is_flag=True,
    help="Instead: flag changes no lead was routed for (they went to the fallback address).",
)  # fmt: skip
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False),
    help="With --unrouted: the current routing file, to show who would receive each change now.",
)  # fmt: skip
@pass_app
def pending(
    app: AppContext, as_json: bool, include_sent: bool, unrouted: bool, config_path: str | None
) -> None:
    """Mail waiting to be sent (and failed), with why; or, with --unrouted, what no lead got."""
    if config_path and not unrouted:
        raise UserError("--config is only used with --unrouted (to show who would get each change now)")
    if unrouted:
        _pending_unrouted(app, as_json, _config(config_path) if config_path else None)
        return
    store = AlertStore(_schema_first(app))
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


def _routed_now(row: UnroutedChange, config: PartnershipConfig | None) -> list[str] | None:
    """Who the current routing file would send this change to (None: no file given)."""
    if config is None:
        return None
    return list(route(json.loads(row.change), config).recipients)


def _pending_unrouted(app: AppContext, as_json: bool, config: PartnershipConfig | None) -> None:
    store = AlertStore(_schema_first(app))
    try:
        rows = store.unrouted()
    finally:
        store.close()
    listed = [
        {
            "change_id": r.change_id, "flag_id": r.flag_id, "child": r.child, "rule": r.rule,
            "concerns": json.loads(r.concerns), "changed_at": r.changed_at.isoformat(),
            "change": json.loads(r.change)["change"], "routed_now_to": _routed_now(r, config),
        }
        for r in rows
    ]  # fmt: skip
    if as_json:
        print_json(listed)
        return
    if not listed:
        console.print("no unrouted flag changes: every change had a lead")
        return
    now_routed: set[str] = set()
    for row in listed:
        concerns = ", ".join(row["concerns"]) or "(partnership)"
        line = (
            f"{row['changed_at']}  {short_flag_id(row['flag_id'])}  {row['change']:<9} {row['rule']}  "
            f"child {row['child'] or '(partnership)'}  concerns {concerns}"
        )
        if row["routed_now_to"]:
            line += f"  -> now routed to {', '.join(row['routed_now_to'])}"
            now_routed.update(row["routed_now_to"])
        console.print(line, markup=False, highlight=False)
    first = listed[0]["changed_at"]
    for lead in sorted(now_routed):
        console.print(
            f"send {lead} what they missed: sgledger alerts resend --to {lead} --since {first} --config FILE",
            markup=False, highlight=False,
        )  # fmt: skip


@alerts.command()
@click.option("--to", "recipient", required=True, help="The lead's address (now in the routing file).")
@click.option("--since", required=True, help="RFC 3339 time: unrouted changes from then on.")
@click.option("--agency", help="Only changes concerning this agency (e.g. gp/L85003).")
@CONFIG
@pass_app
def resend(app: AppContext, recipient: str, since: str, agency: str | None, config_path: str) -> None:
    """Send a lead the flag changes that went only to the fallback address (no lead was routed)
    since --since: one message per child, each change at most once to them, then sends what is due.

    For a lead added to the routing file after their agency's flags were raised; see
    `alerts pending --unrouted --config FILE` for who would get what now."""
    config = _config(config_path)
    if not is_email(recipient):
        raise UserError(f"--to: {recipient!r} is not an email address")
    when = parse_as_of(since)
    store = AlertStore(_schema_first(app))
    try:
        missed = [r for r in store.unrouted(when) if agency is None or agency in json.loads(r.concerns)]
        created = store.queue(recipient, [json.loads(r.change) for r in missed], config, utc_now())
        report = send_due(store, config.smtp, _password(config), utc_now())
    finally:
        store.close()
    console.print(
        f"{len(missed)} unrouted change(s) since {when.isoformat()}: {created} new message(s) to "
        f"{recipient}; mail sent {report.sent}, deferred {report.deferred}, failed {report.failed}",
        markup=False, highlight=False,
    )  # fmt: skip
