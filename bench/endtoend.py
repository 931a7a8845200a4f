"""End to end, publish -> flag, with every party in its own process (bench/ingest.py's default mode).

What a partnership runs on one machine with the embedded broker: each agency's system publishes
through the SDK into the durable outbox in batches (one process per agency, one outbox
transaction per ``chunk`` drafts), ``sgledger relay`` sends the outbox to the broker (tansu, its
own process), and the projector runs as ``sgledger project``: either one process (intake and
child projection in one transaction, with its verification worker) or the stages apart
(``--stage intake`` and two ``--stage children`` shards, docs/stages.md). The clock runs from the
moment the publishers are told to go until the last event's flags are written: the ledger holds
every event and, with the stages apart, both shards have projected up to the last accepted
position.

Why processes: the earlier throughput mode ran publisher, relay and projector as threads of the
benchmark's process, under one GIL, so it could never use both cores and its figure was not what
a deployment gets (issue 13).

CPU is read from ``/proc`` for each service's process tree (the service, its verification workers,
and the CPU of children it already reaped), once when the publishers start and once when the
last flag is written, so start-up (imports, group join, worker spawn) is not charged to the
events; each publisher reports its own CPU from "go" to its last commit. Peak memory is each
process's high-water mark (VmHWM). The benchmark's own process (which polls the ledger every
50 ms to see the end) is reported apart: it is the measurement, not the partnership.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select, text

from bench.machine import peak_memory_mb
from ledger.keystore import Keystore, RootInfo
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from ledger.topics import Topics
from producers.outbox import Outbox
from producers.sdk import Draft, Producer
from transport.broker import EmbeddedBroker
from views.models import FlagRow

_TICKS = os.sysconf("SC_CLK_TCK")
LAYOUTS = ("one", "stages")


@dataclass
class Service:
    """A started process and what it is for (``role``: relay, projector, intake, shard)."""

    role: str
    process: subprocess.Popen[bytes]
    cpu_at_go: float = 0.0
    cpu_at_end: float = 0.0
    peak_mb: float = 0.0
    processes: int = 1

    def sample(self) -> float:
        cpu, self.processes, self.peak_mb = tree_usage(self.process.pid)
        return cpu


@dataclass
class Run:
    """One layout's run: the figures ``report`` prints."""

    layout: str
    events: int
    wall_s: float
    publish_wall_s: float
    services: list[Service]
    broker_cpu_s: float
    publishers: list[dict[str, Any]]
    monitor_cpu_s: float
    flags: int
    quarantined: int
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        per_event = 1000 / self.events
        roles: dict[str, dict[str, Any]] = {
            "publishers": {
                "processes": len(self.publishers),
                "cpu_ms_per_event": round(per_event * sum(p["cpu_s"] for p in self.publishers), 3),
                "peak_mb": max(p["peak_mb"] for p in self.publishers),
                "nice": sorted({p["nice"] for p in self.publishers}),
            },
        }
        for service in self.services:
            role = roles.setdefault(service.role, {"processes": 0, "cpu_ms_per_event": 0.0, "peak_mb": 0.0})
            role["processes"] += service.processes
            role["cpu_ms_per_event"] = round(
                role["cpu_ms_per_event"] + per_event * (service.cpu_at_end - service.cpu_at_go), 3
            )
            role["peak_mb"] = max(role["peak_mb"], round(service.peak_mb, 1))
        roles["broker"] = {"processes": 1, "cpu_ms_per_event": round(per_event * self.broker_cpu_s, 3)}
        total = sum(r["cpu_ms_per_event"] for r in roles.values())
        return {
            "layout": self.layout,
            "events_per_s": round(self.events / self.wall_s),
            "wall_s": round(self.wall_s, 2),
            "publish_wall_s": round(self.publish_wall_s, 2),
            "cpu_ms_per_event": round(total, 3),
            # CPU seconds per wall second: 2.0 is both cores busy the whole run
            "cores_busy": round(total * self.events / 1000 / self.wall_s, 2),
            # what the whole path would need at the target, at this CPU per event
            "cores_needed_at_1500_per_s": round(1.5 * total, 2),
            "by_role": roles,
            "benchmark_monitor_cpu_ms_per_event": round(per_event * self.monitor_cpu_s, 3),
            "flags": self.flags,
            "quarantined": self.quarantined,
            **self.extra,
        }


