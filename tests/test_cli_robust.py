"""Issue 9 items 2-4 at the command line: real processes, real files, real SQLite errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.test_cli import INCIDENT, sgledger

pytestmark = pytest.mark.kafka


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_a_refused_agency_name_leaves_nothing_behind(tmp_path: Path) -> None:
    """`agency add 'police/../../x'` wrote its key file, then the ledger refused the
    registration: the file stayed. Now the name is refused before anything is written."""
    sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset")
    before = tree(tmp_path)
    for name in ("police/../../x", "police/x\n", "police/" + "a" * 300):
        result = sgledger(tmp_path, "agency", "add", name, ok=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and "is not a valid agency id" in result.stderr
        assert "Traceback" not in result.stderr
        assert tree(tmp_path) == before, name


def test_a_malformed_partnership_id_is_refused_before_any_key_exists(tmp_path: Path) -> None:
    result = sgledger(tmp_path, "keys", "init", "--partnership", "partnership/x\n", ok=False)
    assert result.returncode == 2 and "is not a valid agency id" in result.stderr
    assert not (tmp_path / "keys").exists() or tree(tmp_path / "keys") == {}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), so "database or disk is full" is SQLite's own error."""
    mount = tmp_path / "tiny"
    mount.mkdir(mode=0o700)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a real full disk needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            return filler


def police_events(database: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as connection:
        query = "SELECT event_id, sequence FROM ledger_accepted WHERE source = 'police/avon-somerset'"
        return sorted(connection.execute(query).fetchall())


@pytest.mark.slow
def test_disk_full_after_the_outbox_commit_says_so_and_a_retry_with_the_id_stores_nothing_twice(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """The ledger's disk fills up after the outbox has committed the event: the command exits 3
    (not 1, "nothing happened") naming the event; the same draft again with that --id yields the
    stored event, delivered once; the same --id with another draft is refused."""
    database = tiny_disk / "ledger.sqlite"
    run = partial(sgledger, tmp_path, "--database-url", f"sqlite:///{database}")
    run("keys", "init", "--partnership", "partnership/somerset")
    run("agency", "add", "police/avon-somerset")
    draft = ("publish", "--agency", "police/avon-somerset", "--type", "incident.reported", "--child", "C-1",
             "--time", "2024-03-05T21:40:00+00:00", "--data", json.dumps(INCIDENT))  # fmt: skip
    filler = fill(tiny_disk)
    failed = run(*draft, "--json", ok=False)
    assert failed.returncode == 3, failed.stderr
    event = json.loads(failed.stdout)["event"]
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(
        f"error: incident.reported {event['id']} (police/avon-somerset #1) is stored in the outbox"
    )
    # SQLite says "database or disk is full", or "disk I/O error" when the WAL cannot grow
    assert "(sqlite3.OperationalError) disk" in line or "is full" in line, line
    assert f"a retry with --id {event['id']} is safe" in line
    filler.unlink()
    retried = json.loads(run(*draft, "--id", event["id"], "--json").stdout)["event"]
    assert retried == event
    assert police_events(database) == [(event["id"], 1)]
    other = run(*draft[:-1], json.dumps({**INCIDENT, "incident_ref": "INC-2"}), "--id", event["id"], ok=False)
    assert other.returncode == 2 and "is already used, with other content" in other.stderr
    assert police_events(database) == [(event["id"], 1)]


def test_publish_says_where_the_event_is_when_it_was_in_kafka_before_the_command(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A retry of an event already sent (or one a running relay sent first) was answered "sent 0
    event(s) to Kafka", which reads as if it had not been: the answer says where it is."""
    run = partial(sgledger, tmp_path, "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", "cli-deliver")
    run("keys", "init", "--partnership", "partnership/somerset")
    run("agency", "add", "police/avon-somerset")
    draft = ("publish", "--agency", "police/avon-somerset", "--type", "incident.reported", "--child", "C-1",
             "--time", "2024-03-05T21:40:00+00:00", "--data", json.dumps(INCIDENT), "--json")  # fmt: skip
    first = json.loads(run(*draft).stdout)
    assert first["delivery"].startswith("sent 1 event(s) to Kafka (this one at cli-deliver.")
    again = json.loads(run(*draft, "--id", first["event"]["id"]).stdout)
    assert again["event"] == first["event"]
    assert again["delivery"].startswith("already in Kafka (cli-deliver."), again["delivery"]
    assert "sent before this command" in again["delivery"]
