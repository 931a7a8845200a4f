"""`sgledger serve` on PostgreSQL: accounts, sessions, views and the audited reads all in one
PostgreSQL database, the Child Charlie review published into it by the scenario runner."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from consumers.alerter.sink import free_port
from ledger.store.ledger import Ledger
from sgledger.scenario_runner import run_scenario
from sgledger.scenariofile import load_scenario
from sgledger.settings import Settings
from tests.web.conftest import CHILD, DSL, PASSWORD, csrf_of, signin_csrf
from views.access_log import list_access
from web.accounts import Accounts

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path, postgres_db: str) -> Iterator[str]:
    with resources.as_file(resources.files("sgledger") / "scenarios" / "cspr-child-charlie.json") as path:
        run_scenario(load_scenario(path), Settings.resolve(tmp_path, database_url=postgres_db))
    (tmp_path / "keys" / "root.key").unlink()
    accounts = Accounts(postgres_db)
    accounts.add_user(DSL, None, "designated-lead", PASSWORD)
    accounts.close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path), "--database-url", postgres_db,
         "serve", "--port", str(port)],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/sign-in", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_workspace_reads_and_audits_on_postgresql(served: str, postgres_db: str) -> None:
    client = httpx.Client(base_url=served, follow_redirects=False, timeout=30)
    signed = client.post(
        "/sign-in", data={"email": DSL, "password": PASSWORD, "csrf_token": signin_csrf(client)}
    )
    assert signed.status_code == 303
    page = client.get(f"/children/{CHILD}")
    assert page.status_code == 200 and "Police recorded a domestic-abuse incident INC-CH-1" in page.text
    flags = client.get("/flags")
    first = flags.text.split('href="/flags/')[1][:8]
    acked = client.post(f"/flags/{first}/acknowledge", data={"csrf_token": csrf_of(flags.text)})
    assert acked.headers["location"] == f"/flags/{first}?done=acknowledged"
    deadline = time.monotonic() + 30
    while not any(a["who"] == f"local:{DSL}" for a in list_access(Ledger(postgres_db), CHILD)):
        assert time.monotonic() < deadline, "the read never reached the ledger"
        time.sleep(0.3)
