"""The alerter against the real broker, a real SMTP server and real PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from consumers.alerter.alerter import Alerter
from consumers.alerter.config import PartnershipConfig
from consumers.alerter.store import AlertStore
from tests.alerter.conftest import SmtpServer
from tests.alerter.helpers import SECRET_ADDRESS, SECRET_NAME, SECRET_NOTE, config, flag_change, publish
from transport.kafka import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def drain(alerter: Alerter, expected_rows: int, timeout: float = 20.0) -> None:
    """Poll until the store holds ``expected_rows`` mail rows and one more empty poll passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerter.consume_once(300)
        if len(alerter.store.mail()) >= expected_rows:
            alerter.consume_once(300)
            return
    raise AssertionError(f"expected {expected_rows} mail rows, have {len(alerter.store.mail())}")


def make(settings: KafkaSettings, cfg: PartnershipConfig, db: str, clock: Clock, group: str) -> Alerter:
    return Alerter(settings, cfg, db, clock=clock, group_id=group, backoff_base=timedelta(seconds=10))


@pytest.fixture
def group(kafka_settings: KafkaSettings) -> str:
    return f"alerter-{kafka_settings.topic_prefix}"


def test_routes_and_sends_once_across_restart_and_replay(
    kafka_settings: KafkaSettings, postgres_db: str, smtp_server: SmtpServer, group: str
) -> None:
    cfg = config(smtp_server.port, digests={"la-lead@la.test": {"time": "08:00"}})
    clock = Clock()
    a = flag_change(child="child-a", concerns=["police/avon"], severity="high")
    b = flag_change(child="child-b", rule="other", concerns=["gp/Y001"], severity="low")
    quiet = flag_change(child="child-c", rule="school-absence", concerns=["la/children"])
    publish(kafka_settings, [a, b, quiet])

    alerter = make(kafka_settings, cfg, postgres_db, clock, group)
    drain(alerter, 5)
    assert alerter.send_once().sent == 5
    alerter.close()
    got = smtp_server.by_recipient()
    assert sorted(got) == sorted([
        "police-lead@police.test", "gp-rule@partnership.test", "partnership-high@partnership.test",
        "gp-lead@nhs.test", "gp-deputy@nhs.test",
    ])  # fmt: skip
    assert "la-lead@la.test" not in got  # a quiet rule, and la-lead has a digest: only there

    # Restart, then a replay of the whole topic (the same records republished from offset 0 by a
    # fresh consumer group with no stored Kafka offsets): nothing new is mailed.
    c = flag_change(child="child-d", rule="other", concerns=["la/children"])
    publish(kafka_settings, [c, a, b])  # a and b redelivered (same change_id)
    restarted = make(kafka_settings, cfg, postgres_db, clock, group)
    drain(restarted, 6)
    restarted.send_once()
    restarted.close()
    replay = make(kafka_settings, cfg, postgres_db, clock, group + "-replay")
    with AlertStore(postgres_db).engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alert_positions")  # forget positions: full replay from 0
    for _ in range(6):
        replay.consume_once(500)
    replay.send_once()
    replay.close()

    counts = {r: len(v) for r, v in smtp_server.by_recipient().items()}
    assert counts == {
        "police-lead@police.test": 1, "gp-rule@partnership.test": 1, "partnership-high@partnership.test": 1,
        "gp-lead@nhs.test": 1, "gp-deputy@nhs.test": 1, "la-lead@la.test": 1,
    }  # fmt: skip
    ids = [r.message["Message-ID"] for r in smtp_server.received]
    assert len(set(ids)) == len(ids)
    for r in smtp_server.received:
        raw = r.data.decode()
        for secret in (SECRET_NAME, SECRET_ADDRESS, SECRET_NOTE):
            assert secret not in raw


