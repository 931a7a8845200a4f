"""`sgledger alerts run|test-send|pending`: `run` as a real process against the broker and SMTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text

from consumers.alerter.store import AlertStore, Record
from sgledger.cli.alerts import alerts
from sgledger.cli.context import AppContext, UserError
from sgledger.settings import Settings
from tests.alerter.conftest import SmtpServer
from tests.alerter.helpers import REQUIRED_TOML, config, encode, flag_change, publish
from tests.conftest import allow_connections
from transport.kafka import KafkaSettings


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "partnership.toml"
    path.write_text(
        REQUIRED_TOML + f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom = "alerts@partnership.test"\n'
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
    context.ledger  # noqa: B018  (a deployment's schema first, as the services make it)
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
    shown = " ".join(text.output.split())  # long lines wrap with the terminal's width
    assert "pending police-lead@police.test next 2026-11-23T10:00:00+00:00 attempts 0" in shown
    assert "(not yet attempted)" in shown


def run_alerter(
    tmp_path: Path, settings: KafkaSettings, config_path: Path, database_url: str | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SGLEDGER_KAFKA_PARTITIONS": str(settings.partitions),
        "SGLEDGER_KAFKA_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "SGLEDGER_KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
    }
    database = ["--database-url", database_url] if database_url else []
    args = [
        "--data-dir", str(tmp_path), *database, "--bootstrap-servers", settings.bootstrap_servers,
        "--topic-prefix", settings.topic_prefix, "alerts", "run", "--config", str(config_path),
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "sgledger", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(smtp: SmtpServer, count: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.received) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"{len(smtp.received)}/{count} received; alerter: {err[-2000:]}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.mark.kafka
def test_alerts_run_mails_each_change_once_across_a_restart(
    tmp_path: Path, kafka_settings: KafkaSettings, smtp_server: SmtpServer
) -> None:
    path = write_config(tmp_path, smtp_server.port)
    # different children: changes about one child that arrive together would share one message
    first = flag_change(concerns=["police/avon"], child="child-1")
    second = flag_change(concerns=["police/avon"], child="child-2")
    publish(kafka_settings, [first, second])
    proc = run_alerter(tmp_path, kafka_settings, path)
    wait_for(smtp_server, 2, proc)
    log = stop(proc)
    assert "mail: 2 sent, 0 deferred, 0 failed" in log

    third = flag_change(concerns=["police/avon"], child="child-3")
    publish(kafka_settings, [third, second])  # a new change and a redelivered one
    proc = run_alerter(tmp_path, kafka_settings, path)
    wait_for(smtp_server, 3, proc)
    time.sleep(2)  # room for a duplicate to arrive, were one to be sent
    stop(proc)
    ids = [r.message["Message-ID"] for r in smtp_server.received]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert {r.recipients[0] for r in smtp_server.received} == {"police-lead@police.test"}


def test_alerts_run_on_the_embedded_default_explains_what_it_needs(tmp_path: Path) -> None:
    path = write_config(tmp_path, 25)
    embedded = AppContext(settings=Settings.resolve(data_dir=tmp_path))
    result = CliRunner().invoke(alerts, ["run", "--config", str(path)], obj=embedded)
    assert isinstance(result.exception, UserError)
    assert "--bootstrap-servers" in str(result.exception) and "sgledger demo" in str(result.exception)


@pytest.mark.kafka
@pytest.mark.postgres
def test_alerts_run_waits_out_a_database_outage_and_mails_what_arrived_meanwhile(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    smtp_server: SmtpServer,
    postgres_server: str,
    postgres_db: str,
) -> None:
    """The alerter exited on the first database error (`error: OperationalError ...`), leaving
    flag changes unmailed until someone restarted it; the projector beside it waits and resumes."""
    path = write_config(tmp_path, smtp_server.port)
    publish(kafka_settings, [flag_change(concerns=["police/avon"], child="child-1")])
    proc = run_alerter(tmp_path, kafka_settings, path, postgres_db)
    try:
        wait_for(smtp_server, 1, proc)
        database = make_url(postgres_db).database
        assert database is not None
        allow_connections(postgres_server, database, False)
        publish(kafka_settings, [flag_change(concerns=["police/avon"], child="child-2")])
        time.sleep(5)  # several polls and sends fail meanwhile
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        allow_connections(postgres_server, database, True)
        wait_for(smtp_server, 2, proc)
        time.sleep(2)  # room for a duplicate to arrive, were one to be sent
    finally:
        allow_connections(postgres_server, make_url(postgres_db).database or "", True)
        log = stop(proc) if proc.poll() is None else proc.communicate()[1]
    assert len({r.message["Message-ID"] for r in smtp_server.received}) == len(smtp_server.received) == 2
    assert "Traceback" not in log


@pytest.mark.postgres
def test_alert_commands_first_on_a_fresh_database_leave_it_usable_and_refuse_an_old_one(
    tmp_path: Path, postgres_db: str
) -> None:
    """The alerter first on an empty database created its tables alone: the ledger then took the
    database for an unversioned 0.1.0 one, every service refused it and `sgledger db upgrade`
    failed on tables that were never there. And on a database an older release made, the
    alerter ran where every other service refuses."""

    def sgledger(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "sgledger",
            "--data-dir",
            str(tmp_path),
            "--database-url",
            postgres_db,
        ]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)

    pending = sgledger("alerts", "pending")
    assert pending.returncode == 0, pending.stderr
    current = sgledger("db", "current")
    assert current.returncode == 0 and current.stdout.split()[1] == current.stdout.split()[-1], current.stdout
    engine = create_engine(postgres_db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
    engine.dispose()
    refused = sgledger("alerts", "pending")
    assert refused.returncode != 0
    assert "schema is at revision 0008" in refused.stderr and "sgledger db upgrade" in refused.stderr
