"""`sgledger audit ...` end to end on a copy of the Child Charlie ledger: publish a tree head,
verify clean, prove inclusion and consistency, export a chronology (which records the access),
and list who looked at the child's record."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from consumers.auditor.tree_heads import leaf_of
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent
from sgledger.cli.audit import audit
from sgledger.cli.context import AppContext, UserError
from sgledger.settings import Settings
from tests.audit.conftest import Story
from views.access_log import list_access
from views.models import FlagRow

CHILD = "C-CH-1"


@pytest.fixture
def app(charlie: Story, tmp_path: Path) -> AppContext:
    """A private copy of the story's data directory: these tests append to the ledger."""
    data = tmp_path / "data"
    shutil.copytree(charlie.settings.data_dir, data)
    return AppContext(settings=Settings.resolve(data_dir=data))


def run(app: AppContext, *args: str) -> Result:
    return CliRunner().invoke(audit, list(args), obj=app, catch_exceptions=False)


def test_tree_head_verify_prove_and_consistency(app: AppContext) -> None:
    size_before = app.ledger.count()
    published = run(app, "tree-head")
    assert published.exit_code == 0, published.output
    assert f"tree head size {size_before}" in published.output
    assert "nothing new" in run(app, "tree-head").output  # only the head itself is new

    verified = run(app, "verify", "--json")
    assert verified.exit_code == 0, verified.output
    summary = json.loads(verified.output)
    assert summary["ok"] and summary["tree_heads"] == 1 and summary["findings"] == []

    with app.ledger.read() as session:
        event_id, envelope = session.execute(
            select(AcceptedEvent.event_id, AcceptedEvent.envelope).where(
                AcceptedEvent.type == "incident.reported"
            )
        ).first()  # type: ignore[misc]
    proof = json.loads(run(app, "prove", event_id).output)
    assert proof["verified"] and proof["tree_size"] == size_before
    assert proof["against"].startswith("published tree head")
    leaf = leaf_of(json.loads(envelope))
    assert leaf.hex() == proof["leaf_hash"]
    path = [bytes.fromhex(p) for p in proof["proof"]]
    root = bytes.fromhex(proof["root_hash"])
    assert verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path, root)
    assert not verify_inclusion(leaf, proof["leaf_index"] + 1, proof["tree_size"], path, root)

    result = json.loads(run(app, "consistency", "10", str(size_before + 1)).output)
    assert result["verified"]
    old, new = bytes.fromhex(result["old_root"]), bytes.fromhex(result["new_root"])
    assert not verify_consistency(10, size_before + 1, new, old, [bytes.fromhex(p) for p in result["proof"]])
    with pytest.raises(UserError, match="no accepted event"):
        run(app, "prove", "no-such-event")


