"""A click group that imports a command's module only when that command runs.

Importing every command module (SQLAlchemy, eventsourcing, kafka-python, cryptography, rich,
the alerter, the auditor) took over a second before `sgledger --help` could print anything.
Here each command is named by where it lives; `--help` lists the commands with the first
sentence of their docstrings read from the source files (``ast``, no import), so the listing
has one source of truth and costs milliseconds. tests/test_cli_lazy.py checks that every lazy
entry names a real command with the same short help.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import click


class LazyGroup(click.Group):
    """``commands`` maps a command name to ``"package.module:attribute"``."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands or name not in self.lazy:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # A stand-in carrying the source's help: click shortens it as for the real one.
                stand_in = click.Command(name, help=source_help(self.lazy[name]))
                rows.append((name, stand_in.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@cache
def source_help(target: str) -> str:
    """The help text of a command as written in its module's source: the decorator's ``help=``
    if given, else the function's docstring."""
    module, attribute = target.split(":")
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    tree = ast.parse(Path(spec.origin).read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            for decorator in node.decorator_list:
                if _is_command_decorator(decorator):
                    assert isinstance(decorator, ast.Call)
                    for keyword in decorator.keywords:
                        if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                            return str(keyword.value.value)
            return ast.get_docstring(node) or ""
    raise LookupError(f"no function {attribute} in {module}")


def _is_command_decorator(decorator: ast.expr) -> bool:
    """``@click.command(...)``, ``@click.group(...)`` or ``@some_group.command(...)``."""
    if not isinstance(decorator, ast.Call):
        return False
    function = decorator.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in ("command", "group")
