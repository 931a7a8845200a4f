"""Web workspace latency: the Child page and My flags, one request at a time, on PostgreSQL.

    python bench/web.py [--children 100000] [--events 2000000] [--requests 300] [--json]
                        [--server postgresql+psycopg://postgres@127.0.0.1:5432/test]

A fresh database is created beside ``--server``'s and dropped afterwards (nothing generated is
kept), unless ``--database NAME`` names one to keep: generated into on the first run, read again
by later ones without generating (an A/B of two checkouts on the same ledger; drop it when done:
at the issue's size it weighs ~4.5 GB). What it holds, and how it is made:

- the ledger: ``bench.history`` signs and chains every event for real (social care, police,
  health visiting, 20 GP practices, 40 schools; 20 events per child at the issue's size) in one
  worker process per core and writes them with PostgreSQL COPY exactly as ``Ledger.record``
  stores them: the pages decode the same envelopes the projector would have indexed.
- the view tables the projector keeps (children, people, agencies involved since when), written
  in bulk from the same story, and two open flags per child (``gp-not-notified`` concerning the
  child's GP practice and the police, ``incident-not-triaged`` concerning the police), each
  citing the child's first incident as evidence, with their ``flag_concerns`` rows made by the
  projector's own ``views.flags.concern_rows``. Not projected through Kafka and the rules: that
  would take hours, and the pages read only these tables (the ingest benchmarks measure that).
- the steady state: ``VACUUM (ANALYZE)`` once everything is written, before anything is timed.
  A deployment's ledger of 2,000,000 events has been through autovacuum many times; one just
  written by COPY has no hint bits (the first read of each page dirties it) and an empty
  visibility map, and autovacuum (its naptime is a minute) starts on the freshly loaded tables in
  the middle of the timed reads, for longer the larger the ledger: one of the two things that
  made the read's tail grow with the database (docs/notes/child-view-read.md).

Timed: the real application (``web.app.create_app``) under uvicorn on loopback, signed in as a
police lead whose agency is involved with every child; each page view commits its signed
``access.recorded`` to the outbox first, as in production, while delivery (broker, projector)
is off so that only the page is timed. Prints p50/p95/p99 latency and requests/s for random
children and for My flags pages, and the child view read alone (``views.queries.child_view``,
what the page and `sgledger child show` read: query and decode, in process, no HTTP) with its
CPU time per read, the garbage collections during the reads and its percentiles by history
length, with the machine, its load and its raw Ed25519 verify rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
import uvicorn
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench import history
from bench.machine import describe, verify_rate
from consumers.alerter.sink import free_port
from ledger.envelope import ChainSigner
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from ledger.store.types import UTCTime
from ledger.vocabulary import SERVICE_AGENCY
from policies.base import Severity
from policies.engine import Flag
from sgledger.settings import Settings
from views.flags import concern_rows
from views.models import ChildRow, FlagRow
from views.queries import child_view
from web.accounts import Accounts
from web.app import create_app
from web.services import WebConfig, WebServices

LEAD, PASSWORD = "lead@police.example", "benchmark password"
POLICE = history.POLICE
VIEW_BATCH = 10_000
_TIME = UTCTime()


def write_views(url: str, children: int, events: int) -> int:
    """The view tables and flags for ``history``'s story; returns the number of flags."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    flags = 0
    with psycopg.connect(conninfo) as connection:
        for start in range(0, children, VIEW_BATCH):
            rows: dict[str, list[dict[str, Any]]] = {
                "view_children": [], "view_people": [], "view_agencies": [], "flags": [], "flag_concerns": []
            }  # fmt: skip
            for c in range(start, min(children, start + VIEW_BATCH)):
                _child_rows(c, children, events, rows)
            for table, table_rows in rows.items():
                _copy(connection, table, table_rows)
            connection.commit()
            flags += len(rows["flags"])
    return flags


