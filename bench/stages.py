"""Child projection in one process vs in two shard processes (docs/stages.md), per backend.

A ledger is filled by intake alone (``Applier(children=False)``), then the child projection
projects every child from the notification log: once by one process (``--shard 1/1``), once by
two processes side by side (``1/2`` and ``2/2``) on a second copy of the same ledger. Workers
are real processes (``python -m bench.stages --worker``), as `sgledger project --stage children`
runs. Printed per backend: wall seconds and CPU seconds of each worker, the throughput ratio
two/one by wall clock (meaningful on a quiet machine) and by CPU time (``one process's CPU /
the busier shard's CPU``: what two cores give when each shard has one; the database server's own
CPU is not in it), beside the raw Ed25519 verify rate of the same run. On a third copy the two
shards run one after the other: on a host shared with other work, their CPU seconds say how the
work divides (``ratio_cpu_one_after_the_other``) and what sharding adds in all
(``shards_cpu_over_one``) without the two shards competing for the same cores.

    python -m bench.stages --json [--children 400] [--history 10] [--max-batch 2000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import create_engine, make_url, text

from bench.growth import PARTNERSHIP, T0, Signers, life_event
from bench.machine import describe, peak_memory_mb, verify_rate, verify_rate_cpu
from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, Message
from consumers.projector.collector import collect_less
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger


def story(signers: Signers, children: int, history: int) -> list[dict[str, Any]]:
    events = list(signers.registrations())
    for n in range(history):  # one event per child per round: how live traffic arrives
        for c in range(children):
            events.append(life_event(signers, f"C-{c:05d}", n, T0 + timedelta(days=n, minutes=c)))
    return events


def fill(url: str, root: RootKey, events: list[dict[str, Any]]) -> float:
    """Intake only; returns its CPU seconds."""
    ledger = Ledger(url)
    applier = Applier(ledger, root, children=False, clock=lambda: T0 + timedelta(days=400))
    started = time.process_time()
    for start in range(0, len(events), 2000):
        applier.apply([Message(json.dumps(e).encode()) for e in events[start : start + 2000]])
    ledger.engine.dispose()
    return time.process_time() - started


def run_workers(
    url: str, root: RootKey, shards: int, max_batch: int, *, together: bool = True
) -> dict[str, Any]:
    """Start the workers, let each import and connect, then start them together: the wall time
    is the slowest worker's own (process start-up and exit are not projection). ``together=False``
    runs the shards one after the other instead: on a loaded host their CPU seconds then say how
    the work divides between shards without the two competing for the same cores."""
    public = root.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    command = [sys.executable, "-m", "bench.stages", "--worker", url, "--root", public]
    command += ["--max-batch", str(max_batch), "--shard"]
    workers = [
        subprocess.Popen(
            [*command, f"{i}/{shards}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for i in range(1, shards + 1)
    ]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    reports = []
    for w in workers:  # together: the wall time is the last one's own
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
        if not together:
            reports.append(json.loads(w.communicate()[0]))
    reports += [json.loads(w.communicate()[0]) for w in workers if together]
    return {
        "wall_s": max(r["wall_s"] for r in reports),
        "workers": reports,
        "busiest_cpu_s": max(r["cpu_s"] for r in reports),
    }


def worker(url: str, root_hex: str, shard: str, max_batch: int) -> None:
    root = RootKey(PARTNERSHIP, Ed25519PublicKey.from_public_bytes(bytes.fromhex(root_hex)))
    ledger = Ledger(url)
    at = T0 + timedelta(days=400)
    collect_less()  # as `sgledger project --stage children` does
    stage = ChildProjection(ledger, root, shard=Shard.parse(shard), clock=lambda: at, max_batch=max_batch)
    stage.lag()  # connected before the start
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, wall = time.process_time(), time.perf_counter()
    stats = stage.catch_up()
    print(
        json.dumps(
            {
                "shard": shard,
                "children": len(stats.children),
                "cpu_s": round(time.process_time() - cpu, 2),
                "wall_s": round(time.perf_counter() - wall, 2),
                "write_lock_wait_s": round(ledger.write_lock_wait_s, 2),  # SQLite: taking its write lock
                "peak_mb": round(peak_memory_mb(), 1),
            }
        )
    )


def fresh_postgres(server_url: str) -> str:
    name = f"bench_stages_{uuid.uuid4().hex[:8]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(server_url: str, urls: tuple[str, ...]) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for url in urls:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def measure(
    urls: tuple[str, str, str], root: RootKey, events: list[dict[str, Any]], max_batch: int
) -> dict[str, Any]:
    intake_cpu = [fill(url, root, events) for url in urls]
    one = run_workers(urls[0], root, 1, max_batch)
    two = run_workers(urls[1], root, 2, max_batch)
    apart = run_workers(urls[2], root, 2, max_batch, together=False)
    return {
        "events": len(events),
        "intake_cpu_s": round(intake_cpu[0], 2),
        "one": one,
        "two": two,
        "two_one_after_the_other": apart,
        "ratio_wall": round(one["wall_s"] / two["wall_s"], 2),
        "ratio_cpu": round(one["busiest_cpu_s"] / two["busiest_cpu_s"], 2),
        "ratio_cpu_one_after_the_other": round(one["busiest_cpu_s"] / apart["busiest_cpu_s"], 2),
        "shards_cpu_over_one": round(sum(w["cpu_s"] for w in apart["workers"]) / one["busiest_cpu_s"], 2),
        "one_events_per_cpu_s": round(len(events) / one["busiest_cpu_s"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--children", type=int, default=400)
    parser.add_argument("--history", type=int, default=10, help="events per child")
    parser.add_argument("--max-batch", type=int, default=2000, help="notifications per transaction")
    parser.add_argument(
        "--postgres-url", help="a server URL (e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--shard", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.root, args.shard, args.max_batch)
        return
    signers = Signers.fresh()
    events = story(signers, args.children, args.history)
    result: dict[str, Any] = {
        "machine": describe(),
        "raw_verify_per_s_one_core": round(verify_rate()),  # wall clock, as every bench prints
        "raw_verify_per_s_one_core_cpu": round(verify_rate_cpu()),
        "children": args.children,
        "history": args.history,
    }
    with tempfile.TemporaryDirectory() as directory:
        a, b, c = (f"sqlite:///{Path(directory) / f'{n}.sqlite'}" for n in ("one", "two", "apart"))
        result["sqlite"] = measure((a, b, c), signers.root_key(), events, args.max_batch)
    if args.postgres_url:
        urls = (
            fresh_postgres(args.postgres_url),
            fresh_postgres(args.postgres_url),
            fresh_postgres(args.postgres_url),
        )
        try:
            result["postgresql"] = measure(urls, signers.root_key(), events, args.max_batch)
        finally:
            drop_postgres(args.postgres_url, urls)
    result["raw_verify_per_s_one_core_cpu_after"] = round(verify_rate_cpu())
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
