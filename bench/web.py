"""Web workspace latency: the Child page and My flags, one request at a time, on PostgreSQL.

    python bench/web.py [--children 100000] [--events 2000000] [--requests 300] [--json]
                        [--server postgresql+psycopg://postgres@127.0.0.1:5432/test]

A fresh database is created beside ``--server``'s and dropped afterwards. The history is signed
and written straight into the ledger (``bench.audit.generate_history``: registration, GP link and
incidents per child); the view tables the projector would keep (children, people, agencies
involved, two open flags per child concerning the police force) are written in bulk beside it,
because projecting millions of events through Kafka would take hours and the pages read only
those tables. The server is the real application (``web.app.create_app``) under uvicorn on
loopback, signed in as a police lead whose agency is involved with every child; each page view
commits its signed ``access.recorded`` to the outbox as in production, while delivery (broker,
projector) is off so that only the page is timed. Prints p50/p95/p99 latency and requests/s for
random children and for My flags pages, with the machine and its raw Ed25519 verify rate.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from bench.audit import AGENCIES, T0, generate_history
from bench.machine import describe, verify_rate
from consumers.alerter.sink import free_port
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from ledger.vocabulary import SERVICE_AGENCY
from sgledger.settings import Settings
from views.models import AgencyRow, ChildRow, FlagRow, PersonRow
from web.accounts import Accounts
from web.app import create_app
from web.services import WebConfig, WebServices

LEAD, PASSWORD = "lead@police.example", "benchmark password"
POLICE = "police/avon-somerset"
VIEW_BATCH = 5000


def write_views(ledger: Ledger, children: int, events: int) -> None:
    per_child = max(1, events // children)
    last = T0 + timedelta(minutes=events)
    for start in range(0, children, VIEW_BATCH):
        ids = [f"C-{n:06d}" for n in range(start, min(children, start + VIEW_BATCH))]
        with ledger.writer() as session:
            session.execute(
                insert(ChildRow),
                [
                    {
                        "child": c,
                        "dob": "2023-11-01",
                        "event_count": per_child,
                        "first_recorded": T0,
                        "last_recorded": last,
                        "gp_practices": '["L85001"]',
                        "schools": "[]",
                    }
                    for c in ids
                ],
            )
            session.execute(
                insert(PersonRow),
                [
                    {"child": c, "person": f"P-{c}-m", "roles": '["mother", "victim"]', "gp_practices": "[]"}
                    for c in ids
                ],
            )
            session.execute(
                insert(AgencyRow),
                [
                    {"child": c, "agency": a, "aware_since": T0, "via": "source"}
                    for c in ids
                    for a in AGENCIES
                ],
            )
            session.execute(
                insert(FlagRow),
                [
                    _flag(c, n, rule)
                    for n, c in enumerate(ids, start)
                    for rule in ("gp-not-notified", "incident-not-triaged")
                ],
            )


def _flag(child: str, n: int, rule: str) -> dict[str, Any]:
    due = T0 + timedelta(minutes=n)
    flag_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{child}|{rule}"))
    concerns = ["gp/L85001", POLICE] if rule == "gp-not-notified" else [POLICE]
    payload = {
        "id": flag_id,
        "rule": rule,
        "version": 1,
        "child": child,
        "severity": "high",
        "status": "open",
        "title": "GP practice not told of a domestic-abuse incident",
        "due": due.isoformat(),
        "evidence": [],
        "concerns": concerns,
        "source": "CSPR Child Charlie 2.14",
        "explanation": "...",
        "action": "Send the incident to the GP practice named in this flag.",
        "detail": f"gp/L85001 not told of incident INC-{n}",
        "acknowledged_by": None,
        "resolved_by": None,
        "resolved_at": None,
        "dismissed_by": None,
        "dismissed_reason": None,
    }
    return {
        "id": flag_id,
        "rule": rule,
        "version": 1,
        "child": child,
        "severity": "high",
        "status": "open",
        "due": due,
        "payload": json.dumps(payload),
        "raised_at": due,
        "updated_at": due,
        "changes": 1,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(client: httpx.Client, paths: list[str]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        response = client.get(path)
        latencies.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    total = time.perf_counter() - started
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "requests_per_s": round(len(paths) / total, 1),
        "requests": len(paths),
    }


def run(database_url: str, children: int, events: int, requests: int, progress: bool) -> dict[str, Any]:
    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="sgledger-web-bench-") as tmp:
        settings = Settings.resolve(Path(tmp), database_url=database_url)
        keystore = Keystore(settings.keys_dir)
        keystore.init_root("partnership/bench")
        keystore.create_agency_key(SERVICE_AGENCY)
        ledger = Ledger(database_url)
        started = time.perf_counter()
        generate_history(ledger, keystore.root_private_key(), "partnership/bench", events, children=children)
        generated = time.perf_counter() - started
        say(f"generated {events:,} events in {generated:,.0f} s")
        write_views(ledger, children, events)
        accounts = Accounts(database_url)
        accounts.add_user(LEAD, POLICE, "lead", PASSWORD)
        accounts.close()
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
            rng = random.Random(1)
            timed(client, [f"/children/C-{rng.randrange(children):06d}" for _ in range(10)])  # warm up
            child = timed(client, [f"/children/C-{rng.randrange(children):06d}" for _ in range(requests)])
            pages = max(1, 2 * children // 50)
            flags = timed(
                client, [f"/flags?page_no={rng.randrange(1, min(pages, 20) + 1)}" for _ in range(requests)]
            )
        finally:
            server.should_exit = True
            thread.join(timeout=30)
        return {
            "machine": describe(),
            "raw_ed25519_verify_per_s_one_core": round(verify_rate()),
            "database": make_url(database_url).get_backend_name(),
            "children": children,
            "events": events,
            "flags": 2 * children,
            "generate_s": round(generated, 1),
            "child_page": child,
            "my_flags": flags,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--server",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL URL; the benchmark creates and drops its own database beside it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    name = f"sgledger_web_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
        result = run(url, args.children, args.events, args.requests, progress=not args.json)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"machine: {result['machine']}; raw Ed25519 verify {result['raw_ed25519_verify_per_s_one_core']:,}/s"
    )
    print(
        f"{result['children']:,} children, {result['events']:,} events, {result['flags']:,} flags "
        "on PostgreSQL"
    )
    for label in ("child_page", "my_flags"):
        r = result[label]
        print(
            f"  {label}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, "
            f"{r['requests_per_s']} requests/s ({r['requests']} one at a time)"
        )


if __name__ == "__main__":
    main()