def _child_rows(c: int, children: int, events: int, rows: dict[str, list[dict[str, Any]]]) -> None:
    story = history.child_story(c, children, events)
    child = history.child_id(c)
    times = [history.event_time(n) for n, _, _ in story]
    kinds = {kind for _, _, kind in story}
    rows["view_children"].append(
        {
            "child": child,
            "dob": history.dob(c),
            "event_count": len(story),
            "first_recorded": times[0],
            "last_recorded": times[-1],
            "gp_practices": json.dumps([history.gp_of(c).split("/")[1]] if "gp" in kinds else []),
            "schools": json.dumps([history.school_of(c).split("/")[1]] if "school" in kinds else []),
            "next_due": None,
            "evaluated_at": times[-1],
            # the column's default (a Python-side one, which COPY does not apply): written by no
            # projecting process, so none trusts rows it remembers for this child
            "stamp": 0,
        }
    )
    people = {history.mother(c): ["mother", "victim"], history.father(c): ["alleged-perpetrator"]}
    for person, roles in people.items():
        rows["view_people"].append(
            {"child": child, "person": person, "roles": json.dumps(roles), "lives_with_child": None,
             "parental_responsibility": None, "care_leaver": None, "substance_misuse": None,
             "mental_health": None, "age": None, "gp_practices": "[]"}
        )  # fmt: skip
    aware: dict[str, datetime] = {}
    for (_, agency, _), at in zip(story, times, strict=True):
        aware.setdefault(agency, at)
    rows["view_agencies"].extend(
        {"child": child, "agency": a, "aware_since": at, "via": "source"} for a, at in aware.items()
    )
    incident = next((n for n, _, kind in story if kind == "incident"), None)
    if incident is None:
        return
    for flag in _flags(c, incident):
        payload = flag.to_json()
        rows["flags"].append(
            {"id": flag.id, "rule": flag.rule, "version": flag.version, "child": child,
             "severity": str(flag.severity), "status": flag.status, "due": flag.due,
             "payload": json.dumps(payload), "raised_at": flag.due, "updated_at": flag.due, "changes": 1}
        )  # fmt: skip
        rows["flag_concerns"].extend(
            concern_rows(flag.id, flag.rule, str(flag.severity), flag.status, flag.due, payload)
        )


def _flags(c: int, incident: int) -> list[Flag]:
    at = history.event_time(incident)
    gp, child = history.gp_of(c), history.child_id(c)
    common: dict[str, Any] = {
        "version": 1, "child": child, "severity": Severity("high"), "evidence": (history.event_id(incident),),
        "source": "CSPR Child Charlie 2.14", "explanation": "...", "status": "open",
    }  # fmt: skip
    return [
        Flag(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{child}|gp-not-notified")),
            rule="gp-not-notified",
            title="GP practice not told of a domestic-abuse incident",
            due=at + timedelta(days=1),
            concerns=(gp, POLICE),
            action="Send the incident to the GP practice named in this flag.",
            detail=f"{gp} not told of incident INC-{incident}",
            **common,
        ),
        Flag(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{child}|incident-not-triaged")),
            rule="incident-not-triaged",
            title="Domestic-abuse incident not triaged",
            due=at + timedelta(hours=12),
            concerns=(POLICE,),
            action="Triage the incident at the daily meeting.",
            detail=f"INC-{incident} not triaged",
            **common,
        ),
    ]


def _copy(connection: psycopg.Connection[Any], table: str, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [_TIME.process_bind_param(v, None) if isinstance(v, datetime) else v for v in row.values()]  # type: ignore[arg-type]
            )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(latencies: Sequence[float], seconds: float) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(list(latencies), 50), 2),
        "p95_ms": round(percentile(list(latencies), 95), 2),
        "p99_ms": round(percentile(list(latencies), 99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "requests": len(latencies),
    }


def timed(client: httpx.Client, paths: list[str]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        response = client.get(path)
        latencies.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return summary(latencies, time.perf_counter() - started)


def timed_view_reads(ledger: Ledger, children: Sequence[str]) -> dict[str, Any]:
    """``child_view`` alone, as `sgledger child show` and the Child page read it: one read
    transaction, the queries and the decoding of every event, no HTTP and no rendering.

    Besides the latencies: this process's CPU time per read (on a shared host the wall clock
    mostly measures the load), the garbage collections that ran during the reads with their
    longest pause (a full collection over a large heap is a tail of its own), and the
    percentiles by history length (whether the tail is the longest histories)."""
    latencies = []
    by_history: dict[int, list[float]] = defaultdict(list)
    pauses: dict[int, list[float]] = defaultdict(list)
    started_gc = 0.0

    def collection(phase: str, info: dict[str, int]) -> None:
        nonlocal started_gc
        if phase == "start":
            started_gc = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started_gc) * 1000)

    gc.callbacks.append(collection)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for child in children:
            t = time.perf_counter()
            with ledger.read() as session:
                view = child_view(session, child)
            latency = (time.perf_counter() - t) * 1000
            assert view is not None and view["chronology"], child
            latencies.append(latency)
            by_history[len(view["chronology"])].append(latency)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        gc.callbacks.remove(collection)
    return {
        **summary(latencies, seconds),
        "cpu_ms_per_read": round(cpu / len(children) * 1000, 3),
        "gc_collections": {
            f"gen{g}": {"count": len(p), "max_ms": round(max(p), 2)} for g, p in sorted(pauses.items())
        },
        "by_history_length": {
            str(length): {
                "reads": len(ls),
                "p50_ms": round(percentile(ls, 50), 2),
                "p99_ms": round(percentile(ls, 99), 2),
            }
            for length, ls in sorted(by_history.items())
        },
    }


