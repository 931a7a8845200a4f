"""Escalation after working hours and the daily digest, with an injected clock and real SMTP."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.alerter.escalation import digest_due, escalate_due, working_hours_between
from consumers.alerter.sender import send_due
from consumers.alerter.store import AlertStore, Record
from tests.alerter.conftest import SmtpServer
from tests.alerter.helpers import SECRET_ADDRESS, SECRET_NAME, SECRET_NOTE, config, encode, flag_change

HIGH = "partnership-high@partnership.test"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_working_hours() -> None:
    # Friday 2026-11-20 15:00 UTC (GMT) to Monday 11:00: 2 h Friday + 2 h Monday
    assert working_hours_between(at("2026-11-20T15:00"), at("2026-11-23T11:00")) == 4.0
    assert working_hours_between(at("2026-11-21T10:00"), at("2026-11-22T16:00")) == 0.0  # weekend
    # 2026-12-25/28 are bank holidays: Thu 24th 16:00 -> Tue 29th 10:00 = 1 + 1
    assert working_hours_between(at("2026-12-24T16:00"), at("2026-12-29T10:00")) == 2.0


def changed_at(change: dict[str, object], when: str) -> dict[str, object]:
    change["changed_at"] = when
    return change


def test_escalation_once_and_not_after_ack(postgres_db: str, smtp_server: SmtpServer) -> None:
    cfg = config(smtp_server.port)
    store = AlertStore(postgres_db)
    high = changed_at(flag_change(rule="other", child="child-h", severity="high", concerns=["la/children"]),
                      "2026-11-20T15:00:00Z")  # fmt: skip
    acked = changed_at(flag_change(rule="other", child="child-k", severity="high", concerns=["la/children"]),
                       "2026-11-20T15:00:00Z")  # fmt: skip
    ack = dict(acked, change_id="ack-1", change="acknowledged", changed_at="2026-11-20T16:00:00Z")
    records = [Record("t", 0, i, encode(c)) for i, c in enumerate([high, acked, ack])]
    store.apply_batch(records, cfg, at("2026-11-20T16:00"))
    # 2 leads x (child-h's raise, and child-k's raise and acknowledgement in one message)
    assert send_due(store, cfg.smtp, None, at("2026-11-20T16:00")).sent == 4

    assert escalate_due(store, cfg, at("2026-11-23T10:59")) == 0  # 3 h 59 working hours
    assert escalate_due(store, cfg, at("2026-11-23T11:00")) == 1
    assert escalate_due(store, cfg, at("2026-11-24T11:00")) == 0  # once
    store.apply_batch(records, cfg, at("2026-11-24T11:00"))  # a replay changes nothing
    assert escalate_due(store, cfg, at("2026-11-24T12:00")) == 0
    assert send_due(store, cfg.smtp, None, at("2026-11-24T12:00")).sent == 1
    last = smtp_server.received[-1]
    assert last.recipients == [HIGH]
    assert last.message["Subject"].startswith("ESCALATION:") and "child-h" in last.message["Subject"]
    store.close()


def test_digest_at_each_recipients_london_time(postgres_db: str, smtp_server: SmtpServer) -> None:
    digests = {"la-lead@la.test": {"time": "08:00"}, "police-lead@police.test": {"time": "12:30"}}
    cfg = config(smtp_server.port, digests=digests)
    store = AlertStore(postgres_db)
    quiet = flag_change(rule="school-absence", child="child-q", concerns=["la/children"], severity="low")
    closed = flag_change(rule="other", child="child-c", concerns=["la/children"], severity="low")
    resolved = dict(closed, change_id="res-1", change="resolved", changed_at="2026-11-20T12:00:00Z")
    police = flag_change(rule="other", child="child-p", concerns=["police/avon"], severity="medium")
    gp = flag_change(rule="other", child="child-g", concerns=["gp/Y001"], severity="medium")  # no digest
    changes = [quiet, closed, resolved, police, gp]
    store.apply_batch(
        [Record("t", 0, i, encode(c)) for i, c in enumerate(changes)], cfg, at("2026-11-20T12:00")
    )
    send_due(store, cfg.smtp, None, at("2026-11-20T12:00"))
    assert "child-q" not in " ".join(r.message["Subject"] for r in smtp_server.received)  # quiet: digest only
    smtp_server.received.clear()

    # London is BST in summer: 08:00 London = 07:00 UTC; in November (GMT) = 08:00 UTC.
    assert digest_due(store, cfg, at("2026-11-21T07:59")) == 0
    assert digest_due(store, cfg, at("2026-11-21T08:00")) == 1  # la-lead's time; police-lead's is later
    assert digest_due(store, cfg, at("2026-11-21T09:00")) == 0  # once a day
    assert send_due(store, cfg.smtp, None, at("2026-11-21T09:00")).sent == 1
    [digest] = smtp_server.received
    assert digest.recipients == ["la-lead@la.test"]
    body = digest.data.decode()
    assert "child-q" in body and "child-c" not in body and "child-p" not in body  # only their open flags
    for secret in (SECRET_NAME, SECRET_ADDRESS, SECRET_NOTE):
        assert secret not in body
    assert digest_due(store, cfg, at("2026-11-21T12:30")) == 1
    send_due(store, cfg.smtp, None, at("2026-11-21T12:30"))
    assert smtp_server.received[-1].recipients == ["police-lead@police.test"]
    assert "child-p" in smtp_server.received[-1].data.decode()
    assert len(smtp_server.received) == 2  # the GP leads have no digest: none sent to them
    assert digest_due(store, cfg, at("2026-11-22T08:00")) == 1  # next day
    assert digest_due(store, config(smtp_server.port), at("2026-11-23T09:00")) == 0  # no digests configured
    store.close()


def test_positions_from_a_forgotten_broker_are_not_trusted(postgres_db: str) -> None:
    """The embedded broker restarts empty (new cluster id) and the projector re-sends its outbox
    from offset 0: new changes there are still mailed, re-sent old ones are not doubled."""
    cfg = config()
    store = AlertStore(postgres_db)
    now = at("2026-11-20T12:00")
    old = [flag_change(rule="other", concerns=["la/children"], child=f"child-{n}") for n in range(3)]
    store.apply_batch([Record("t", 0, i, encode(c)) for i, c in enumerate(old)], cfg, now, cluster="A")
    assert store.positions("t", "A") == {0: 3}
    assert store.positions("t", "B") == {}
    new = flag_change(rule="other", concerns=["la/children"], child="child-new")
    created = store.apply_batch([Record("t", 0, 0, encode(new)), Record("t", 0, 1, encode(old[0]))],
                                cfg, now, cluster="B")  # fmt: skip
    assert created == 1
    assert store.positions("t", "B") == {0: 2}
    assert len(store.mail()) == 4
    store.close()
