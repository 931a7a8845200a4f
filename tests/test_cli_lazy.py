"""`sgledger --help` without loading the heavy libraries, and a listing that stays true.

Timing is the benchmark's business (bench/RESULTS.md); what a test can hold steady is the cause:
no command module, database, Kafka or crypto library is imported to print the top-level help.
"""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from sgledger.cli import COMMANDS, cli
from sgledger.cli.lazy import source_help

HEAVY = ("sqlalchemy", "eventsourcing", "kafka", "cryptography", "jsonschema", "sgledger.cli.audit")


def test_help_imports_no_command_module_nor_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sgledger", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    loaded = sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY)
    assert loaded == [], loaded


def test_every_lazy_command_is_the_command_it_names_with_the_same_short_help() -> None:
    context = click.Context(cli)
    for name, target in COMMANDS.items():
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command), target
        assert command.name == name
        stand_in = click.Command(name, help=source_help(target))
        assert stand_in.get_short_help_str(60) == command.get_short_help_str(60), name


def test_a_subcommand_still_runs_through_the_lazy_group() -> None:
    result = CliRunner().invoke(cli, ["flags", "--help"])
    assert result.exit_code == 0, result.output
    assert "explain" in result.output
    unknown = CliRunner().invoke(cli, ["no-such-command"])
    assert unknown.exit_code == 2 and "No such command" in unknown.output
