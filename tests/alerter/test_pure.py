"""Config validation, routing and message content (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.alerter.config import ConfigError, load_config, parse_config
from consumers.alerter.message import build_message, message_id
from consumers.alerter.routing import route
from tests.alerter.helpers import (
    REQUIRED,
    REQUIRED_TOML,
    SECRET_ADDRESS,
    SECRET_NAME,
    SECRET_NOTE,
    config,
    flag_change,
)
from tests.alerter.test_tls_login import LOCAL_NAMES, self_signed

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
        ({"smtp": {"host": "h"}, "digests": {"a@x.test": {"time": "8am"}}}, 'digests."a@x.test".time'),
        ({"smtp": {"host": "h"}, "digests": {"a@x.test": {}}}, 'digests."a@x.test".time'),
        ({"smtp": {"host": "h"}, "digests": {"a@x.test": {"time": "08:00", "low_severity": "never"}}},
         'digests."a@x.test".low_severity'),
        ({"smtp": {"host": "h"}, "digests": {"lead": {"time": "08:00"}}}, 'digests."lead"'),
        ({"smtp": {"host": "h"}, "view_link": "sgledger child show {child}"}, "view_link"),
        ({"smtp": {"host": "h"}, "partnership": {"fallback": "f@x.test"}}, "web_base_url"),
        ({"smtp": {"host": "h"}, "web_base_url": "sgledger.example"}, "web_base_url"),
        ({"smtp": {"host": "h"}, "web_base_url": "https://x.example/?q=1"}, "web_base_url"),
        ({"smtp": {"host": "h"}, "web_base_url": "https://x.example"}, "partnership.fallback"),
        ({"smtp": {"host": "h"}, "web_base_url": "https://x.example", "partnership": {"fallback": "nobody"}},
         "partnership.fallback"),
        ({"smtp": {"host": "h"}, "surprise": 1}, "surprise"),
        ({"smtp": {"host": "smtp.example", "username": "u", "password_env": "P"}}, "smtp.username"),
        ({"smtp": {"host": "10.0.0.5", "username": "u", "password_env": "P", "starttls": False}},
         "smtp.username"),
        ({"smtp": {"host": "h", "starttls": True, "ca_file": ""}}, "smtp.ca_file"),
        ({"smtp": {"host": "h", "starttls": True, "ca_file": 7}}, "smtp.ca_file"),
        ({"smtp": {"host": "h", "starttls": True, "ca_file": "/nonexistent/ca.pem"}}, "smtp.ca_file"),
        ({"smtp": {"host": "h", "ca_file": "/nonexistent/ca.pem"}}, "smtp.ca_file"),
    ],
)  # fmt: skip
def test_config_errors_name_file_and_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "p.toml")
    assert str(err.value).startswith(f"p.toml: {key}:")


def test_login_without_starttls_refused_as_clear_text() -> None:
    with pytest.raises(ConfigError, match="clear text"):
        parse_config(
            {**REQUIRED, "smtp": {"host": "smtp.example", "username": "u", "password_env": "P"}}, "p.toml"
        )
    starttls = parse_config(
        {**REQUIRED, "smtp": {"host": "smtp.example", "starttls": True, "username": "u", "password_env": "P"}}
    )
    assert starttls.smtp.username == "u"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LocalHost"])
def test_login_without_starttls_allowed_on_loopback(host: str) -> None:
    cfg = parse_config({**REQUIRED, "smtp": {"host": host, "username": "u", "password_env": "P"}})
    assert cfg.smtp.username == "u" and not cfg.smtp.starttls


def test_ca_file_without_starttls_refused(tmp_path: Path) -> None:
    ca = self_signed(tmp_path, LOCAL_NAMES).cert
    with pytest.raises(ConfigError, match=r"p\.toml: smtp\.ca_file: only used with smtp\.starttls = true"):
        parse_config({**REQUIRED, "smtp": {"host": "h", "ca_file": str(ca)}}, "p.toml")


def test_ca_file_missing_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(REQUIRED_TOML + '[smtp]\nhost = "h"\nstarttls = true\nca_file = "private-ca.pem"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: smtp.ca_file:")
    assert str(tmp_path / "private-ca.pem") in message and "no such file" in message


def test_ca_file_not_pem_refused(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"smtp\.ca_file: .*not a readable PEM CA bundle"):
        parse_config({**REQUIRED, "smtp": {"host": "h", "starttls": True, "ca_file": str(junk)}}, "p.toml")
    with pytest.raises(ConfigError, match=r"smtp\.ca_file: .*no such file"):  # a directory
        parse_config(
            {**REQUIRED, "smtp": {"host": "h", "starttls": True, "ca_file": str(tmp_path)}}, "p.toml"
        )


def test_ca_file_relative_to_the_routing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative ca_file is looked up beside the routing file, not in the working directory, so
    the service finds it whatever directory it is started from."""
    deploy = tmp_path / "deploy"
    ca = self_signed(deploy / "tls", LOCAL_NAMES).cert
    path = deploy / "routing.toml"
    path.write_text(REQUIRED_TOML + '[smtp]\nhost = "relay"\nstarttls = true\nca_file = "tls/relay.pem"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg.smtp.ca_file == str(ca.resolve())
    assert parse_config({**REQUIRED, "smtp": {"host": "h"}}).smtp.ca_file is None


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[smtp\n")
    with pytest.raises(ConfigError, match=r"x\.toml: not valid TOML"):
        load_config(path)


def test_routing_agency_severity_rule_and_quiet() -> None:
    cfg = config()
    r = route(flag_change(concerns=["police/avon", "gp/Y001"], severity="high"), cfg)
    assert r.recipients == r.immediate == (
        "gp-deputy@nhs.test", "gp-lead@nhs.test", "gp-rule@partnership.test",
        "partnership-high@partnership.test", "police-lead@police.test",
    )  # fmt: skip
    low = route(flag_change(rule="other", concerns=["la/children"], severity="low"), cfg)
    assert low.recipients == ("la-lead@la.test",)
    # Nobody has a digest here, so a quiet rule is still mailed at once: never routed and lost.
    assert route(flag_change(rule="school-absence"), cfg).immediate == ("police-lead@police.test",)
    assert route(flag_change(rule="other", concerns=["unknown/agency"]), cfg).recipients == ()


def test_digest_recipients_get_quiet_rules_and_chosen_low_severities_only_in_the_digest() -> None:
    cfg = config(digests={
        "la-lead@la.test": {"time": "08:00", "low_severity": "digest-only"},
        "police-lead@police.test": {"time": "12:30"},  # low severities also at once (the default)
    })  # fmt: skip
    quiet = route(flag_change(rule="school-absence", concerns=["la/children", "police/avon", "gp/Y001"]), cfg)
    assert quiet.recipients == ("gp-deputy@nhs.test", "gp-lead@nhs.test", "la-lead@la.test",
                                "police-lead@police.test")  # fmt: skip
    assert quiet.immediate == ("gp-deputy@nhs.test", "gp-lead@nhs.test")  # they have no digest
    low = route(flag_change(rule="other", concerns=["la/children", "police/avon"], severity="low"), cfg)
    assert low.recipients == ("la-lead@la.test", "police-lead@police.test")
    assert low.immediate == ("police-lead@police.test",)
    medium = route(flag_change(rule="other", concerns=["la/children"], severity="medium"), cfg)
    assert medium.immediate == ("la-lead@la.test",)


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
    short = change["flag"]["id"][:8]
    for expected in [
        "child-7f3a",
        f"Flag: {short}",
        "Title of gp-not-notified",
        "medium",
        "Due: Sat 21 Nov 2026 17:00 London",
        "Which: INC-7; concerns police/avon",
        "Notify the GP practice",
        "Review of Child X (2021), para 4.2",
        "police/avon, 2026-11-19, domestic-abuse-incident INC-7",
        f"https://sgledger.partnership.test/flags/{short}",
    ]:
        assert expected in text
    html_part = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f"<a href='https://sgledger.partnership.test/flags/{short}'>" in html_part
    assert "17:00:00" not in whole  # no seconds, let alone microseconds
    for secret in [SECRET_NAME, SECRET_ADDRESS, SECRET_NOTE, "explained", "ev-1"]:
        assert secret not in whole
