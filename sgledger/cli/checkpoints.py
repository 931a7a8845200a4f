"""`sgledger audit checkpoint|log-keys|witness-request|cosigned`: the partnership's tree-head
service and its exchange with the agencies' witnesses (docs/checkpoints.md).

Checkpoints are kept as files (default DATA_DIR/checkpoints), outside the database they vouch
for; witnesses keep their own cosigned copies, which is what makes a truncation visible even to
someone who also controls the partnership's disk.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.auditor.checkpoints import (
    LOG_AGENCY,
    grow_logs,
    log_trees,
    log_verifier_keys,
    make_checkpoints,
)
from consumers.auditor.witnessing import collect_cosignatures, publish_requests
from ledger.checkpoint import ACCEPTED_LOG, QUARANTINE_LOG, AddCheckpoint, origin_of
from ledger.checkpoint_store import CheckpointStore
from ledger.keystore import KeystoreError
from ledger.merkle import ProofError
from ledger.notes import NoteError
from sgledger.cli.context import (
    AppContext,
    UserError,
    health_options,
    pass_app,
    print_json,
    start_health,
    stop_on_signals,
)
from transport.kafka import BrokerUnavailable, KafkaSettings

STORE = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the partnership keeps its checkpoints (default: DATA_DIR/checkpoints).",
)


def store_of(app: AppContext, directory: Path | None) -> CheckpointStore:
    return CheckpointStore(directory or app.settings.data_dir / "checkpoints")


def _kafka(app: AppContext) -> KafkaSettings | None:
    if app.settings.embedded:
        return None  # the embedded broker forgets everything when this command ends
    return KafkaSettings.from_env(
        bootstrap_servers=app.settings.bootstrap_servers, topic_prefix=app.settings.topic_prefix
    )


@click.command("checkpoint")
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Keep going every SECONDS (the service).",
)
@STORE
@click.option("--json", "as_json", is_flag=True, help="Print what was signed as JSON.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Read both logs from their first entry (the first round only), not from the frontier kept "
    "beside the last checkpoint, and refuse an entry edited under it too.",
)
@health_options
@pass_app
def checkpoint(
    app: AppContext,
    every: float | None,
    directory: Path | None,
    as_json: bool,
    rebuild: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Sign C2SP checkpoints of the accepted-events log and the quarantine log with the
    partnership/log key and keep them.

    A log is signed again only when it grew. With --bootstrap-servers each new checkpoint goes,
    with a consistency proof from the previous one, to <prefix>.checkpoints for the agencies'
    witnesses (`sgledger witness run`), and their cosigned copies on <prefix>.cosignatures are
    added to the kept files. With --every it runs until Ctrl-C / SIGTERM; it stops (exit 2)
    rather than sign a history that does not extend the last checkpoint it kept.

    Each round reads only the entries after the last checkpoint (from the frontier kept beside
    it); an entry deleted under it is refused at once, one edited in place is reported by
    `audit verify --checkpoints` (or refused here with --rebuild)."""
    store = store_of(app, directory)
    try:
        key = app.keystore.agency_private_key(LOG_AGENCY)
    except KeystoreError as exc:
        raise UserError(f"{exc}: register the log key with `sgledger agency add {LOG_AGENCY}`") from exc
    partnership, kafka = app.root_key().partnership, _kafka(app)
    last_round = [time.monotonic()]

    def ready() -> tuple[bool, str]:
        age = time.monotonic() - last_round[0]
        return (every is None or age < 2 * every + 60, f"last round {age:.1f} s ago")

    metrics, health = (
        start_health("checkpoints", metrics_port, metrics_host, ready) if every else (None, None)
    )
    stop = stop_on_signals() if every else threading.Event()
    try:
        while True:
            _round(app, store, partnership, key, kafka, as_json, rebuild)
            rebuild = False
            last_round[0] = time.monotonic()
            if metrics is not None:
                metrics.last_success.set_to_current_time()
            if every is None or stop.wait(every):
                return
    finally:
        if health is not None:
            health.stop()


