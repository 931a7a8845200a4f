"""`sgledger publish`, `sgledger relay`, `sgledger project`: the agency side and the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from consumers.projector.applier import Applier
from consumers.projector.runner import GROUP_ID, Projector
from ledger.timeutil import TimeFormatError, parse_time
from producers.outbox import Outbox
from producers.relay import Relay
from sgledger.cli.context import AppContext, UserError, console, pass_app, print_json, stop_on_signals
from sgledger.cli.publishing import StoredNotDelivered, publish_event


def _data(value: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text("utf-8") if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError("--data must be a JSON object")
    return data


def _time(name: str, value: str | None) -> Any:
    try:
        return parse_time(value) if value else None
    except TimeFormatError as exc:
        raise UserError(f"{name}: {exc}") from exc


@click.command()
@click.option("--agency", required=True, help="Publishing agency id, e.g. police/avon-somerset.")
@click.option("--type", "event_type", required=True, help="Event type, e.g. incident.reported.")
@click.option("--child", required=True, help="The child's pseudonymous id (the subject).")
@click.option("--data", "data_text", required=True, help="JSON object, or @file.json.")
@click.option("--time", "at", help="When it happened (RFC 3339). Default: now.")
@click.option("--recorded", help="When the agency recorded it (RFC 3339). Default: now.")
@click.option("--id", "event_id", help="Event id (UUID). Default: a new one.")
@click.option("--json", "as_json", is_flag=True, help="Print the signed event.")
@pass_app
def publish(
    app: AppContext,
    agency: str,
    event_type: str,
    child: str,
    data_text: str,
    at: str | None,
    recorded: str | None,
    event_id: str | None,
    as_json: bool,
) -> None:
    """Sign an event as AGENCY and queue it in the durable outbox, then deliver it.

    Succeeds while Kafka is down: the event waits in the outbox for `sgledger relay`.
    Publishing again with the same --id and the same event returns the stored event (a safe
    retry); the same --id with a different event is refused.

    Exit codes: 0 done; 2 refused, nothing stored; 1 failed, nothing stored; 3 stored in the
    outbox but not delivered (the message and --json give the event id: retry with --id).
    """
    when = _time("--time", at)
    try:
        event, result = publish_event(
            app,
            agency,
            event_type,
            child,
            _data(data_text),
            time=when,
            recorded=_time("--recorded", recorded),
            event_id=event_id,
        )
    except StoredNotDelivered as exc:
        if as_json:  # a program reading stdout learns the id it must retry with
            print_json({"event": exc.event, "delivery": None, "error": str(exc)})
        raise
    if as_json:
        print_json({"event": event, "delivery": result})
    else:
        console.print(f"{event['type']} {event['id']} ({agency} #{event['sequence']}): {result}")


CLUSTER_ONLY = (
    "this command runs against a Kafka cluster: give --bootstrap-servers "
    "(with the embedded broker, publish/scenario/demo deliver by themselves)"
)


@click.command()
@click.option("--once", is_flag=True, help="Send what is pending and exit.")
@click.option(
    "--resend-from",
    type=int,
    help="Mark rows from this sequence unsent first (after a broker lost its data).",
)
@click.option("--agency", help="With --resend-from: only this agency.")
@pass_app
def relay(app: AppContext, once: bool, resend_from: int | None, agency: str | None) -> None:
    """Send the outbox to Kafka; rows are marked sent only once the broker acknowledged them."""
    kafka = app.cluster(CLUSTER_ONLY)
    outbox = Outbox(app.settings.outbox_url)
    the_relay = Relay(outbox, kafka)
    if resend_from is not None:
        the_relay.resend(agency=agency, from_sequence=resend_from)
    if once:
        console.print(f"sent {len(the_relay.send_pending(timeout_s=60))} event(s)")
        return
    console.print(f"relaying {app.settings.outbox_url} to {kafka.bootstrap_servers} (Ctrl-C to stop)")
    the_relay.run(stop_on_signals())


@click.command()
@click.option("--group", default=GROUP_ID, show_default=True, help="Kafka consumer group.")
@pass_app
def project(app: AppContext, group: str) -> None:
    """Run the projector: verify -> ledger -> per-child views -> policies -> flags.

    Start several with the same group to share the partitions.
    """
    kafka = app.cluster(CLUSTER_ONLY)
    projector = Projector(Applier(app.ledger, app.root_key()), kafka, group_id=group)
    console.print(f"projecting {kafka.bootstrap_servers} into {app.settings.database_url} (Ctrl-C to stop)")
    try:
        projector.run(stop_on_signals())
    finally:
        projector.close()
