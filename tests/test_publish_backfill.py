"""Friendlier publishing as a person uses it (real processes, the embedded broker): historical
loads with a key valid from the past, batches from NDJSON or standard input, suggestions, and
refusing before signing what the partnership would quarantine."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from producers.outbox import Outbox

# Each runs several CLI processes through the embedded broker (the first, 1,000 events).
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

POLICE = "police/avon-somerset"
INCIDENT = {"incident_ref": "INC-1", "children_present": True, "domestic_abuse": False, "parties": []}


def sgledger(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sgledger", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=300, input=stdin,
    )  # fmt: skip


def draft(n: int, recorded: datetime) -> str:
    return json.dumps(
        {
            "type": "incident.reported",
            "subject": f"C-{n % 50}",
            "time": recorded.isoformat(),
            "recordedtime": recorded.isoformat(),
            "data": {**INCIDENT, "incident_ref": f"INC-{n}"},
        }
    )


def outbox_count(data_dir: Path) -> int:
    return len(Outbox(f"sqlite:///{data_dir / 'outbox.sqlite'}").events(POLICE))


def scalar(data_dir: Path, sql: str) -> object:
    engine = create_engine(f"sqlite:///{data_dir / 'ledger.sqlite'}")
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


@pytest.fixture
def partnership(tmp_path: Path) -> Path:
    assert sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset").returncode == 0
    return tmp_path


def test_a_historical_load_with_a_key_valid_from_the_past(partnership: Path) -> None:
    added = sgledger(partnership, "agency", "add", POLICE, "--valid-from", "2019-04-01")
    assert added.returncode == 0, added.stderr
    start = datetime(2019, 5, 1, 9, tzinfo=UTC)
    lines = "\n".join(draft(n, start + timedelta(hours=7 * n)) for n in range(1000)) + "\n"
    batch = partnership / "history.ndjson"
    batch.write_text(lines)
    published = sgledger(partnership, "publish", "--agency", POLICE, "--batch", str(batch), "--json")
    assert published.returncode == 0, published.stderr
    result = json.loads(published.stdout)
    assert result["count"] == 1000 and result["sequences"] == [1, 1000]
    assert "signed and queued 1000 event(s)" in published.stderr
    assert (
        scalar(partnership, "SELECT count(*) FROM ledger_accepted WHERE source = 'police/avon-somerset'")
        == 1000
    )
    assert scalar(partnership, "SELECT count(*) FROM ledger_quarantine") == 0


def test_back_dated_and_future_events_are_refused_before_signing(partnership: Path) -> None:
    assert sgledger(partnership, "agency", "add", POLICE).returncode == 0
    old = datetime(2019, 5, 1, 9, tzinfo=UTC)
    future = datetime.now(UTC) + timedelta(hours=1)
    batch = "\n".join([draft(1, datetime.now(UTC)), draft(2, old), "{not json", draft(4, future)])
    refused = sgledger(partnership, "publish", "--agency", POLICE, "--batch", "-", stdin=batch)
    assert refused.returncode == 2
    assert "line 2: /recordedtime: expected a time when this agency's key is valid" in refused.stderr
    assert "line 3: /: expected one JSON object (a draft), got not JSON" in refused.stderr
    assert "line 4: /recordedtime: expected no later than now plus 0:05:00" in refused.stderr
    assert "3 problem(s) in the batch" in refused.stderr and "nothing was published" in refused.stderr
    single = sgledger(
        partnership, "publish", "--agency", POLICE, "--type", "incident.reported", "--child", "C-1",
        "--recorded", old.isoformat(), "--data", json.dumps(INCIDENT),
    )  # fmt: skip
    assert single.returncode == 2 and "agency add --valid-from" in single.stderr
    assert outbox_count(partnership) == 0


def test_data_from_standard_input_and_suggestions(partnership: Path) -> None:
    assert sgledger(partnership, "agency", "add", POLICE).returncode == 0
    args = ["publish", "--type", "incident.reported", "--child", "C-1", "--data", "@-"]
    ok = sgledger(partnership, *args, "--agency", POLICE, "--json", stdin=json.dumps(INCIDENT))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["event"]["data"] == INCIDENT
    typo = sgledger(partnership, *args, "--agency", "police/avon-somerst", stdin=json.dumps(INCIDENT))
    assert typo.returncode == 2 and "did you mean 'police/avon-somerset'?" in typo.stderr
    wrong_type = sgledger(
        partnership, "publish", "--agency", POLICE, "--type", "incident.reportd", "--child", "C-1",
        "--data", json.dumps(INCIDENT),
    )  # fmt: skip
    assert wrong_type.returncode == 2 and "did you mean 'incident.reported'?" in wrong_type.stderr
    assert "agency.key.registered" not in wrong_type.stderr
    kind = sgledger(partnership, "agency", "add", "polise/avon")
    assert kind.returncode == 2 and "did you mean 'police'?" in kind.stderr
