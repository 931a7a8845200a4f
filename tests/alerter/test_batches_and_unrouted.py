"""One email per lead per child per batch; exactly once per (change, recipient) however a replay
is cut; a change nobody is routed for goes to the fallback, is listed, and can be resent to a lead
routed later. Real SQLite files and a real loopback SMTP server."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.alerter.store import AlertStore, Record
from sgledger.cli.alerts import alerts
from sgledger.cli.context import AppContext, UserError
from sgledger.settings import Settings
from tests.alerter.conftest import SmtpServer
from tests.alerter.helpers import REQUIRED_TOML, config, encode, flag_change

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
POLICE = "police-lead@police.test"


def records(changes: list[dict[str, object]], start: int = 0) -> list[Record]:
    return [Record("flags", 0, start + n, encode(c)) for n, c in enumerate(changes)]


def mail_to(store: AlertStore, recipient: str) -> list[str]:
    return [m.message for m in store.mail() if m.recipient == recipient]


def test_changes_about_one_child_in_one_batch_are_one_email_per_lead(tmp_path: Path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    same_child = [flag_change(child="C-1", rule=f"rule-{n}") for n in range(3)]
    other_child = flag_change(child="C-2", rule="rule-0")
    created = store.apply_batch(records([*same_child, other_child]), config(), NOW)
    assert created == 2  # C-1: one message with three flags; C-2: its own
    messages = mail_to(store, POLICE)
    assert len(messages) == 2
    batch = next(m for m in messages if "3 gap flag changes - child C-1" in m)
    for change in same_child:
        assert str(change["flag"]["id"])[:8] in batch  # each flag's short id and link
        assert f"/flags/{str(change['flag']['id'])[:8]}" in batch


def test_exactly_once_per_change_and_recipient_however_the_replay_is_cut(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    changes = [flag_change(child="C-1", rule=f"rule-{n}") for n in range(4)]
    store = AlertStore(url)
    store.apply_batch(records(changes[:2]), config(), NOW)  # two polls: two messages
    store.apply_batch(records(changes[2:], start=2), config(), NOW)
    assert len(mail_to(store, POLICE)) == 2
    # a replay from offset 0 on a forgotten broker (new cluster id), cut differently: nothing new
    store.apply_batch(records(changes[:3]), config(), NOW, cluster="other")
    store.apply_batch(records(changes, start=0)[3:], config(), NOW, cluster="other")
    assert len(mail_to(store, POLICE)) == 2
    # a new change and a redelivered one together: only the new one is mailed, on its own
    fresh = flag_change(child="C-1", rule="rule-9")
    store.apply_batch([Record("flags", 0, 4, encode(changes[0])), Record("flags", 0, 5, encode(fresh))],
                      config(), NOW, cluster="other")  # fmt: skip
    latest = mail_to(store, POLICE)
    assert len(latest) == 3 and "gap flag changes" not in latest[-1] and "rule-9" in latest[-1]


def test_an_unrouted_change_goes_to_the_fallback_and_is_listed_then_resent_to_a_new_lead(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    context = AppContext(settings=Settings.resolve(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1"))
    context.ledger  # noqa: B018  (a deployment's schema first, as the services make it)
    store = AlertStore(context.settings.database_url)
    nobody = [flag_change(child="C-7", concerns=["gp/L85003"], rule=f"rule-{n}") for n in range(2)]
    routed = flag_change(child="C-8", concerns=["police/avon"])
    store.apply_batch(records([*nobody, routed]), config(), NOW)
    [fallback] = mail_to(store, "fallback@partnership.test")
    assert "2 gap flag changes - child C-7" in fallback
    assert not mail_to(store, "gp.lead@l85003.test")
    store.close()

    listed = CliRunner().invoke(alerts, ["pending", "--unrouted", "--json"], obj=context)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(r["change_id"] for r in rows) == sorted(str(c["change_id"]) for c in nobody)
    assert {tuple(r["concerns"]) for r in rows} == {("gp/L85003",)}

    routing = tmp_path / "partnership.toml"  # the practice's lead is added later
    routing.write_text(
        REQUIRED_TOML + f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
        '[agencies."gp/L85003"]\nleads = ["gp.lead@l85003.test"]\n'
    )
    offered = CliRunner().invoke(alerts, ["pending", "--unrouted", "--config", str(routing)], obj=context)
    assert "now routed to gp.lead@l85003.test" in offered.output
    assert "sgledger alerts resend --to gp.lead@l85003.test --since" in " ".join(offered.output.split())

    args = [
        "resend",
        "--to",
        "gp.lead@l85003.test",
        "--since",
        "2026-11-01T00:00:00Z",
        "--config",
        str(routing),
    ]
    sent = CliRunner().invoke(alerts, args, obj=context)
    assert sent.exit_code == 0, sent.output
    got = [r for r in smtp_server.received if r.recipients == ["gp.lead@l85003.test"]]
    assert len(got) == 1 and "2 gap flag changes - child C-7" in str(got[0].message["Subject"])
    again = CliRunner().invoke(alerts, args, obj=context)  # each change once per recipient
    assert "0 new message(s)" in again.output
    assert len([r for r in smtp_server.received if r.recipients == ["gp.lead@l85003.test"]]) == 1


def test_unrouted_options_misused_are_one_clear_line(tmp_path: Path) -> None:
    context = AppContext(settings=Settings.resolve(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1"))
    routing = tmp_path / "partnership.toml"
    routing.write_text(REQUIRED_TOML + '[smtp]\nhost = "127.0.0.1"\n')
    misused = CliRunner().invoke(alerts, ["pending", "--config", str(routing)], obj=context)
    assert isinstance(misused.exception, UserError) and "only used with --unrouted" in str(misused.exception)
    args = ["resend", "--to", "not an address", "--since", "2026-01-01T00:00:00Z", "--config", str(routing)]
    bad = CliRunner().invoke(alerts, args, obj=context)
    assert isinstance(bad.exception, UserError) and "not an email address" in str(bad.exception)


def test_the_unrouted_warning_names_the_change_not_the_child(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """README: logs never carry a child's id. The fallback warning did ("child C-7"); the change
    id finds it (`alerts pending --unrouted` lists the child to those who may see it)."""
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    change = flag_change(child="C-7", concerns=["gp/L85003"], rule="rule-1")
    with caplog.at_level(logging.WARNING, logger="consumers.alerter.store"):
        store.apply_batch(records([change]), config(), NOW)
    store.close()
    [warning] = [r.getMessage() for r in caplog.records if "no routed lead" in r.getMessage()]
    assert str(change["change_id"]) in warning and "C-7" not in warning
