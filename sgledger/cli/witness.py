"""`sgledger witness`: an agency cosigns the partnership's checkpoints (producers/witness.py).

For agencies without the HTTP gateway (which calls the same library): initialise once, trust
the partnership's log keys, then either cosign request files by hand or run as a service that
reads <prefix>.checkpoints and answers on <prefix>.cosignatures.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

import click

from ledger.checkpoint import AddCheckpoint
from ledger.notes import NoteError, VerifierKey
from ledger.private_files import NotPrivate
from producers.witness import Witness, WitnessError, WitnessRefusal
from producers.witness_service import run_witness
from sgledger.cli.context import AppContext, UserError, pass_app, print_json, stop_on_signals

DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="The witness's private state directory (default: DATA_DIR/witness).",
)


def _open(app: AppContext, directory: Path | None) -> Witness:
    try:
        return Witness(directory or app.settings.data_dir / "witness")
    except (WitnessError, NotPrivate, OSError) as exc:
        raise UserError(str(exc)) from exc


@click.group()
def witness() -> None:
    """Cosign the partnership's checkpoints after checking they extend what you saw before.

    Once: `init` (send the printed key to the partnership) and `trust` the partnership's log keys.
    Then `run` against the partnership's Kafka, or `cosign` request files by hand. Your copies in
    DIR/cosigned are what `sgledger audit verify --checkpoints` checks a ledger against."""


@witness.command("init")
@click.option("--name", required=True, help="The witness's key name, e.g. gp.L85001.example/witness.")
@DIR
@pass_app
def init(app: AppContext, name: str, directory: Path | None) -> None:
    """Create this agency's witness key (0600) and print its verifier key for the partnership."""
    try:
        created = Witness.create(directory or app.settings.data_dir / "witness", name)
    except (WitnessError, NoteError, NotPrivate) as exc:
        raise UserError(str(exc)) from exc
    click.echo(str(created.vkey))


@witness.command("trust")
@click.argument("vkeys", nargs=-1, required=True)
@DIR
@pass_app
def trust(app: AppContext, vkeys: tuple[str, ...], directory: Path | None) -> None:
    """Cosign checkpoints signed by these log keys (`sgledger audit log-keys` at the partnership)."""
    opened = _open(app, directory)
    for text in vkeys:
        try:
            opened.trust(VerifierKey.parse(text))
        except (NoteError, WitnessError) as exc:
            raise UserError(str(exc)) from exc
        click.echo(f"trusting {text.split('+')[0]}")


@witness.command("show")
@DIR
@click.option("--json", "as_json", is_flag=True)
@pass_app
def show(app: AppContext, directory: Path | None, as_json: bool) -> None:
    """This witness's key and, per log, the latest size it cosigned."""
    opened = _open(app, directory)
    if as_json:
        print_json({"vkey": str(opened.vkey), "logs": opened.logs()})
        return
    click.echo(str(opened.vkey))
    for origin, log in sorted(opened.logs().items()):
        click.echo(f"{origin}: cosigned up to size {log['size']}")


@witness.command("cosign")
@click.argument("request", type=click.File("rb"), default="-")
@DIR
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the cosigned copy here."
)
@pass_app
def cosign(app: AppContext, request: BinaryIO, directory: Path | None, output: Path | None) -> None:
    """Check an add-checkpoint REQUEST (file or stdin: `old N`, proof lines, blank line, checkpoint)
    and print the checkpoint with this witness's cosignature added.

    Refusals exit 1 with the tlog-witness status and why: 404 unknown log, 403 bad signature,
    409 proof from another size (the message names the size to ask from), 422 inconsistent."""
    opened = _open(app, directory)
    body = request.read()
    try:
        line = opened.add_checkpoint(body)
    except WitnessRefusal as exc:
        click.echo(f"refused ({exc.status}): {exc}", err=True)
        raise SystemExit(1) from exc
    text = str(AddCheckpoint.parse(body).note.with_signature(line))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, "utf-8")
        click.echo(f"wrote {output}", err=True)


@witness.command("run")
@DIR
@click.option("--once", is_flag=True, help="Stop when no checkpoint arrived for a few seconds.")
@pass_app
def run(app: AppContext, directory: Path | None, once: bool) -> None:
    """Cosign checkpoints from <prefix>.checkpoints and send them back on <prefix>.cosignatures."""
    kafka = app.cluster("witness run needs the partnership's Kafka cluster (--bootstrap-servers)")
    stats = run_witness(kafka, _open(app, directory), stop_on_signals(), idle_exit_s=3.0 if once else None)
    for name in stats.cosigned:
        click.echo(f"cosigned {name}")
    for refusal in stats.refused:
        click.echo(f"refused {refusal}", err=True)
    if stats.refused:
        raise SystemExit(1)
