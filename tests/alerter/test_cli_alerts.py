"""`sgledger alerts test-send|pending` (the group is invoked directly; the lead registers it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from consumers.alerter.store import AlertStore, Record
from sgledger.cli.alerts import alerts
from sgledger.cli.context import AppContext, UserError
from sgledger.settings import Settings
from tests.alerter.conftest import SmtpServer
from tests.alerter.helpers import config, encode, flag_change


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "partnership.toml"
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom = "alerts@partnership.test"\n'
        '[agencies."police/avon"]\nleads = ["police-lead@police.test"]\n'
    )
    return path


def app(tmp_path: Path) -> AppContext:
    return AppContext(settings=Settings.resolve(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1"))


def test_test_send_delivers_a_sample(tmp_path: Path, smtp_server: SmtpServer) -> None:
    path = write_config(tmp_path, smtp_server.port)
    args = ["test-send", "someone@x.test", "--config", str(path)]
    result = CliRunner().invoke(alerts, args, obj=app(tmp_path))
    assert result.exit_code == 0, result.output
    [got] = smtp_server.received
    assert got.recipients == ["someone@x.test"]
    assert got.message.get_content_type() == "multipart/alternative"


def test_test_send_reports_refusal_and_bad_config(tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.handler.reject.add("nobody@x.test")
    path = write_config(tmp_path, smtp_server.port)
    args = ["test-send", "nobody@x.test", "--config", str(path)]
    result = CliRunner().invoke(alerts, args, obj=app(tmp_path))
    assert isinstance(result.exception, UserError) and "550" in str(result.exception)
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nhost = "h"\nusername = "u"\n')
    result = CliRunner().invoke(alerts, ["test-send", "a@x.test", "--config", str(bad)], obj=app(tmp_path))
    assert isinstance(result.exception, UserError) and "smtp.password_env" in str(result.exception)


def test_pending_lists_waiting_mail(tmp_path: Path) -> None:
    context = app(tmp_path)
    store = AlertStore(context.settings.database_url)
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    store.apply_batch([Record("t", 0, 0, encode(flag_change()))], config(), now)
    store.close()
    result = CliRunner().invoke(alerts, ["pending", "--json"], obj=context)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["recipient"], r["status"]) for r in rows] == [
        ("gp-rule@partnership.test", "pending"), ("police-lead@police.test", "pending"),
    ]  # fmt: skip
    text = CliRunner().invoke(alerts, ["pending"], obj=context)
    shown = " ".join(text.output.split())  # the table wraps with the terminal's width
    assert "police-lead@police.test" in shown and "not yet attempted" in shown