def steady_state(url: str) -> float:
    """``VACUUM (ANALYZE)`` the database (outside a transaction, as VACUUM must run): what
    autovacuum has long done to a deployment's tables. Returns its seconds."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - started


def run(
    database_url: str,
    children: int,
    events: int,
    requests: int,
    say: Callable[[str], None],
    *,
    generate: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sgledger-web-bench-") as tmp:
        settings = Settings.resolve(Path(tmp), database_url=database_url)
        keystore = Keystore(settings.keys_dir)
        keystore.init_root("partnership/bench")
        service_key = keystore.create_agency_key(SERVICE_AGENCY)
        ledger = Ledger(database_url)
        if generate:
            root = ChainSigner("partnership/bench", keystore.root_private_key())  # key registration only
            generated = history.generate(ledger, root, service_key, events, children, progress=say)
            say(
                f"generated {generated.events:,} events in {generated.seconds:,.0f} s "
                f"({generated.events / generated.seconds:,.0f}/s; {generated.cpu_seconds:,.0f} CPU-s in "
                f"{generated.workers} workers, PostgreSQL's own not counted)"
            )
            started = time.perf_counter()
            flags = write_views(database_url, children, events)
            views_s = time.perf_counter() - started
            say(f"view tables and {flags:,} flags written in {views_s:,.0f} s")
            vacuum_s = steady_state(database_url)
            say(f"VACUUM (ANALYZE) in {vacuum_s:,.0f} s")
            accounts = Accounts(database_url)
            accounts.add_user(LEAD, POLICE, "lead", PASSWORD)
            accounts.close()
            made: dict[str, Any] = {
                "events": generated.events,
                "generate_s": round(generated.seconds, 1),
                "generate_cpu_s": round(generated.cpu_seconds, 1),
                "generate_workers": generated.workers,
                "views_s": round(views_s, 1),
                "vacuum_s": round(vacuum_s, 1),
            }
        else:
            with ledger.read() as session:
                stored_children = session.scalar(select(func.count()).select_from(ChildRow))
                flags = session.scalar(select(func.count()).select_from(FlagRow)) or 0
            if stored_children != children:
                raise SystemExit(
                    f"the kept database holds {stored_children:,} children, not --children {children:,}"
                )
            made = {"events": ledger.count(), "generated": "earlier (--database kept)"}
        rng = random.Random(1)
        sample = [history.child_id(rng.randrange(children)) for _ in range(max(requests, 1000))]
        timed_view_reads(ledger, sample[:50])  # warm up
        view_read = timed_view_reads(ledger, sample)
        services = WebServices.open(settings, WebConfig(), deliver=False)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(services), port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            form = client.get("/sign-in").text
            token = form.split('name="csrf_token" value="')[1].split('"')[0]
            client.post("/sign-in", data={"email": LEAD, "password": PASSWORD, "csrf_token": token})
            pick = random.Random(2)
            timed(
                client, [f"/children/{history.child_id(pick.randrange(children))}" for _ in range(10)]
            )  # warm
            child = timed(
                client, [f"/children/{history.child_id(pick.randrange(children))}" for _ in range(requests)]
            )
            pages = max(1, flags // 50)
            my_flags = timed(
                client, [f"/flags?page_no={pick.randrange(1, min(pages, 20) + 1)}" for _ in range(requests)]
            )
        finally:
            server.should_exit = True
            thread.join(timeout=30)
        return {
            "machine": describe(),
            "load_average_1_5_15": [round(x, 1) for x in os.getloadavg()],
            "raw_ed25519_verify_per_s_one_core": round(verify_rate()),
            "database": make_url(database_url).get_backend_name(),
            "children": children,
            "flags": flags,
            **made,
            "child_view_read": view_read,
            "child_page": child,
            "my_flags": my_flags,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument(
        "--events", type=int, default=2_000_000, help="story events (key registrations extra)"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--server",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL URL; the benchmark creates its own database beside it (dropped unless --database)",
    )
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="keep the generated database under this name beside --server's (generated on the first "
        "run, read again without generating by later ones: an A/B on one ledger); drop it when done",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    name = args.database or f"sgledger_web_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        kept = (
            conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is not None
        )
        if not kept:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    say: Callable[[str], None] = (lambda _: None) if args.json else (lambda m: print(m, file=sys.stderr))
    url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
    try:
        result = run(url, args.children, args.events, args.requests, say, generate=not kept)
    finally:
        if not args.database:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"machine: {result['machine']}; load average {result['load_average_1_5_15']}; "
        f"raw Ed25519 verify {result['raw_ed25519_verify_per_s_one_core']:,}/s"
    )
    made = (
        f"generated in {result['generate_s']:,} s" if "generate_s" in result else "kept from an earlier run"
    )
    print(
        f"{result['children']:,} children, {result['events']:,} events, {result['flags']:,} flags "
        f"on PostgreSQL ({made})"
    )
    for label in ("child_view_read", "child_page", "my_flags"):
        r = result[label]
        print(
            f"  {label}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, "
            f"{r['requests_per_s']} requests/s ({r['requests']} one at a time)"
        )
    read = result["child_view_read"]
    print(
        f"  child_view_read: {read['cpu_ms_per_read']} ms CPU per read; "
        f"collections {read['gc_collections']}; by history length {read['by_history_length']}"
    )


if __name__ == "__main__":
    main()
