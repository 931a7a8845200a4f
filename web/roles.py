"""The web workspace's roles, apart from the accounts code so the command line can name them
without importing it (argon2, SQLAlchemy models) on every `sgledger` command."""

from __future__ import annotations

from typing import Literal

WebRole = Literal["lead", "designated-lead", "auditor"]
ROLES: tuple[WebRole, ...] = ("lead", "designated-lead", "auditor")