def test_smtp_down_then_up_and_permanent_failure(
    kafka_settings: KafkaSettings, postgres_db: str, smtp_server: SmtpServer, group: str
) -> None:
    cfg = config(smtp_server.port)
    clock = Clock()
    smtp_server.handler.reject.add("gp-deputy@nhs.test")
    publish(kafka_settings, [flag_change(child="child-a", rule="other", concerns=["gp/Y001"])])
    alerter = make(kafka_settings, cfg, postgres_db, clock, group)
    drain(alerter, 2)

    smtp_server.stop()
    report = alerter.send_once()
    assert (report.sent, report.deferred) == (0, 2)
    pending = alerter.store.mail("pending")
    assert len(pending) == 2 and all("unavailable" in (m.last_error or "") for m in pending)
    smtp_server.start()
    assert alerter.send_once().sent == 0  # backing off: not yet due
    clock.now += timedelta(seconds=11)

    smtp_server.handler.tempfail = True  # 451: stays pending, backs off further
    report = alerter.send_once()
    assert report.deferred == 2 and not smtp_server.received
    assert all((m.last_error or "").startswith("451") for m in alerter.store.mail("pending"))
    smtp_server.handler.tempfail = False
    clock.now += timedelta(minutes=5)

    report = alerter.send_once()
    assert (report.sent, report.failed) == (1, 1)
    assert [r.recipients for r in smtp_server.received] == [["gp-lead@nhs.test"]]
    [failed] = alerter.store.mail("failed")
    assert failed.recipient == "gp-deputy@nhs.test"
    assert (failed.last_error or "").startswith("550")
    clock.now += timedelta(hours=2)
    assert alerter.send_once().sent == 0  # nothing doubled
    alerter.close()
    assert len(smtp_server.received) == 1


def test_run_loop_in_a_thread_catches_up_and_stops(
    kafka_settings: KafkaSettings, postgres_db: str, smtp_server: SmtpServer, group: str
) -> None:
    """Changes published while the alerter is down are mailed when it starts (it catches up)."""
    import threading

    cfg = config(smtp_server.port, digests={"la-lead@la.test": {"time": "08:00"}})
    publish(kafka_settings, [flag_change(rule="other", child=f"child-{i}", concerns=["la/children"])
                             for i in range(3)])  # fmt: skip
    alerter = make(kafka_settings, cfg, postgres_db, Clock(), group)
    stop = threading.Event()
    thread = threading.Thread(target=alerter.run, args=(stop, 300))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(smtp_server.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
        alerter.close()
    assert not thread.is_alive()
    subjects = [r.message["Subject"] for r in smtp_server.received]
    flags = sorted(s.split()[-1] for s in subjects if not s.startswith("Daily digest"))
    assert flags == ["child-0", "child-1", "child-2"]
    # the clock says 10:00 London, past la-lead's digest time 08:00: today's digest went out, at most once
    assert len([s for s in subjects if s.startswith("Daily digest 2026-11-23")]) == 1


def test_two_alerters_in_one_group_mail_each_change_once(
    kafka_settings: KafkaSettings, postgres_db: str, smtp_server: SmtpServer, group: str
) -> None:
    """A rebalance (second member joins mid-stream) neither loses nor doubles mail."""
    import threading

    cfg = config(smtp_server.port)
    first = [flag_change(rule="other", child=f"child-{i}", concerns=["la/children"]) for i in range(6)]
    second = [flag_change(rule="other", child=f"child-{i}", concerns=["la/children"]) for i in range(6, 12)]
    publish(kafka_settings, first)
    stop = threading.Event()
    members = [make(kafka_settings, cfg, postgres_db, Clock(), group) for _ in range(2)]
    threads = [threading.Thread(target=m.run, args=(stop, 200)) for m in members]
    threads[0].start()
    time.sleep(1.5)
    threads[1].start()
    publish(kafka_settings, second)
    try:
        deadline = time.monotonic() + 30
        while len(smtp_server.received) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # anything doubled would arrive now
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        for m in members:
            m.close()
    children = sorted(r.message["Subject"].split()[-1] for r in smtp_server.received)
    assert children == sorted(f"child-{i}" for i in range(12))
