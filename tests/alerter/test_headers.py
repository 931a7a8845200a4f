"""Issue 9 item 2: email headers are built only from validated values.

A flag change arrives from a Kafka topic; before, a child id ``C-1\\n`` (which the anchored schema
now refuses at the ledger, but a topic can carry anything) went straight into ``Subject:``.
"""

from __future__ import annotations

import pytest

from consumers.alerter.config import ConfigError, parse_config
from consumers.alerter.message import build_message
from tests.alerter.helpers import config, flag_change


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("child", "C-1\nBcc: everyone@example.test"),
        ("child", "C-1\n"),
        ("title", "Gap\r\nX-Injected: 1"),
        ("severity", "high\nX-Injected: 1"),
    ],
)
def test_no_newline_reaches_a_header(field: str, value: str) -> None:
    change = flag_change()
    change["flag"][field] = value
    msg = build_message(change, "police-lead@police.test", config())
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
    names = [line.split(":", 1)[0] for line in msg.as_string().split("\n\n", 1)[0].splitlines()]
    assert "X-Injected" not in names and "Bcc" not in names


def test_an_unreadable_child_id_is_shown_as_such_in_subject_and_body() -> None:
    change = flag_change(child="C-1\n")
    msg = build_message(change, "police-lead@police.test", config())
    assert str(msg["Subject"]).endswith("child (unreadable child id)")
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Child (pseudonymous id): (unreadable child id)" in body


def test_a_valid_child_id_is_shown_unchanged() -> None:
    msg = build_message(flag_change(child="C-1"), "police-lead@police.test", config())
    assert str(msg["Subject"]) == "[medium] Title of gp-not-notified (raised) - child C-1"


@pytest.mark.parametrize("address", ["lead@police.test\n", "lead@police.test\nBcc: x@y"])
def test_routing_refuses_an_address_with_a_newline(address: str) -> None:
    with pytest.raises(ConfigError, match="is not an email address"):
        parse_config({"smtp": {"host": "h", "from": address}}, "p.toml")
