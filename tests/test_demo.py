"""`sgledger demo`: README command 1 on the embedded default, including the emails it sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.alerter.sink import ReceivedMail
from consumers.alerter.store import AlertStore

ROOT = Path(__file__).resolve().parents[1]
STORY = ROOT / "scenarios" / "cspr-child-charlie.json"
# Free text and people's ids from the story's payloads: none may reach an email.
PRIVATE_FIELDS = ("reason", "location", "outcome", "practitioner", "worked_by", "authorised_by",
                  "supervised_by", "mother", "father")  # fmt: skip


def test_the_bundled_story_is_the_project_scenario() -> None:
    bundled = ROOT / "sgledger" / "scenarios" / "cspr-child-charlie.json"
    assert bundled.read_bytes() == STORY.read_bytes()


def private_values() -> set[str]:
    events = json.loads(STORY.read_text())["events"]
    values = {e["data"][k] for e in events for k in PRIVATE_FIELDS if isinstance(e["data"].get(k), str)}
    values |= {e["data"]["person"] for e in events if str(e["data"].get("person", "")).startswith("P-")}
    assert len(values) >= 10  # the check below means something only if the story has such data
    return values


@pytest.mark.kafka
def test_demo_prints_the_child_view_flags_and_the_emails_it_sent(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path), "demo", "--print-emails"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Chronology (all agencies)" in out and "People" in out and "Agencies involved" in out
    assert "Police recorded a domestic-abuse incident" in out  # plain language, views.summaries
    assert "closure-without-father-contact" in out and "self-authorised-closure" in out
    assert "FAIL" not in out and out.count("PASS") >= 1
    assert (tmp_path / "demo" / "ledger.sqlite").exists()

    # The alerter's own record of what went through the local SMTP server.
    store = AlertStore(f"sqlite:///{tmp_path / 'demo' / 'ledger.sqlite'}")
    try:
        mail = store.mail()
    finally:
        store.close()
    assert mail and {m.status for m in mail} == {"sent"}
    assert f"{len(mail)} message(s) sent to the local SMTP server" in out and "0 failed" in out
    # --print-emails: each in full, every flag change of each (one per lead: they arrived together)
    assert out.count("Evidence (agency, date, type and reference):") > len(mail)
    assert len({m.recipient for m in mail}) == len(mail)

    to: dict[str, set[str]] = {}
    for m in mail:
        text = ReceivedMail("", [m.recipient], m.message.encode()).text()
        for line in text.splitlines():
            if line.startswith("Rule: "):
                to.setdefault(line.removeprefix("Rule: "), set()).add(m.recipient)
    # Each flag says which it is: the incident's reference (from the projector's evidence detail)
    assert "Which: INC-CH-1; concerns gp/L85001, police/avon-somerset" in "\n".join(
        ReceivedMail("", [m.recipient], m.message.encode()).text() for m in mail
    )
    # The closing agency and the partnership lead (high severity) hear of the closure ...
    assert to["Referral closed without contact with father or person of concern"] == {
        "mash.lead@csc.example", "designated.lead@partnership.example",
    }  # fmt: skip
    # ... the police and both practices (mother's and father's) of the GP never told.
    assert to["GP practice not told of a domestic-abuse incident"] == {
        "safeguarding.lead@police.example", "designated.lead@partnership.example",
        "safeguarding.lead@l85001.nhs.example", "safeguarding.lead@l85002.nhs.example",
    }  # fmt: skip

    private = private_values()
    for m in mail:
        received = ReceivedMail("", [m.recipient], m.message.encode())
        assert received.message.get_content_type() == "multipart/alternative"
        parts = [p.get_content() for p in received.message.walk() if p.get_content_maintype() == "text"]
        whole = "\n".join([m.message, *parts])  # raw and decoded: text and HTML
        leaked = [v for v in private if v in whole]
        assert not leaked, f"{m.subject}: {leaked}"
        assert "Open the flag: http://127.0.0.1:8000/flags/" in received.text()  # the flag's page
