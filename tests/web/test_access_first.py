"""A page that shows a child is shown only once its read is on record: the access record now
commits while the page reads (``WebServices.recording_access``), so a failed commit must still
keep the page from being shown. The real application under uvicorn on a copy of the demo, its
outbox locked by another connection (what a stuck writer or a full disk looks like to it)."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from consumers.alerter.sink import free_port
from ledger.keystore import Keystore
from producers.outbox import Outbox
from producers.service import ServiceProducer
from sgledger.settings import Settings
from tests.web.conftest import CHILD, PASSWORD, POLICE, signin_csrf
from web.app import create_app
from web.services import WebConfig, WebServices


def test_a_child_page_is_not_shown_when_its_read_cannot_be_recorded(demo_state: Path, tmp_path: Path) -> None:
    shutil.copytree(demo_state / "demo", tmp_path / "demo")
    settings = Settings.resolve(tmp_path / "demo")
    services = WebServices.open(settings, WebConfig(), deliver=False)
    impatient = Outbox(settings.outbox_url, busy_timeout_s=0.3)
    services = dataclasses.replace(services, producer=ServiceProducer(Keystore(settings.keys_dir), impatient))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        signed = client.post(
            "/sign-in", data={"email": POLICE, "password": PASSWORD, "csrf_token": signin_csrf(client)}
        )
        assert signed.status_code == 303
        shown = client.get(f"/children/{CHILD}")
        assert shown.status_code == 200 and "INC-CH-1" in shown.text
        locked = sqlite3.connect(settings.data_dir / "outbox.sqlite", isolation_level=None)
        locked.execute("BEGIN EXCLUSIVE")
        try:
            refused = client.get(f"/children/{CHILD}")
        finally:
            locked.execute("ROLLBACK")
            locked.close()
        assert refused.status_code == 500
        assert "INC-CH-1" not in refused.text and "Sorry, there is a problem" in refused.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
