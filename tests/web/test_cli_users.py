"""`sgledger users`: the password from stdin, one-line errors, disable ends sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledger.store.ledger import Ledger
from views.models import ChildRow
from web.accounts import Accounts


def users(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # six CLI processes: ~10 s on a quiet machine, a minute on a busy one
def test_add_list_disable(tmp_path: Path) -> None:
    added = users(
        tmp_path,
        "add",
        "Lead@GP.example",
        "--agency",
        "gp/L85001",
        "--role",
        "lead",
        stdin="a passphrase of some length\n",
    )
    assert added.returncode == 0 and added.stdout.strip() == "created lead@gp.example (lead, gp/L85001)"
    again = users(
        tmp_path,
        "add",
        "lead@gp.example",
        "--agency",
        "gp/L85001",
        "--role",
        "lead",
        stdin="a passphrase of some length\n",
    )
    assert again.returncode == 2 and again.stderr == "error: lead@gp.example already has an account\n"
    short = users(tmp_path, "add", "b@gp.example", "--role", "auditor", stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    accounts = Accounts(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    session = accounts.start_session(
        accounts.authenticate("lead@gp.example", "a passphrase of some length"), "x"
    )
    assert users(tmp_path, "disable", "lead@gp.example").returncode == 0
    assert accounts.session(session.token) is None
    accounts.close()
    listed = json.loads(users(tmp_path, "list", "--json").stdout)
    assert listed == [
        {
            "email": "lead@gp.example",
            "role": "lead",
            "agency": "gp/L85001",
            "disabled": True,
            "locked_until": None,
        }
    ]
    assert "password" not in users(tmp_path, "add", "--help").stdout.split("Options")[1]  # never an option
    # Accounts made first on a fresh database leave the ledger's own tables in place.
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}").read() as session:
        assert session.scalar(select(func.count()).select_from(ChildRow)) == 0
