"""Events/s from `publish` to flag, through the real path, on the embedded default.

    python bench/ingest.py [--json] [--events 10000] [--children 500] [--layout one|stages|both]
                           [--publish-chunk 500] [--publishers-nice N] [--verify-workers N]
                           [--no-replay] [--no-stages] [--logs DIR]
                           [--database-url URL (with one --layout)]
    python bench/ingest.py --offered-rate 100 --duration 60 [--json] [--database-url URL] [--verify-workers N]

End to end (bench/endtoend.py): N signed events from four agencies about many children are
published by four agency processes through the SDK into the durable outbox (``--publish-chunk``
drafts per transaction), while ``sgledger relay`` sends them to the embedded tansu broker and
``sgledger project`` projects them, every party its own process as a partnership runs them: the
projector as one process (``one``) and, on fresh topics and a fresh ledger, with the stages
apart (``stages``: intake and two child shards). Each run is timed from the publishers' start to
the last flag written, with the CPU per event of each process (publishers, relay, broker,
projector) read from /proc, their peak memory, and the machine's raw Ed25519 verify rate beside
them. The faster layout's rate is ``end_to_end_events_per_s``. Each run also says where its
processes waited (``waits``: each main thread's share of the wall on a core, waiting for a core,
and asleep; the steady rate from 10% to 90% of the events projected, the fill and the drain;
bench/endtoend.py), and ``--logs DIR`` keeps the services' logs, a line per batch. 10,000
events is a short run (the fill is 10-20% of it), but a longer one changes the work per event
(more children per batch, or longer histories: docs/notes/end-to-end.md), so the default stays
and the steady rate is reported beside the whole run's.

The first run's topics are then replayed twice into empty ledgers (skipped with
``--no-replay``): by one projector process (intake and child projection in one transaction per
batch, "projection alone"), and with the stages apart as deployed for two cores
(docs/stages.md): intake in this process with its verification workers, and two child shards
(``--stage children --shard 1/2`` and ``2/2``) as their own processes, started together; that
run is done when intake holds every event and both shards have projected them all ("stages",
skipped with ``--no-stages``).

With ``--offered-rate R --duration S`` it measures latency under a steady load instead: events
are published at R per second for S seconds, one outbox transaction each (as agency systems
publish), while ``sgledger relay`` and ``sgledger project`` run as their own processes against
the embedded broker, exactly as deployed; a reader polls the ledger every 10 ms and notes when
each event became visible. The projector writes the event, the child's view and its flags in one
transaction, so that moment is when the flag is there for a lead to read. It prints p50 / p95 /
p99 / max of publish (outbox commit) -> visible, the projector's and relay's peak memory and CPU.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from bench.endtoend import LAYOUTS, publisher_worker, run_layout, stop_services, wait_until
from bench.machine import (
    canonical_rate,
    describe,
    peak_memory_mb,
    verify_rate,
    verify_rate_all_cores,
    verify_rate_cpu,
)
from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, ApplyStats
from consumers.projector.collector import collect_less
from consumers.projector.runner import Projector
from consumers.projector.verifier import DEFAULT_WORKERS, Verifier
from ledger.keyregistry import RootKey
from ledger.keystore import Keystore, RootInfo
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from producers.outbox import Outbox, OutboxRow
from producers.sdk import Draft, Producer
from transport.broker import EmbeddedBroker
from transport.kafka import KafkaSettings

AGENCIES = ("police/avon-somerset", "csc/somerset", "gp/L85001", "phn/somerset")
T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


def drafts(events: int, children: int) -> dict[str, list[Draft]]:
    """A realistic mix per child: registration, GP link, incidents, notifications, referrals."""
    by_agency: dict[str, list[Draft]] = {a: [] for a in AGENCIES}
    n = 0
    while n < events:
        child = f"C-{n % children:05d}"
        at = T0 + timedelta(minutes=n)
        kind = (n // children) % 5
        if kind == 0:
            by_agency["csc/somerset"].append(Draft("child.registered", child, {"dob": "2023-11-01"}, at, at))
        elif kind == 1:
            by_agency["gp/L85001"].append(
                Draft("gp.registered", child, {"person": child, "practice": "L85001"}, at, at)
            )
        elif kind in (2, 3):
            data = {
                "incident_ref": f"INC-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": [{"person": f"P-{child}-m", "role": "victim"}],
            }
            by_agency["police/avon-somerset"].append(Draft("incident.reported", child, data, at, at))
        else:
            data = {"to": "gp/L85001", "about": [f"INC-{n - children}"], "channel": "secure email"}
            by_agency["police/avon-somerset"].append(Draft("notification.sent", child, data, at, at))
        n += 1
    return by_agency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=500)
    parser.add_argument("--database-url", help="ledger database (default: SQLite in a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--offered-rate", type=float, help="events/s published steadily (latency mode, with --duration)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load (latency mode)")
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"verification worker processes of the in-process projectors (default {DEFAULT_WORKERS}, as "
        "`sgledger project`; 0: verify in the projector's process)",
    )
    parser.add_argument("--no-stages", action="store_true", help="skip the replay with the stages apart")
    parser.add_argument(
        "--layout",
        choices=(*LAYOUTS, "both"),
        default="both",
        help="end to end with one projector process, the stages apart (intake + 2 child shards), "
        "or both, one after the other (default)",
    )
    parser.add_argument(
        "--publish-chunk", type=int, default=500, help="drafts per outbox transaction of each publisher"
    )
    parser.add_argument(
        "--publishers-nice",
        type=int,
        default=0,
        help="run the agency publishers at this nice value (e.g. 10): the partnership's services "
        "get a core first and the publishers take what they leave, as if the agencies' systems ran "
        "elsewhere, their CPU still paid from these cores (docs/notes/end-to-end.md); 0 (default): "
        "every process alike, the figures of earlier rounds",
    )
    parser.add_argument("--no-replay", action="store_true", help="end to end only: skip the replays")
    parser.add_argument(
        "--logs", type=Path, help="copy the end-to-end services' logs (a line per batch) into this directory"
    )
    parser.add_argument("--shard-worker", nargs=4, help=argparse.SUPPRESS)  # URL ROOT-HEX PARTNERSHIP i/n
    # OUTBOX KEYS PREFIX AGENCY CHUNK
    parser.add_argument("--publisher-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shard_worker:
        shard_worker(*args.shard_worker)
        return
    if args.publisher_worker:
        outbox_url, keys, prefix, agency, chunk = args.publisher_worker
        mine = drafts(args.events, args.children)[agency]
        publisher_worker(outbox_url, keys, prefix, agency, int(chunk), mine)
        return
    say: Callable[[str], None] = (lambda _: None) if args.json else print
    if args.offered_rate:
        offered_load(
            args.offered_rate, args.duration, args.children, args.database_url, args.json, args.verify_workers
        )
        return
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)
    if args.database_url and len(layouts) > 1:
        parser.error("--database-url holds one run's ledger: give --layout one or --layout stages")
    work = scratch_dir()
    keystore = Keystore(work / "keys")
    root = keystore.init_root("partnership/bench")
    for agency in AGENCIES:
        keystore.create_agency_key(agency)
    say(f"machine: {describe()}")
    plan = drafts(args.events, args.children)
    total = args.events + len(AGENCIES)
    with EmbeddedBroker(work / "broker") as broker:
        runs = [
            run_layout(
                layout, work=work, broker=broker, keystore=keystore, root=root, plan=plan, at=T0,
                database_url=args.database_url, verify_workers=args.verify_workers,
                chunk=args.publish_chunk, bench_script=__file__, logs_to=args.logs,
                publishers_nice=args.publishers_nice,
                bench_args=["--events", str(args.events), "--children", str(args.children)],
            ).report()
            for layout in layouts
        ]  # fmt: skip
        # The replays below read the first run's topics (every event, as published).
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"e2e-{layouts[0]}")
        replay = None if args.no_replay else projection_replays(args, kafka, root, work, total)
    sample = {"id": "x" * 36, "data": {"a": [1, 2, 3]}}
    one, both = verify_rate(), verify_rate_all_cores()
    # CPU time: on a shared host the wall-clock rates measure the load as much as the code.
    one_cpu = verify_rate_cpu()
    canonical = canonical_rate(sample)
    figures: dict[str, Any] = {
        "machine": describe(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "events": args.events,
        "children": args.children,
        "agencies": len(AGENCIES),
        "publish_chunk": args.publish_chunk,
        "publishers_nice": args.publishers_nice,
        "verify_workers": args.verify_workers,
        # the faster layout's rate: what the partnership gets on these two cores
        "end_to_end_events_per_s": max(run["events_per_s"] for run in runs),
        "end_to_end": {run["layout"]: run for run in runs},
    }
    if replay is not None:
        projection, projection_cpu = replay["events_per_s"], total / replay["cpu_s"]
        figures |= {
            "projection_events_per_s": round(projection),
            "projection_vs_raw_verify_one_core": round(projection / one, 4),
            "projection_cpu_ms_per_event": round(1000 / projection_cpu, 3),
            "projection_main_process_cpu_ms_per_event": round(1000 * replay["main_cpu_s"] / total, 3),
            "projection_workers_cpu_ms_per_event": round(1000 * replay["workers_cpu_s"] / total, 3),
            "projection_held_for_a_predecessor": replay["held"],
            # of the messages verified, the share the projector's own process checked (the rest
            # its workers): a batch with nothing verified ahead (the first) is shared with them
            "projection_main_process_verified_share": replay["verified_here"],
            "projection_vs_raw_verify_cpu": round(projection_cpu / one_cpu, 4),
        }
        if replay["stages"] is not None:
            stages = replay["stages"]
            figures["stages"] = stages | {
                "vs_raw_verify_one_core": round(stages["events_per_s"] / one, 4),
                "vs_one_process": round(stages["events_per_s"] / projection, 2),
            }
    figures |= {
        "raw_verify_per_cpu_s": round(one_cpu),
        "peak_memory_mb": round(peak_memory_mb()),
        "raw_verify_per_s_one_core": round(one),
        "raw_verify_per_s_both_cores": round(both),
        "canonical_json_per_s_one_core": round(canonical),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"events: {args.events} about {args.children} children from {len(AGENCIES)} agencies")
    for run in runs:
        print(
            f"end to end, publish -> flag, {run['layout']:>6}: {run['events_per_s']:6.0f} events/s "
            f"({run['wall_s']:.1f} s; publishers done at {run['publish_wall_s']:.1f} s), "
            f"{run['cpu_ms_per_event']:.3f} ms CPU/event, {run['cores_busy']:.2f} cores busy"
        )
        print(
            f"    everything at the broker at {run['relayed_wall_s']:.1f} s; the relay's CPU until then "
            f"{run['relay_cpu_ms_per_event_until_all_sent']:.3f} ms/event (after it: idle polling)"
        )
        waits = run["waits"]
        if waits:
            shares = waits["main_thread_share_of_wall"].items()
            print(
                f"    steady (10% -> 90% projected) {waits['steady_events_per_s']} events/s, fill "
                f"{waits['fill_s_to_10_percent']} s, drain {waits['drain_s_from_90_percent']} s"
            )
            print("    asleep: " + ", ".join(f"{name} {share['asleep']:.2f}" for name, share in shares))
        for role, part in run["by_role"].items():
            print(
                f"    {role:>10}: {part['cpu_ms_per_event']:.3f} ms CPU/event in {part['processes']} "
                f"process(es)" + (f", peak {part['peak_mb']:.0f} MB" if "peak_mb" in part else "")
            )
    if replay is not None:
        rate = figures["projection_events_per_s"]
        print(f"projection alone (verify, ledger, views, flags): {rate:6.0f} events/s")
        print(
            f"projection CPU: {figures['projection_cpu_ms_per_event']:.3f} ms/event, "
            f"{figures['projection_vs_raw_verify_cpu']:.3f} of a raw verify per CPU second ({one_cpu:.0f}/s)"
        )
        if "stages" in figures:
            stages = figures["stages"]
            print(
                f"stages apart (intake + 2 child shards): {stages['events_per_s']:6.0f} events/s = "
                f"{stages['vs_one_process']:.2f}x one process; CPU {stages['cpu_ms_per_event']:.3f} ms/event"
            )
    print(f"peak memory (this process): {peak_memory_mb():.0f} MB")
    print(f"raw Ed25519 verify (cryptography): {one:9.0f}/s one core, {both:.0f}/s both")
    print(f"RFC 8785 canonical JSON:           {canonical:9.0f}/s one core")


def projection_replays(
    args: argparse.Namespace, kafka: KafkaSettings, root: RootInfo, work: Path, total: int
) -> dict[str, Any]:
    """Projection alone: the published topics replayed into empty ledgers, by one projector
    process and (unless ``--no-stages``) with the stages apart (module docstring)."""
    replay_ledger = Ledger(f"sqlite:///{work / 'replay.sqlite'}")
    verifier = Verifier(args.verify_workers)
    replayer = Projector(Applier(replay_ledger, root.root_key(), verifier=verifier), kafka, group_id=None)
    time.sleep(1.0 if args.verify_workers else 0)  # the workers' start is not the replay's
    replay_started, replay_cpu = time.perf_counter(), time.process_time()
    workers_cpu = _children_cpu()
    while replay_ledger.count() < total:
        replayer.poll_once(timeout_ms=100)
    replayed, replay_main_cpu = time.perf_counter(), time.process_time() - replay_cpu
    replayer.close()
    verifier.close()  # reaps the workers: their CPU time is then in RUSAGE_CHILDREN
    workers_cpu = _children_cpu() - workers_cpu
    replay_cpu = replay_main_cpu + workers_cpu
    with replay_ledger.read() as session:  # held for a predecessor in a later batch
        replay_held = session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0
    stages = None if args.no_stages else stages_replay(kafka, root, work, total, args.verify_workers)
    return {
        "events_per_s": total / (replayed - replay_started),
        "cpu_s": replay_cpu,
        "main_cpu_s": replay_main_cpu,
        "workers_cpu_s": workers_cpu,
        "held": replay_held,
        "verified_here": _verified_here(verifier),
        "stages": stages,
    }


def stages_replay(
    kafka: KafkaSettings, root: RootInfo, work: Path, total: int, workers: int
) -> dict[str, Any]:
    """Replay the topics with the stages apart (module docstring): wall and CPU seconds, the
    CPU split between intake, its verification workers and the two shards."""
    url = f"sqlite:///{work / 'stages.sqlite'}"
    ledger = Ledger(url)  # the schema exists before the shards connect
    public = root.root_key().public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    shards = [
        subprocess.Popen(
            [sys.executable, __file__, "--shard-worker", url, public, root.partnership, f"{i}/2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for shard in shards:
        assert shard.stdout is not None and shard.stdout.readline().strip() == "ready"
    verifier = Verifier(workers)
    intake = Projector(
        Applier(ledger, root.root_key(), children=False, verifier=verifier), kafka, group_id=None
    )
    time.sleep(1.0 if workers else 0)  # the workers' start is not the replay's
    started, cpu, children_cpu = time.perf_counter(), time.process_time(), _children_cpu()
    for shard in shards:
        assert shard.stdin is not None
        shard.stdin.write("go\n")
        shard.stdin.flush()
    while ledger.count() < total:
        intake.poll_once(timeout_ms=100)
    intake_wall, intake_cpu = time.perf_counter() - started, time.process_time() - cpu
    intake.close()
    verifier.close()  # reaped before the shards: RUSAGE_CHILDREN then holds only the workers
    workers_cpu = _children_cpu() - children_cpu
    for shard in shards:  # intake is done: each shard finishes what is left, then reports
        assert shard.stdin is not None
        shard.stdin.write("finish\n")
        shard.stdin.flush()
    reports = [json.loads(shard.communicate()[0]) for shard in shards]
    ledger.engine.dispose()
    wall = max(intake_wall, *(r["wall_s"] for r in reports))
    cpu_total = intake_cpu + workers_cpu + sum(r["cpu_s"] for r in reports)
    return {
        "events_per_s": round(total / wall),
        "wall_s": round(wall, 2),
        "intake_wall_s": round(intake_wall, 2),
        "cpu_ms_per_event": round(1000 * cpu_total / total, 3),
        "intake_cpu_ms_per_event": round(1000 * intake_cpu / total, 3),
        "verify_workers_cpu_ms_per_event": round(1000 * workers_cpu / total, 3),
        "intake_verified_share": _verified_here(verifier),
        "shards": reports,
    }


def shard_worker(url: str, root_hex: str, partnership: str, shard: str) -> None:
    """One child shard of ``stages_replay``: ready, then project from "go" until "finish" and
    every notification after it is projected; prints its own wall and CPU seconds."""
    root = RootKey(partnership, Ed25519PublicKey.from_public_bytes(bytes.fromhex(root_hex)))
    collect_less()  # as `sgledger project --stage children` does
    stage = ChildProjection(Ledger(url), root, shard=Shard.parse(shard))
    stage.lag()  # connected before the start
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, wall = time.process_time(), time.perf_counter()
    finish = threading.Event()

    def wait_for_finish() -> None:
        sys.stdin.readline()
        finish.set()

    threading.Thread(target=wait_for_finish, daemon=True).start()
    stats = ApplyStats()
    stage.run(finish, lambda batch, _: stats.add(batch), idle_wait_s=0.05)
    stats.add(stage.catch_up())
    report = {
        "shard": shard,
        "children": len(stats.children),
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "peak_mb": round(peak_memory_mb(), 1),
    }
    print(json.dumps(report), flush=True)


def _verified_here(verifier: Verifier) -> float:
    """The share of the messages ``verifier`` checked that its own process checked."""
    checked = verifier.checked_here + verifier.checked_by_workers
    return round(verifier.checked_here / checked, 3) if checked else 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def offered_load(
    rate: float, duration: float, children: int, database_url: str | None, as_json: bool, workers: int
) -> None:
    """Publish at ``rate`` for ``duration`` s with relay and projector as separate processes;
    print the publish -> visible latency (see the module docstring)."""
    work = scratch_dir()
    keystore = Keystore(work / "keys")
    root = keystore.init_root("partnership/bench")
    outbox = Outbox(f"sqlite:///{work / 'outbox.sqlite'}")
    url = database_url or f"sqlite:///{work / 'ledger.sqlite'}"
    ledger = Ledger(url)
    count = int(rate * duration)
    plan = sorted(
        ((agency, draft) for agency, items in drafts(count, children).items() for draft in items),
        key=lambda pair: pair[1].time or T0,
    )
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    with EmbeddedBroker(work / "broker") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        partnership = Producer(root.partnership, keystore, outbox, topics=kafka.topics)
        for agency in AGENCIES:
            public = keystore.create_agency_key(agency).public_key()
            event = partnership.publish(
                "agency.key.registered",
                agency,
                {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)},
                time=T0 - timedelta(days=1),
                recorded=T0 - timedelta(days=1),
            )
            published[event["id"]] = time.time()
        registrations = set(published)
        producers = {a: Producer(a, keystore, outbox, topics=kafka.topics) for a in AGENCIES}
        command = [sys.executable, "-m", "sgledger", "--data-dir", str(work), "--database-url", url,
                   "--bootstrap-servers", broker.bootstrap_servers]  # fmt: skip
        logs = [(work / f"{name}.log").open("wb") for name in ("relay", "project")]
        services = [
            subprocess.Popen([*command, *name.split()], stdout=log, stderr=subprocess.STDOUT)
            for name, log in zip(("relay", f"project --verify-workers {workers}"), logs, strict=True)
        ]
        stop = threading.Event()
        reader = threading.Thread(target=_watch, args=(ledger, seen, stop))
        reader.start()
        try:
            wait_until(lambda: len(seen) >= len(AGENCIES), 120, services, "the key registrations")
            started = time.perf_counter()
            # One publishing thread per agency (each agency's system publishes on its own), every
            # event at its place in the schedule: event n at n / rate seconds.
            publishers = [
                threading.Thread(
                    target=_publish_on_schedule,
                    args=(producers[agency], [(n, d) for n, (a, d) in enumerate(plan) if a == agency]),
                    kwargs={"rate": rate, "started": started, "published": published},
                )
                for agency in AGENCIES
            ]
            for publisher in publishers:
                publisher.start()
            for publisher in publishers:
                publisher.join()
            offered = len(plan) / (time.perf_counter() - started)
            wait_until(lambda: len(seen) >= len(published), 300, services, "every event")
        finally:
            stop.set()
            reader.join()
            stop_services(services)
            for log in logs:
                log.close()
    children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with outbox._transaction() as session:
        rows = session.execute(select(OutboxRow.event_id, OutboxRow.sent_at)).tuples().all()
    sent = {i: (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() for i, t in rows if t is not None}
    measured = [i for i in published if i in seen and i not in registrations]
    latencies = sorted(seen[i] - published[i] for i in measured)
    relayed = sorted(sent[i] - published[i] for i in measured if i in sent)
    q, r = statistics.quantiles(latencies, n=100), statistics.quantiles(relayed, n=100)
    one = verify_rate()
    figures: dict[str, Any] = {
        "machine": describe(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "offered_events_per_s": round(offered, 1),
        "verify_workers": workers,
        "duration_s": duration,
        "events": len(plan),
        "children": children,
        "latency_publish_to_flag_s": {
            "p50": round(q[49], 3),
            "p95": round(q[94], 3),
            "p99": round(q[98], 3),
            "max": round(latencies[-1], 3),
        },
        # the relay's part: publish -> acknowledged by the broker (outbox sent_at)
        "latency_publish_to_broker_s": {
            "p50": round(r[49], 3),
            "p95": round(r[94], 3),
            "p99": round(r[98], 3),
        },
        # the largest resident set among the services (relay, projector): the projector's
        "services_peak_memory_mb": round(children_usage.ru_maxrss / 1024),
        "services_cpu_s": round(children_usage.ru_utime + children_usage.ru_stime, 1),
        "raw_verify_per_s_one_core": round(one),
    }
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    latency = figures["latency_publish_to_flag_s"]
    print(f"machine: {figures['machine']} (load average {figures['load_average_1m']})")
    print(f"offered: {offered:.1f} events/s for {duration:.0f} s ({len(plan)} events, {children} children)")
    print("latency publish -> flag visible: " + ", ".join(f"{k} {v:.3f} s" for k, v in latency.items()))
    relay = figures["latency_publish_to_broker_s"]
    print("of which publish -> broker (relay): " + ", ".join(f"{k} {v:.3f} s" for k, v in relay.items()))
    print(f"services: peak memory {figures['services_peak_memory_mb']} MB, CPU {figures['services_cpu_s']} s")
    print(f"raw Ed25519 verify (cryptography): {one:9.0f}/s one core")


def _publish_on_schedule(
    producer: Producer,
    schedule: list[tuple[int, Draft]],
    rate: float,
    started: float,
    published: dict[str, float],
) -> None:
    for n, draft in schedule:
        time.sleep(max(0.0, started + n / rate - time.perf_counter()))
        event = producer.publish(
            draft.event_type, draft.child, draft.data, time=draft.time, recorded=draft.recorded
        )
        published[event["id"]] = time.time()


def _watch(ledger: Ledger, seen: dict[str, float], stop: threading.Event) -> None:
    """Note when each accepted event becomes visible to a reader (polled every 10 ms)."""
    position = 0
    while not stop.is_set():
        with ledger.read() as session:
            rows = session.execute(
                select(AcceptedEvent.position, AcceptedEvent.event_id)
                .where(AcceptedEvent.position > position)
                .order_by(AcceptedEvent.position)
            ).all()
        now = time.time()
        for row_position, event_id in rows:
            seen.setdefault(event_id, now)
            position = max(position, row_position)
        stop.wait(0.01)


_SCRATCH: list[Path] = []


def scratch_dir() -> Path:
    """A directory for one run's ledger, outbox, broker and service logs (~175 MB): removed when
    the run succeeds (runs were filling /tmp), kept with its logs when it fails."""
    work = Path(tempfile.mkdtemp(prefix="sgledger-bench-"))
    _SCRATCH.append(work)
    return work


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        for kept in _SCRATCH:
            print(f"kept for its logs: {kept}", file=sys.stderr)
        raise
    for done in _SCRATCH:
        shutil.rmtree(done, ignore_errors=True)