def test_chronology_export_records_the_access_as_the_real_account_without_the_root_key(
    app: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who read the record is the account the command runs as: an environment variable cannot
    name someone else, and the root private key (moved offline here) is not needed to read."""
    (app.settings.keys_dir / "root.key").rename(tmp_path / "root.key.offline")
    monkeypatch.setenv("SGLEDGER_USER", "someone.else@example.org")
    monkeypatch.setenv("USER", "someone.else")
    monkeypatch.setenv("LOGNAME", "someone.else")
    account = f"os:{pwd.getpwuid(os.getuid()).pw_name}"
    output = tmp_path / "charlie.html"
    result = run(app, "chronology", CHILD, "--format", "html", "--output", str(output), "--reason", "CSPR")
    assert result.exit_code == 0, result.output
    assert output.read_text().startswith("<!DOCTYPE html>")
    accesses = list_access(Ledger(app.settings.database_url), CHILD)
    assert [(a["who"], a["role"], a["action"], a["reason"], a["target"]) for a in accesses] == [
        (account, "operator", "audit chronology --format html", "CSPR", f"child:{CHILD}")
    ]
    listed = run(app, "access", CHILD)
    assert account in listed.output and "CSPR" in listed.output
    assert "someone.else" not in listed.output


def test_verify_exits_non_zero_and_names_the_event_when_a_row_was_altered(app: AppContext) -> None:
    database = app.settings.data_dir / "ledger.sqlite"
    with sqlite3.connect(database) as conn:
        position, event_id = conn.execute(
            "SELECT position, event_id FROM ledger_accepted WHERE type = 'referral.closed'"
        ).fetchone()
        conn.execute(
            "UPDATE ledger_events SET state = replace(state, CAST('nfa' AS BLOB), CAST('nfb' AS BLOB)) "
            "WHERE id = ?",
            (position,),
        )
    result = run(app, "verify")
    assert result.exit_code == 1
    assert f"position {position}, event {event_id}" in result.output
    assert "findings" in result.output


def test_replay_and_diff_commands(app: AppContext, tmp_path: Path) -> None:
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    replayed = run(
        app, "replay", "--as-of", "2019-12-24T00:00:00+00:00", "--into", into, "--reason", "review"
    )
    assert replayed.exit_code == 0, replayed.output
    assert "replayed" in replayed.output and "signatures not re-checked" in replayed.output
    assert run(app, "diff", into, into).output.strip() == "identical"
    against_live = run(app, "diff", into)  # B defaults to the live database: it knows more
    assert against_live.exit_code == 1
    assert "differences" in against_live.output
    with app.ledger.read() as session:
        access = session.scalars(
            select(AcceptedEvent.envelope).where(AcceptedEvent.type == "access.recorded")
        ).all()
    assert [json.loads(a)["data"]["action"] for a in access] == ["audit replay"]


def test_reads_outside_audit_are_audited_too_and_flags_can_be_told_apart(app: AppContext) -> None:
    """flags explain (by short id), child list and quarantine list/show are reads of records about
    children: each writes a signed access.recorded; flags list shows which incident and agency."""
    from sgledger.cli import cli

    def top(*args: str) -> Result:
        result = CliRunner().invoke(
            cli, ["--data-dir", str(app.settings.data_dir), *args], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result

    listed = json.loads(top("flags", "list", "--json").output)
    gp = [f for f in listed["flags"] if f["rule"] == "gp-not-notified"]
    assert len(gp) > 2
    table = top("flags", "list", "--rule", "gp-not-notified").output
    for flag in gp:  # each row says which practice and which incident
        assert flag["detail"].split(" not told")[0] in table
    assert len({f["detail"] for f in gp}) == len(gp)
    short = gp[0]["id"][:8]
    assert "Evidence" in top("flags", "explain", short, "--reason", "triage call").output
    top("child", "list")
    top("quarantine", "list")
    accesses = list_access(app.ledger, CHILD)
    assert ("flags explain", "triage call") in [(a["action"], a.get("reason")) for a in accesses]
    with app.ledger.read() as session:
        actions = [
            json.loads(e)["data"]["action"]
            for e in session.scalars(
                select(AcceptedEvent.envelope).where(AcceptedEvent.type == "access.recorded")
            )
        ]
    assert {"child list", "quarantine list", "flags explain"} <= set(actions)


def test_a_dismissed_flag_is_a_span_closed_by_the_decision_listed_with_the_records_governance(
    app: AppContext,
) -> None:
    from consumers.auditor.chronology import build_chronology
    from sgledger.cli import cli

    with app.ledger.read() as session:
        flag_id = session.scalar(
            select(FlagRow.id).where(FlagRow.rule == "vague-referral-destination", FlagRow.status == "open")
        )
    assert flag_id is not None
    args = [
        "--data-dir",
        str(app.settings.data_dir),
        "flags",
        "dismiss",
        flag_id[:8],
        "--reason",
        "health = PHN",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chronology = build_chronology(app.ledger, app.root_key(), CHILD, datetime.now(UTC))
    [span] = [f for f in chronology.flags if f.id == flag_id]
    assert span.status == "dismissed" and span.closed is not None
    assert span.closed_how.endswith(": health = PHN")
    [decision] = [g for g in chronology.governance if g.type == "flag.dismissed"]
    assert decision.recordedtime == span.closed
    assert decision.summary.endswith(
        f"dismissed flag {flag_id[:8]} (vague-referral-destination): health = PHN"
    )
    assert not any(e.type == "flag.dismissed" for e in chronology.entries)
    assert not any(span.open_at(e.recordedtime) for e in chronology.entries if e.recordedtime >= span.closed)
