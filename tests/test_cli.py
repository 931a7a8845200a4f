"""The command line as a person uses it: real processes, the embedded broker, SQLite files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url

from transport.broker import free_port

pytestmark = pytest.mark.kafka

INCIDENT = {
    "incident_ref": "INC-1",
    "children_present": True,
    "domestic_abuse": True,
    "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-f", "role": "alleged-perpetrator"}],
}


def sgledger(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_publish_to_flag_through_the_cli(tmp_path: Path) -> None:
    sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset")
    assert (tmp_path / "keys" / "root.key").stat().st_mode & 0o777 == 0o600
    for agency in ("police/avon-somerset", "gp/L85001"):
        sgledger(tmp_path, "agency", "add", agency)
    sgledger(
        tmp_path, "publish", "--agency", "gp/L85001", "--type", "gp.registered", "--child", "C-1",
        "--data", json.dumps({"person": "C-1", "practice": "L85001"}),
    )  # fmt: skip
    published = sgledger(
        tmp_path, "publish", "--agency", "police/avon-somerset", "--type", "incident.reported",
        "--child", "C-1", "--time", "2024-03-05T21:40:00+00:00", "--data", json.dumps(INCIDENT), "--json",
    )  # fmt: skip
    incident = json.loads(published.stdout)["event"]
    recorded = datetime.fromisoformat(incident["recordedtime"])
    view = json.loads(sgledger(tmp_path, "child", "show", "C-1", "--json").stdout)
    assert [e["type"] for e in view["chronology"]] == ["incident.reported", "gp.registered"]  # by event time
    assert {a["agency"] for a in view["agencies"]} == {"police/avon-somerset", "gp/L85001"}
    assert view["open_flags"] == []  # the GP has a working day to be told
    later = (recorded + timedelta(days=10)).isoformat()
    flags = json.loads(sgledger(tmp_path, "flags", "list", "--as-of", later, "--json").stdout)
    assert sorted((f["rule"], f["evidence"]) for f in flags["flags"]) == [
        ("gp-not-notified", [incident["id"]]),
        ("incident-not-triaged", [incident["id"]]),
    ]
    assert json.loads(sgledger(tmp_path, "flags", "list", "--json").stdout)["flags"] == []
    children = json.loads(sgledger(tmp_path, "child", "list", "--json").stdout)
    assert [c["child"] for c in children] == ["C-1"]
    sgledger(tmp_path, "child", "show", "C-1", "--reason", "strategy meeting")
    accesses = json.loads(sgledger(tmp_path, "audit", "access", "C-1", "--json").stdout)
    assert [(a["action"], a.get("reason")) for a in accesses] == [
        ("child show", None),
        ("child show", "strategy meeting"),
    ]


def test_backdated_event_needs_a_key_valid_then(tmp_path: Path) -> None:
    """Refused before signing (issue 11), instead of signed, sent and quarantined."""
    sgledger(tmp_path, "keys", "init")
    sgledger(tmp_path, "agency", "add", "gp/L85001")
    refused = sgledger(
        tmp_path, "publish", "--agency", "gp/L85001", "--type", "gp.registered", "--child", "C-1",
        "--recorded", "2024-03-01T09:00:00+00:00",
        "--data", json.dumps({"person": "C-1", "practice": "L85001"}), ok=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "agency add --valid-from" in refused.stderr
    assert json.loads(sgledger(tmp_path, "quarantine", "list", "--json").stdout) == []


def test_invalid_event_is_refused_before_signing(tmp_path: Path) -> None:
    sgledger(tmp_path, "keys", "init")
    sgledger(tmp_path, "agency", "add", "police/avon-somerset")
    result = sgledger(
        tmp_path, "publish", "--agency", "police/avon-somerset", "--type", "incident.reported",
        "--child", "C-1", "--data", json.dumps({**INCIDENT, "dash_risk": "extreme"}), ok=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "/data/dash_risk" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "publish",
                "--agency",
                "police/x",
                "--type",
                "incident.reported",
                "--child",
                "C-1",
                "--data",
                "{nope",
            ],
            "JSON",
        ),
        (["agency", "add", "spaceship/1"], "agency id"),
        (["child", "show", "C-404"], "no events"),
        (["flags", "list", "--as-of", "yesterday"], "--as-of"),
        (["quarantine", "show", "999"], "no quarantine entry"),
        (["scenario", "run", "/nonexistent.json"], "does not exist"),
        (["project"], "--bootstrap-servers"),
    ],
)
def test_bad_arguments_give_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    sgledger(tmp_path, "keys", "init")
    result = sgledger(tmp_path, *args, ok=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 3


@pytest.mark.postgres
def test_a_database_password_is_never_printed(tmp_path: Path, postgres_db: str) -> None:
    """`project`, `relay`, `serve` and `child show` printed the database URL as given, password
    and all, into the logs an operator's collector keeps (the test server trusts loopback, so
    the password here is checked by nothing and only has to stay unprinted)."""
    url = make_url(postgres_db).set(password="s3cret-pw").render_as_string(hide_password=False)
    sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset")
    missing = subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path), "--database-url", url,
         "child", "show", "C-0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no events about child" in missing.stderr
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "sgledger", "--data-dir", str(tmp_path), "--database-url", url,
         "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        first = serve.stderr.readline()
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
    assert first.startswith("serving ")
    assert "s3cret-pw" not in missing.stderr + first and "***" in missing.stderr + first