@dataclass
class Timeline:
    """The monitor's samples (module docstring): per named process its main thread's
    (on-core ns, run-queue ns) at each sample, and the events projected by then."""

    pids: dict[str, int]
    times: list[float] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)
    sched: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def sample(self, at: float, projected: int) -> None:
        self.times.append(at)
        self.progress.append(projected)
        for name, pid in self.pids.items():
            threads = name == "broker"  # tansu works on its runtime's threads, not its main one
            sample = _schedstat(pid, threads) or (self.sched.get(name) or [(0, 0)])[-1]
            self.sched.setdefault(name, []).append(sample)

    def report(self, events: int, window_s: float = 0.5) -> dict[str, Any]:
        """Each process's shares of the run's wall (on a core, waiting for one, asleep), the
        steady rate (10% -> 90% projected), the fill and drain, and the on-core share per
        ``window_s`` window."""
        if len(self.times) < 2:
            return {}
        start, wall = self.times[0], self.times[-1] - self.times[0]
        shares: dict[str, dict[str, float]] = {}
        timeline: dict[str, list[float]] = {}
        edges = [start + window_s * i for i in range(int(wall / window_s) + 1)]
        for name, samples in self.sched.items():
            run = (samples[-1][0] - samples[0][0]) / 1e9
            queued = (samples[-1][1] - samples[0][1]) / 1e9
            # The files are read just after each sample's clock: a loaded host can make a busy
            # process's run + queue time exceed the wall by the monitor's own wait for a core.
            span = max(wall, run + queued)
            shares[name] = {
                "on_core": round(run / span, 3),
                "waiting_for_a_core": round(queued / span, 3),
                "asleep": round(1 - (run + queued) / span, 3),
            }
            timeline[name] = [
                round((_at(self.times, samples, b)[0] - _at(self.times, samples, a)[0]) / 1e9 / window_s, 2)
                for a, b in pairwise(edges)
            ]
        t10, t90 = self._when(0.1 * events), self._when(0.9 * events)
        steady = 0.8 * events / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else None
        return {
            "steady_events_per_s": round(steady) if steady else None,
            "fill_s_to_10_percent": round(t10 - start, 2) if t10 is not None else None,
            "drain_s_from_90_percent": round(self.times[-1] - t90, 2) if t90 is not None else None,
            "main_thread_share_of_wall": shares,
            "on_core_per_window": {"window_s": window_s, **timeline},
        }

    def _when(self, count: float) -> float | None:
        for at, done in zip(self.times, self.progress, strict=True):
            if done >= count:
                return at
        return None


def _at(times: list[float], samples: list[tuple[int, int]], when: float) -> tuple[int, int]:
    """The last sample taken at or before ``when`` (the first if none was)."""
    return samples[max(0, bisect_right(times, when) - 1)]


def _schedstat(pid: int, threads: bool = False) -> tuple[int, int] | None:
    """A process's main thread (``threads``: all its threads summed): (ns on a core, ns runnable
    in the run queue), or None once gone."""
    try:
        tasks = [t.name for t in os.scandir(f"/proc/{pid}/task")] if threads else [str(pid)]
        stats = [Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split() for t in tasks]
    except (OSError, ValueError):
        return None
    return sum(int(s[0]) for s in stats), sum(int(s[1]) for s in stats)


