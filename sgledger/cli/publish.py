"""`sgledger publish`, `sgledger relay`, `sgledger project`: the agency side and the service."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, ApplyStats
from consumers.projector.collector import collect_less
from consumers.projector.runner import GROUP_ID, Projector
from consumers.projector.verifier import DEFAULT_WORKERS, Verifier
from ledger.timeutil import TimeFormatError, parse_time
from producers.outbox import Outbox
from producers.relay import Relay
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
from sgledger.cli.publishing import StoredNotDelivered, publish_batch, publish_event
from sgledger.settings import shown
from transport.kafka import partition_lag


def _data(value: str) -> dict[str, Any]:
    text = _read_at(value[1:]) if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError("--data must be a JSON object")
    return data


def _read_at(path: str) -> str:
    """``-`` is standard input (``--data @-``, ``--batch -``)."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _time(name: str, value: str | None) -> Any:
    try:
        return parse_time(value) if value else None
    except TimeFormatError as exc:
        raise UserError(f"{name}: {exc}") from exc


@click.command()
@click.option("--agency", required=True, help="Publishing agency id, e.g. police/avon-somerset.")
@click.option("--type", "event_type", help="Event type, e.g. incident.reported.")
@click.option("--child", help="The child's pseudonymous id (the subject).")
@click.option("--data", "data_text", help="JSON object, @file.json, or @- (standard input).")
@click.option(
    "--batch",
    "batch_file",
    help="Publish every draft in FILE.ndjson (- for standard input): one JSON object per line with "
    "type, subject, data and optional time, recordedtime, id (docs/gateway.md). All are checked first "
    "and stored in one transaction, or none.",
)
@click.option("--time", "at", help="When it happened (RFC 3339). Default: now.")
@click.option("--recorded", help="When the agency recorded it (RFC 3339). Default: now.")
@click.option("--id", "event_id", help="Event id (UUID). Default: a new one.")
@click.option("--json", "as_json", is_flag=True, help="Print the signed event.")
@pass_app
def publish(
    app: AppContext,
    agency: str,
    event_type: str | None,
    child: str | None,
    data_text: str | None,
    at: str | None,
    recorded: str | None,
    event_id: str | None,
    as_json: bool,
    batch_file: str | None,
) -> None:
    """Sign an event (or a --batch of them) as AGENCY, queue it in the durable outbox, deliver.

    Succeeds while Kafka is down: the event waits in the outbox for `sgledger relay`.
    Publishing again with the same --id and the same event returns the stored event (a safe
    retry); the same --id with a different event is refused.

    Exit codes: 0 done; 2 refused, nothing stored; 1 failed, nothing stored; 3 stored in the
    outbox but not delivered (the message and --json give the event id: retry with --id).
    """
    if batch_file is not None:
        if event_type or child or data_text or at or recorded or event_id:
            raise UserError(
                "--batch takes everything from the file: drop --type, --child, --data, --time, ..."
            )
        publish_batch(app, agency, _read_at(batch_file), as_json)
        return
    missing = [
        name
        for name, value in (("--type", event_type), ("--child", child), ("--data", data_text))
        if not value
    ]
    if missing:
        raise UserError(f"missing {', '.join(missing)} (or give --batch FILE.ndjson)")
    assert event_type and child and data_text
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


