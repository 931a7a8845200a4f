"""Config validation, routing and message content (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.alerter.config import ConfigError, load_config, parse_config
from consumers.alerter.message import build_message, message_id
from consumers.alerter.routing import route
from tests.alerter.helpers import SECRET_ADDRESS, SECRET_NAME, SECRET_NOTE, config, flag_change

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads() -> None:
    cfg = load_config(ROOT / "deploy" / "partnership.example.toml")
    assert cfg.smtp.password_env == "SGLEDGER_SMTP_PASSWORD"
    assert cfg.agency_leads


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({}, "smtp"),
        ({"smtp": {"port": 25}}, "smtp.host"),
        ({"smtp": {"host": "h", "port": "x"}}, "smtp.port"),
        ({"smtp": {"host": "h", "username": "u"}}, "smtp.password_env"),
        ({"smtp": {"host": "h", "password_env": "hunter2 !"}}, "smtp.password_env"),
        ({"smtp": {"host": "h"}, "agencies": {"a": {"leads": ["not-an-address"]}}}, 'agencies."a".leads'),
        ({"smtp": {"host": "h"}, "partnership": {"leads_by_severity": {"urgent": []}}},
         "partnership.leads_by_severity.urgent"),
        ({"smtp": {"host": "h"}, "digest_time": "8am"}, "digest_time"),
        ({"smtp": {"host": "h"}, "view_link": "no placeholder"}, "view_link"),
        ({"smtp": {"host": "h"}, "surprise": 1}, "surprise"),
    ],
)  # fmt: skip
def test_config_errors_name_file_and_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "p.toml")
    assert str(err.value).startswith(f"p.toml: {key}:")


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[smtp\n")
    with pytest.raises(ConfigError, match=r"x\.toml: not valid TOML"):
        load_config(path)


def test_routing_agency_severity_rule_and_quiet() -> None:
    cfg = config()
    r = route(flag_change(concerns=["police/avon", "gp/Y001"], severity="high"), cfg)
    assert r.immediate
    assert r.recipients == (
        "gp-deputy@nhs.test", "gp-lead@nhs.test", "gp-rule@partnership.test",
        "partnership-high@partnership.test", "police-lead@police.test",
    )  # fmt: skip
    low = route(flag_change(rule="other", concerns=["la/children"], severity="low"), cfg)
    assert low.recipients == ("la-lead@la.test",)
    assert not route(flag_change(rule="school-absence"), cfg).immediate
    assert route(flag_change(rule="other", concerns=["unknown/agency"]), cfg).recipients == ()


def test_message_minimal_and_stable() -> None:
    cfg = config()
    change = flag_change()
    msg = build_message(change, "police-lead@police.test", cfg)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Message-ID"] == message_id(change["change_id"], "police-lead@police.test")
    assert msg["Message-ID"] == build_message(change, "police-lead@police.test", cfg)["Message-ID"]
    assert msg["Message-ID"] != build_message(change, "gp-lead@nhs.test", cfg)["Message-ID"]
    whole = msg.as_string()
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for expected in [
        "child-7f3a",
        "Title of gp-not-notified",
        "medium",
        "2026-11-21T17:00:00Z",
        "Notify the GP practice",
        "Review of Child X (2021), para 4.2",
        "police/avon, 2026-11-19, domestic-abuse-incident",
        "sgledger child show child-7f3a",
    ]:
        assert expected in text
    for secret in [SECRET_NAME, SECRET_ADDRESS, SECRET_NOTE, "explained", "ev-1"]:
        assert secret not in whole