def _workers(pid: int) -> list[int]:
    """A service's child processes (its verification workers), not multiprocessing's resource
    tracker, which only sleeps."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for c in children if b"resource_tracker" not in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def tree_usage(pid: int) -> tuple[float, int, float]:
    """(CPU seconds, processes, largest peak MB) of ``pid`` and its living descendants, CPU of
    children they already reaped included (``cutime``, ``cstime``)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = int(stat[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    cpu, peak, alive = 0.0, 0.0, 0
    for member in tree:
        stat = _stat(member)
        if stat is None:
            continue
        alive += 1
        cpu += sum(int(stat[i]) for i in (11, 12, 13, 14)) / _TICKS
        peak = max(peak, _peak_mb(member))
    return cpu, alive, peak


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (``[0]`` is the state, ``[1]`` the
    parent, ``[11:15]`` utime, stime, cutime, cstime), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def register(
    keystore: Keystore, root: RootInfo, outbox: Outbox, topics: Topics, agencies: tuple[str, ...], at: Any
) -> None:
    """The partnership's registration of each agency's key, queued in ``outbox``."""
    partnership = Producer(root.partnership, keystore, outbox, topics=topics)
    for agency in agencies:
        public = keystore.agency_private_key(agency).public_key()
        partnership.publish(
            "agency.key.registered",
            agency,
            {"agency": agency, "kid": key_id(public), "public_key": public_key_text(public)},
            time=at - timedelta(days=1),
            recorded=at - timedelta(days=1),
        )


def publisher_worker(
    outbox_url: str, keys: str, prefix: str, agency: str, chunk: int, drafts: list[Draft]
) -> None:
    """One agency's system: ready, then on "go" publish its drafts ``chunk`` per outbox
    transaction, then print its own CPU and wall seconds from "go" and its peak memory."""
    producer = Producer(agency, Keystore(Path(keys)), outbox_url, topics=Topics(prefix))
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, wall = time.process_time(), time.perf_counter()
    commits: list[float] = []
    for start in range(0, len(drafts), chunk):
        producer.append_many(drafts[start : start + chunk])
        commits.append(time.perf_counter() - wall)
    report = {
        "agency": agency,
        "events": len(drafts),
        "cpu_s": round(time.process_time() - cpu, 3),
        "wall_s": round(time.perf_counter() - wall, 3),
        "first_commit_s": round(commits[0], 3) if commits else None,
        "nice": os.nice(0),
        "peak_mb": round(peak_memory_mb(), 1),
    }
    print(json.dumps(report), flush=True)


def run_layout(
    layout: str,
    *,
    work: Path,
    broker: EmbeddedBroker,
    keystore: Keystore,
    root: RootInfo,
    plan: dict[str, list[Draft]],
    at: Any,
    database_url: str | None,
    verify_workers: int,
    chunk: int,
    bench_script: str,
    bench_args: list[str],
    logs_to: Path | None = None,
    publishers_nice: int = 0,
) -> Run:
    """One end-to-end run in ``layout`` ("one" projector process, or the "stages" apart), with
    its own topics (prefix), outbox and ledger on the shared broker (module docstring)."""
    prefix = f"e2e-{layout}"
    outbox_url = f"sqlite:///{work / f'outbox-{layout}.sqlite'}"
    url = database_url or f"sqlite:///{work / f'ledger-{layout}.sqlite'}"
    ledger = Ledger(url)  # the schema exists before the services connect
    topics = Topics(prefix)
    register(keystore, root, Outbox(outbox_url), topics, tuple(plan), at)
    registrations = len(plan)
    total = registrations + sum(len(items) for items in plan.values())
    command = [sys.executable, "-m", "sgledger", "--data-dir", str(work), "--database-url", url,
               "--outbox-url", outbox_url, "--bootstrap-servers", broker.bootstrap_servers,
               "--topic-prefix", prefix]  # fmt: skip
    jobs = [("relay", ["relay"])]
    if layout == "one":
        jobs.append(("projector", ["project", "--verify-workers", str(verify_workers)]))
    else:
        jobs.append(("intake", ["project", "--stage", "intake", "--verify-workers", str(verify_workers)]))
        jobs += [("shard", ["project", "--stage", "children", "--shard", f"{i}/2"]) for i in (1, 2)]
    logs = [(work / f"{layout}-{n}-{role}.log").open("wb") for n, (role, _) in enumerate(jobs)]
    services = [
        Service(role, subprocess.Popen([*command, *args], stdout=log, stderr=subprocess.STDOUT))
        for (role, args), log in zip(jobs, logs, strict=True)
    ]
    publishers: list[subprocess.Popen[str]] = []
    relay_sent_cpu = 0.0
    try:
        shards = [f"children:{i}/2" for i in (1, 2)] if layout == "stages" else []
        # Started and warm: the registrations are in the ledger (and projected by each shard).
        warm = lambda: ledger.count() >= registrations and _projected(ledger, shards)  # noqa: E731
        wait_until(warm, 120, [s.process for s in services], "the registrations")
        worker = [sys.executable, bench_script, *bench_args, "--publisher-worker", outbox_url]
        if publishers_nice:  # nice execs the worker: the publisher's pid is still the Python one
            worker = ["nice", "-n", str(publishers_nice), *worker]
        publishers = [
            subprocess.Popen(
                [*worker, str(keystore.directory), prefix, agency, str(chunk)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for agency in plan
        ]
        for publisher in publishers:
            assert publisher.stdout is not None and publisher.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # the services' start-up work (worker spawn, group join) is over
        for service in services:
            service.cpu_at_go = service.sample()
        assert broker.pid is not None
        broker_cpu = tree_usage(broker.pid)[0]
        names: dict[str, int] = {"broker": broker.pid}
        for n, service in enumerate(services):
            name = service.role if service.role != "shard" else f"shard-{n - 1}"
            names[name] = service.process.pid
            for i, child in enumerate(_workers(service.process.pid), 1):
                names[f"{name}-worker-{i}"] = child
        for agency, publisher in zip(plan, publishers, strict=True):
            names[f"publisher-{agency.split('/')[0]}"] = publisher.pid
        timeline = Timeline(names)
        monitor_cpu = time.process_time()
        go_epoch = time.time()  # the services' log lines carry wall-clock times
        started = time.perf_counter()
        timeline.sample(started, 0)
        for publisher in publishers:
            assert publisher.stdin is not None
            publisher.stdin.write("go\n")
            publisher.stdin.flush()
        published_at: float | None = None
        relayed_at: float | None = None
        outbox = Outbox(outbox_url)
        progress = Progress(ledger, shards)
        while True:
            if published_at is None and all(p.poll() is not None for p in publishers):
                published_at = time.perf_counter()
            if published_at is not None and relayed_at is None and not outbox.has_pending():
                # Everything is at the broker: the relay's CPU from here on is idle polling
                # while the projector catches up, which grows with the run's wall time.
                relayed_at = time.perf_counter()
                relay_sent_cpu = services[0].sample() - services[0].cpu_at_go  # jobs[0]: the relay
            head, positions = progress.read()
            projected = min([head, *positions])
            timeline.sample(time.perf_counter(), projected - registrations)
            # the exact count only once the head says it may be done (positions can have gaps)
            if projected >= total and ledger.count() >= total and _projected(ledger, shards):
                break
            if any(s.process.poll() is not None for s in services):
                raise SystemExit(f"a service exited during the {layout} run: see its log in {work}")
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"the {layout} run did not finish within 30 min")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        # done: the last shard batch (up to a fifth of the run) may end after the last sample
        timeline.sample(started + wall, total - registrations)
        progress.close()
        outbox.close()
        monitor_cpu = time.process_time() - monitor_cpu
        for service in services:
            service.cpu_at_end = service.sample()
        broker_cpu = tree_usage(broker.pid)[0] - broker_cpu
        reports = [json.loads(p.communicate()[0]) for p in publishers]
    finally:
        for publisher in publishers:
            if publisher.poll() is None:
                publisher.kill()
                publisher.wait()
        stop_services([s.process for s in services])
        for log in logs:
            log.close()
        if logs_to is not None:  # the services' batch lines: when each batch ran, how big, how long
            logs_to.mkdir(parents=True, exist_ok=True)
            for log in logs:
                shutil.copy(log.name, logs_to)
    with ledger.read() as session:
        flags = session.scalar(select(func.count()).select_from(FlagRow)) or 0
        quarantined = session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0
    ledger.engine.dispose()
    run_events = total - registrations
    return Run(
        layout=layout,
        events=run_events,
        wall_s=wall,
        publish_wall_s=(published_at or time.perf_counter()) - started,
        extra={
            "relayed_wall_s": round((relayed_at or time.perf_counter()) - started, 2),
            "relay_cpu_ms_per_event_until_all_sent": round(1000 * relay_sent_cpu / run_events, 3),
            "waits": timeline.report(run_events),
            "first_units": first_units(reports, services, logs, go_epoch),
        },
        services=services,
        broker_cpu_s=broker_cpu,
        publishers=reports,
        monitor_cpu_s=monitor_cpu,
        flags=flags,
        quarantined=quarantined,
    )


_LOGGED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ "
    r"(?:batch: (\d+) accepted.* in ([\d.]+) s|children \S+: (\d+) notifications.* in ([\d.]+) s)"
)


def first_units(
    publishers: list[dict[str, Any]],
    services: list[Service],
    logs: list[Any],
    go_epoch: float,
    count: int = 4,
) -> dict[str, Any]:
    """What the fill is made of: when each stage finished its first units of work, in seconds
    from "go" (publishers: their first outbox commit; intake and each shard: their first
    batches, as [end, size, seconds]), read
    from the publishers' reports and the services' logs (one line per batch, ms times). The
    relay is left out: it logs a round, and one round sends for as long as rows are pending."""
    units: dict[str, Any] = {
        "publishers_first_commit_s": {p["agency"].split("/")[0]: p["first_commit_s"] for p in publishers}
    }
    shard = 0
    for service, log in zip(services, logs, strict=True):
        name = service.role
        if name == "relay":
            continue  # one round sends while rows are pending: see relayed_wall_s
        if name == "shard":
            shard += 1
            name = f"shard-{shard}"
        seen: list[Any] = []
        for line in Path(log.name).read_text(errors="replace").splitlines():
            match = _LOGGED.match(line)
            if match is None:
                continue
            stamp, accepted, seconds, notified, shard_seconds = match.groups()
            end = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - go_epoch
            if end < 0:
                continue  # the registrations' batch, before "go"
            size, took = accepted or notified, seconds or shard_seconds
            seen.append([round(end, 3), int(size), float(took)])
            if len(seen) == count:
                break
        units[name] = seen
    return units


class Progress:
    """The monitor's look at the ledger every 50 ms: the last accepted position and the shards'
    positions in one statement on one kept connection. Counting the events and asking each
    shard's position through the ledger's sessions cost ~3 ms of CPU per look (about 0.03 ms
    per event, 3% of the partnership's CPU, taken from the two cores it is measured on); the
    exact count is asked only at the end (``run_layout``)."""

    def __init__(self, ledger: Ledger, shards: list[str]) -> None:
        self.shards = shards
        self.connection = ledger.engine.connect()
        tracked = text(
            "SELECT application_name, max(notification_id) FROM ledger_tracking"
            " WHERE application_name IN :names GROUP BY application_name"
        ).bindparams(bindparam("names", expanding=True))
        self.statements = (select(func.max(AcceptedEvent.position)), tracked)

    def read(self) -> tuple[int, list[int]]:
        """(last accepted position, each shard's position), 0 for none yet."""
        head, tracked = self.statements
        last = self.connection.execute(head).scalar() or 0
        positions = (
            dict(self.connection.execute(tracked, {"names": self.shards}).tuples().all())
            if self.shards
            else {}
        )
        self.connection.rollback()  # a new read transaction next time: see the next commits
        return last, [positions.get(name) or 0 for name in self.shards]

    def close(self) -> None:
        self.connection.close()


def _projected(ledger: Ledger, shards: list[str]) -> bool:
    """Every shard has projected up to the last accepted notification."""
    if not shards:
        return True
    with ledger.read() as session:
        head = session.scalar(select(func.max(AcceptedEvent.position))) or 0
    return all((ledger.tracked_position(name) or 0) >= head for name in shards)


def wait_until(
    done: Callable[[], bool], timeout_s: float, processes: list[subprocess.Popen[bytes]], what: str
) -> None:
    """Poll ``done`` until it holds; stop the benchmark if a service exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if any(process.poll() is not None for process in processes):
            raise SystemExit(f"a service exited while waiting for {what}: see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not reach the ledger within {timeout_s:.0f} s")
        time.sleep(0.05)


def stop_services(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT every service (each finishes its batch and exits cleanly), then wait; kill what
    has not exited after 30 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
