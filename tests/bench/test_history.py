"""The benchmark's fast history generator writes a ledger the real read paths accept: `audit
verify` (signatures, chains, ``ledger_events`` against the index) finds it clean, the events are
schema-valid, and a child's view decodes every one of its events (real PostgreSQL, real COPY);
the web benchmark's view tables and flags beside it are rows the projector's tables take."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from bench import history
from bench.history import AGENCIES, CYCLE, FIRST, ChainSigner, child_id, generate, step
from bench.web import _flags, steady_state, timed_view_reads, write_views
from consumers.auditor.verify import verify
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger
from ledger.timeutil import format_time
from ledger.validation import validate_event
from views.queries import child_events, child_view

pytestmark = pytest.mark.postgres


def test_a_generated_history_verifies_clean_and_decodes(postgres_db: str) -> None:
    ledger = Ledger(postgres_db)
    root_key = Ed25519PrivateKey.generate()
    children, events = 50, 50 * (len(FIRST) + len(CYCLE) + 2)
    generated = generate(ledger, ChainSigner("partnership/bench", root_key), Ed25519PrivateKey.generate(),
                         events, children, workers=2)  # fmt: skip
    assert generated.events == events + len(AGENCIES) + 1
    assert ledger.count() == generated.events
    report = verify(ledger, RootKey("partnership/bench", root_key.public_key()), workers=1)
    assert report.ok, report.findings
    assert report.events == generated.events
    with ledger.read() as session:
        story = child_events(ledger, session, child_id(7))
        assert len(story) == events // children
        assert [(e.source, e.type) for e in story][:3] == [
            ("csc/somerset", "child.registered"),
            ("police/avon-somerset", "incident.reported"),
            (step(2 * children + 7, children)[0], "gp.registered"),
        ]
        for event in ledger.events_about(session, child_id(7)):
            assert validate_event(event) == [], event
    # bench/web.py's view rows (COPY skips Python-side column defaults: a column added to the
    # view tables without its value here fails this, not the quiet benchmark run)
    assert write_views(postgres_db, children, events) == 2 * children
    with ledger.read() as session:
        view = child_view(session, child_id(7))
        assert child_view(session, "C-nobody") is None
    assert view == expected_view(7, children, events)
    # the benchmark's timed reads and its steady state (bench/web.py)
    reads = timed_view_reads(ledger, [child_id(c) for c in (1, 7, 7, 30)])
    assert reads["requests"] == 4 and reads["cpu_ms_per_read"] > 0
    assert list(reads["by_history_length"]) == [str(events // children)]
    assert reads["by_history_length"][str(events // children)]["reads"] == 4
    assert steady_state(postgres_db) >= 0
    with ledger.read() as session:
        vacuumed = session.execute(
            text("SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL")
        ).scalars()
        assert {"ledger_accepted", "ledger_events", "view_children", "flags"} <= set(vacuumed)


def expected_view(c: int, children: int, events: int) -> dict[str, Any]:
    """Child ``c``'s view, derived from the story itself (bench.history, bench.web) rather than
    read back: every field `child show` and the Child page print, in their order."""
    story = history.child_story(c, children, events)
    at = [format_time(history.event_time(n)) for n, _, _ in story]
    aware: dict[str, str] = {}
    for (_, agency, _), time in zip(story, at, strict=True):
        aware.setdefault(agency, time)
    incident = next(n for n, _, kind in story if kind == "incident")
    no_facts = dict.fromkeys(
        (
            "lives_with_child",
            "parental_responsibility",
            "care_leaver",
            "substance_misuse",
            "mental_health",
            "age",
        )
    )
    return {
        "child": history.child_id(c),
        "dob": history.dob(c),
        "gp_practices": [history.gp_of(c).split("/")[1]],
        "schools": [history.school_of(c).split("/")[1]],
        "people": [  # by person id: "-f" before "-m"
            {"person": history.father(c), "roles": ["alleged-perpetrator"], **no_facts, "gp_practices": []},
            {"person": history.mother(c), "roles": ["mother", "victim"], **no_facts, "gp_practices": []},
        ],
        "agencies": [{"agency": a, "aware_since": since, "via": "source"} for a, since in aware.items()],
        "chronology": [
            {
                "time": time,
                "recordedtime": time,
                "source": agency,
                "type": history.payload(kind, n, children)[0],
                "id": history.event_id(n),
                "data": history.payload(kind, n, children)[1],
            }
            for (n, agency, kind), time in zip(story, at, strict=True)
        ],
        # open flags by due time: triage is due 12 hours after the incident, the GP's a day
        "open_flags": [flag.to_json() for flag in sorted(_flags(c, incident), key=lambda f: f.due)],
        "evaluated_at": at[-1],
    }


@pytest.mark.slow
def test_the_web_benchmark_keeps_its_database_and_reads_it_again(postgres_server: str) -> None:
    """`bench/web.py --database NAME`: the first run generates into NAME and keeps it, the second
    reads the same ledger without generating (an A/B of two checkouts on one database), and both
    print the read's CPU time, collections and percentiles by history length."""
    name = f"sgledger_test_web_{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "bench/web.py", "--children", "30", "--events", "360", "--requests", "5",
               "--server", postgres_server, "--database", name, "--json"]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    try:
        first = json.loads(
            subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
        )
        second = json.loads(
            subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
        )
    finally:
        admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            kept = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert kept == 1  # not dropped by the benchmark
    assert first["events"] == second["events"] == 360 + len(AGENCIES) + 1
    assert "vacuum_s" in first and "generate_s" in first
    assert "generate_s" not in second and second["flags"] == first["flags"] == 60
    for result in (first, second):
        read = result["child_view_read"]
        assert read["requests"] == 1000 and read["cpu_ms_per_read"] > 0
        assert read["by_history_length"]["12"]["reads"] == 1000
        assert result["child_page"]["requests"] == 5