log = logging.getLogger("sgledger.service")

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
@health_options
@pass_app
def relay(
    app: AppContext,
    once: bool,
    resend_from: int | None,
    agency: str | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Send the outbox to Kafka; rows are marked sent only once the broker acknowledged them."""
    kafka = app.cluster(CLUSTER_ONLY)
    outbox = Outbox(app.settings.outbox_url)
    the_relay = Relay(outbox, kafka)
    if resend_from is not None:
        the_relay.resend(agency=agency, from_sequence=resend_from)
    if once:
        console.print(f"sent {len(the_relay.send_pending(timeout_s=60))} event(s)")
        return
    last_round = [time.monotonic()]

    def ready() -> tuple[bool, str]:
        age = time.monotonic() - last_round[0]
        if age > 120:
            return False, f"no round reached the broker for {age:.0f} s; events wait in the outbox"
        return True, f"last round {age:.1f} s ago"

    metrics, server = start_health("relay", metrics_port, metrics_host, ready)

    def on_sent(sent: list[str]) -> None:
        last_round[0] = time.monotonic()
        metrics.last_success.set_to_current_time()
        if sent:
            metrics.relayed.inc(len(sent))
            log.info("relayed", extra={"events": len(sent), "first": sent[0], "last": sent[-1]})

    console.print(f"relaying {shown(app.settings.outbox_url)} to {kafka.bootstrap_servers} (Ctrl-C to stop)")
    try:
        the_relay.run(stop_on_signals(), on_sent=on_sent)
    finally:
        the_relay.close()
        if server is not None:
            server.stop()


@click.command()
@click.option("--group", default=GROUP_ID, show_default=True, help="Kafka consumer group.")
@click.option(
    "--stage",
    type=click.Choice(["both", "intake", "children"]),
    default="both",
    show_default=True,
    help="both: verify, record and project each child in one transaction (one process is "
    "enough). intake: verify and record only (from Kafka); children: project children's views "
    "and flags from the ledger, one --shard per process (no Kafka). See docs/stages.md.",
)
@click.option(
    "--shard",
    default="1/1",
    show_default=True,
    help="With --stage children: this process projects part i of n of the children (e.g. 1/2 "
    "and 2/2 in two processes). Every part must run, each in one process.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 100_000),
    default=2000,
    show_default=True,
    help="Most messages (intake) or notifications (children) in one transaction.",
)
@click.option(
    "--ready-within",
    type=float,
    default=120.0,
    show_default=True,
    help="/readyz fails when no batch has completed for this many seconds.",
)
@click.option(
    "--verify-workers",
    type=click.IntRange(0, 64),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Processes that verify messages (parse, schema, signature) beside the projector "
    "(stages both and intake): the next batch is verified while this one is applied. "
    "0 verifies in the projector's own process (a one-core machine).",
)
@health_options
@pass_app
def project(
    app: AppContext,
    group: str,
    stage: str,
    shard: str,
    max_batch: int,
    ready_within: float,
    verify_workers: int,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the projector: verify -> ledger -> per-child views -> policies -> flags.

    Start several with the same group to share the partitions. Each batch is logged (counts and
    refusal reasons; with --log-format json one object per line) and counted in /metrics.
    To use both cores, run the stages apart: one `--stage intake` and `--stage children
    --shard 1/2` and `--shard 2/2`.
    """
    try:
        part = Shard.parse(shard)
    except ValueError as exc:
        raise UserError(f"--shard: {exc}") from exc
    if stage != "children" and part != Shard():
        raise UserError("--shard applies to --stage children only")
    if stage == "children":
        _project_children(app, part, max_batch, ready_within, metrics_port, metrics_host)
        return
    kafka = app.cluster(CLUSTER_ONLY)
    verifier = Verifier(verify_workers)
    applier = Applier(app.ledger, app.root_key(), children=stage == "both", verifier=verifier)
    projector = Projector(applier, kafka, group_id=group, max_batch=max_batch)
    heartbeat = Heartbeat(ready_within, "database or broker trouble")
    metrics, server = start_health("projector", metrics_port, metrics_host, heartbeat.ready)

    def on_batch(stats: ApplyStats, seconds: float) -> None:
        heartbeat.beat()
        metrics.batch_seconds.observe(seconds)
        metrics.last_success.set_to_current_time()
        metrics.count_messages(
            {("accepted", ""): stats.accepted, ("duplicate", ""): stats.duplicates, **stats.refused}
        )
        metrics.count_flag_changes(stats.flag_changes)
        lag = partition_lag(projector.consumer)
        metrics.set_lag({(tp.topic, tp.partition): n for tp, n in lag.items() if n is not None})
        if stats.accepted or stats.duplicates or stats.refused or stats.flag_changes:
            log.info(
                "batch: %d accepted, %d duplicate, %d held, %d quarantined, %d flag changes in %.3f s",
                stats.accepted, stats.duplicates, stats.held, stats.quarantined,
                sum(stats.flag_changes.values()), seconds,
                extra={
                    "accepted": stats.accepted,
                    "duplicates": stats.duplicates,
                    "held": stats.held,
                    "quarantined": stats.quarantined,
                    "refused": {f"{status}:{reason}": n for (status, reason), n in stats.refused.items()},
                    "flag_changes": {f"{rule}:{what}": n for (rule, what), n in stats.flag_changes.items()},
                    "seconds": round(seconds, 3),
                    "write_lock_wait_s": round(app.ledger.write_lock_wait_s, 3),  # SQLite, since start
                },
            )  # fmt: skip

    database = shown(app.settings.database_url)
    console.print(f"projecting {kafka.bootstrap_servers} into {database} (Ctrl-C to stop)")
    try:
        projector.run(stop_on_signals(), on_batch)
    finally:
        projector.close()
        verifier.close()
        if server is not None:
            server.stop()


def _project_children(
    app: AppContext,
    shard: Shard,
    max_batch: int,
    ready_within: float,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """`project --stage children`: follow the ledger, no broker. /metrics reports the
    notifications not yet projected as ``sgledger_consumer_lag{topic="ledger",partition=i}``."""
    collect_less()  # as the other stages' processes (consumers.projector.collector)
    stage = ChildProjection(app.ledger, app.root_key(), shard=shard, max_batch=max_batch)
    heartbeat = Heartbeat(ready_within, "database trouble")
    metrics, server = start_health("projection", metrics_port, metrics_host, heartbeat.ready)

    def on_batch(stats: ApplyStats, seconds: float) -> None:
        heartbeat.beat()
        metrics.last_success.set_to_current_time()
        metrics.count_flag_changes(stats.flag_changes)
        metrics.set_lag({("ledger", shard.index): stage.lag()})
        if stats.accepted or stats.flag_changes:
            metrics.batch_seconds.observe(seconds)
            log.info(
                "children %s: %d notifications, %d children, %d flag changes in %.3f s",
                shard, stats.accepted, len(stats.children), sum(stats.flag_changes.values()), seconds,
                extra={
                    "shard": str(shard),
                    "notifications": stats.accepted,
                    "children": len(stats.children),
                    "flag_changes": {f"{rule}:{what}": n for (rule, what), n in stats.flag_changes.items()},
                    "seconds": round(seconds, 3),
                    "write_lock_wait_s": round(app.ledger.write_lock_wait_s, 3),  # SQLite, since start
                },
            )  # fmt: skip

    console.print(f"projecting children {shard} of {shown(app.settings.database_url)} (Ctrl-C to stop)")
    try:
        stage.run(stop_on_signals(), on_batch)
    finally:
        if server is not None:
            server.stop()


class Heartbeat:
    """When a projecting service last completed a batch, and the readiness answer made from it:
    not ready once no batch completed within ``within`` seconds (a probe then alerts or
    restarts it), naming the likely ``trouble``."""

    def __init__(self, within: float, trouble: str) -> None:
        self.within, self.trouble = within, trouble
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def ready(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last
        if age > self.within:
            return False, f"no batch completed for {age:.0f} s ({self.trouble}: see the log)"
        return True, f"last batch {age:.1f} s ago"