def _round(
    app: AppContext,
    store: CheckpointStore,
    partnership: str,
    key: Ed25519PrivateKey,
    kafka: KafkaSettings | None,
    as_json: bool,
    rebuild: bool = False,
) -> None:
    """Sign what grew, send it to the witnesses and collect what they sent back; say what happened."""
    try:
        logs = grow_logs(app.ledger, store, partnership, rebuild=rebuild)
        requests = make_checkpoints(logs.trees, partnership, key, store, logs.lasts)
    except ProofError as exc:
        raise UserError(str(exc)) from exc
    except NoteError as exc:  # a kept file that no longer parses: someone edited it
        raise UserError(f"a kept checkpoint in {store.directory} is damaged: {exc}") from exc
    signed: list[dict[str, Any]] = [
        {
            "origin": r.checkpoint.origin,
            "size": r.checkpoint.size,
            "old_size": r.old_size,
            "file": str(store.path(r.checkpoint)),
        }
        for r in requests
    ]
    cosignatures = 0
    if kafka is not None:
        try:
            publish_requests(kafka, requests)
            cosignatures = collect_cosignatures(kafka, store)
        except BrokerUnavailable as exc:
            click.echo(f"kept, not sent: {exc}", err=True)
    if as_json:
        print_json({"signed": signed, "cosignatures_added": cosignatures})
        return
    for item in signed:
        click.echo(f"signed {item['origin']} size {item['size']}: {item['file']}")
    if not signed:
        click.echo("no log grew since the last checkpoint")
    if cosignatures:
        click.echo(f"added {cosignatures} witness cosignature(s)")


@click.command("log-keys")
@pass_app
def log_keys(app: AppContext) -> None:
    """The verifier keys (C2SP vkeys) of the partnership's logs, from the root-signed registrations
    in the ledger: what an agency gives `sgledger witness trust`."""
    root = app.root_key()
    with app.ledger.read() as session:
        registry = app.ledger.key_registry(session, root)
    keys = log_verifier_keys(registry, root.partnership)
    if not keys:
        raise UserError(f"no {LOG_AGENCY} key is registered: `sgledger agency add {LOG_AGENCY}`")
    for key in keys:
        click.echo(str(key))


@click.command("witness-request")
@click.argument("log", type=click.Choice([ACCEPTED_LOG, QUARANTINE_LOG]))
@click.option("--old", "old_size", type=click.IntRange(min=0), required=True, help="The witness's size.")
@STORE
@pass_app
def witness_request(app: AppContext, log: str, old_size: int, directory: Path | None) -> None:
    """An add-checkpoint request for the latest kept checkpoint of LOG with a consistency proof
    from OLD_SIZE: for a witness that missed checkpoints (it answered "409: last cosigned N")."""
    origin = origin_of(app.root_key().partnership, log)
    latest = store_of(app, directory).latest(origin)
    if latest is None:
        raise UserError(f"no checkpoint of {origin} is kept yet: run `sgledger audit checkpoint`")
    checkpoint, note = latest
    tree = log_trees(app.ledger)[log]
    try:
        proof = tree.consistency_proof(old_size, checkpoint.size)
    except ProofError as exc:
        raise UserError(str(exc)) from exc
    click.echo(AddCheckpoint.make(old_size, proof, note).body(), nl=False)


@click.command("cosigned")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@STORE
@pass_app
def cosigned(app: AppContext, files: tuple[Path, ...], directory: Path | None) -> None:
    """Add the witness cosignatures in FILES (cosigned checkpoints an agency sent back) to the kept
    checkpoints. Exit 1 if a file is not a cosigned copy of a kept checkpoint."""
    store, failed = store_of(app, directory), 0
    for path in files:
        try:
            kept, added = store.add_cosignatures(path.read_bytes())
        except (NoteError, UnicodeDecodeError) as exc:
            click.echo(f"{path}: {exc}", err=True)
            failed += 1
            continue
        click.echo(f"{path}: {added} new signature(s) on {kept}")
    if failed:
        raise SystemExit(1)
