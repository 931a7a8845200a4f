"""The end-to-end benchmark (bench/endtoend.py) charges each process tree its own CPU, and a
small run through real processes (agency publishers, `sgledger relay`, the projector's stages
apart, tansu) finishes with every event accepted and projected, flags raised, nothing
quarantined, and a figure for every party. (The one-process layout runs the same code with one
`sgledger project` in place of three.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.endtoend import Timeline, run_layout, tree_usage
from bench.ingest import AGENCIES, T0, drafts
from ledger.keystore import Keystore
from transport.broker import EmbeddedBroker

SPIN = "import time\nend = time.process_time() + {cpu}\nwhile time.process_time() < end: pass\n"


def test_a_tree_counts_its_living_descendants_and_the_children_it_reaped(tmp_path: Path) -> None:
    # The parent spins 0.2 s, reaps a child that spun 0.3 s, starts one that spins 0.3 s and
    # waits: at the end the tree holds >= 0.8 s, however the members are alive or reaped.
    script = (
        "import subprocess, sys, time\n"
        + SPIN.format(cpu=0.2)
        + f"subprocess.run([sys.executable, '-c', {SPIN.format(cpu=0.3)!r}])\n"
        + f"child = subprocess.Popen([sys.executable, '-c', {SPIN.format(cpu=0.3) + 'time.sleep(30)'!r}])\n"
        + "print('ready', flush=True)\n"
        + "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while (usage := tree_usage(parent.pid))[0] < 0.8 and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu, processes, peak_mb = usage
        assert cpu >= 0.8
        assert processes == 2  # the parent and its living child; the reaped one is in cutime
        assert peak_mb > 1
    finally:
        parent.kill()
        parent.wait()


def test_the_timeline_tells_a_process_that_waits_from_one_that_works() -> None:
    # Where the pipeline waits is read from each main thread's schedstat: a process spinning
    # is on a core or waiting for one (on a loaded host), never asleep; one in time.sleep is.
    busy, idle = (
        subprocess.Popen(
            [sys.executable, "-c", "print('ready', flush=True)\n" + script], stdout=subprocess.PIPE, text=True
        )
        for script in (SPIN.format(cpu=30), "import time\ntime.sleep(30)")
    )
    try:
        for process in (busy, idle):  # both past their start-up (seconds on a loaded host)
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        timeline = Timeline({"busy": busy.pid, "idle": idle.pid})
        started = time.perf_counter()
        for done in range(0, 101, 5):
            timeline.sample(time.perf_counter(), done)
            time.sleep(0.05)
        report = timeline.report(100, window_s=0.25)
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
    shares = report["main_thread_share_of_wall"]
    assert shares["busy"]["asleep"] < 0.1 and shares["busy"]["on_core"] > 0  # the rest: waiting for a core
    assert shares["idle"]["asleep"] > 0.95
    assert len(report["on_core_per_window"]["busy"]) == len(report["on_core_per_window"]["idle"]) >= 3
    assert max(report["on_core_per_window"]["idle"]) < 0.05
    # 5 done per sample, one sample per ~50 ms: 10% at the 3rd sample, 90% at the 19th
    assert report["fill_s_to_10_percent"] == round(timeline.times[2] - started, 2)
    assert report["steady_events_per_s"] == round(80 / (timeline.times[18] - timeline.times[2]))


@pytest.mark.kafka
@pytest.mark.slow
def test_a_small_run_with_the_stages_apart_reports_every_party(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The services inherit these: tansu then holds the intake's group join ~1 s, not 5.
    monkeypatch.setenv("SGLEDGER_KAFKA_SESSION_TIMEOUT_MS", "2000")
    monkeypatch.setenv("SGLEDGER_KAFKA_HEARTBEAT_INTERVAL_MS", "500")
    keystore = Keystore(tmp_path / "keys")
    root = keystore.init_root("partnership/bench")
    for agency in AGENCIES:
        keystore.create_agency_key(agency)
    plan = drafts(60, 10)
    with EmbeddedBroker(tmp_path / "broker") as broker:
        report = run_layout(
            "stages", work=tmp_path, broker=broker, keystore=keystore, root=root, plan=plan, at=T0,
            database_url=None, verify_workers=1, chunk=7, publishers_nice=5,
            bench_script=str(Path(__file__).parents[2] / "bench" / "ingest.py"),
            bench_args=["--events", "60", "--children", "10"],
        ).report()  # fmt: skip
    assert report["quarantined"] == 0
    assert report["flags"] > 0
    roles = report["by_role"]
    assert set(roles) == {"publishers", "relay", "broker", "intake", "shard"}
    assert roles["publishers"]["processes"] == len(AGENCIES)
    assert roles["publishers"]["nice"] == [os.nice(0) + 5]  # --publishers-nice: above ours
    assert roles["shard"]["processes"] == 2
    assert roles["intake"]["processes"] >= 2  # intake and its verification worker
    # CPU is read from /proc in clock ticks (10 ms): in a 60-event run the relay's or the
    # broker's share can round to none (seen once in a README run); the roles that do the work
    # cannot.
    assert all(part["cpu_ms_per_event"] >= 0 for part in roles.values())
    assert all(roles[busy]["cpu_ms_per_event"] > 0 for busy in ("publishers", "intake", "shard"))
    assert report["events_per_s"] > 0
    waits = report["waits"]["main_thread_share_of_wall"]
    publishers = {f"publisher-{agency.split('/')[0]}" for agency in AGENCIES}
    assert set(waits) == {"broker", "relay", "intake", "intake-worker-1", "shard-1", "shard-2", *publishers}
    assert all(0.99 <= sum(share.values()) <= 1.01 for share in waits.values())
    # the fill's first units, from the publishers' reports and the services' batch lines
    units = report["first_units"]
    assert set(units) == {"publishers_first_commit_s", "intake", "shard-1", "shard-2"}
    assert set(units["publishers_first_commit_s"]) == {agency.split("/")[0] for agency in AGENCIES}
    first_commit = min(t for t in units["publishers_first_commit_s"].values() if t is not None)
    (intake_end, intake_size, intake_s), *_ = units["intake"]
    assert 0 < first_commit < intake_end and 0 < intake_size <= 60 and intake_s >= 0
    for shard in ("shard-1", "shard-2"):  # a shard reads only what intake has committed
        assert units[shard][0][0] >= intake_end - intake_s and units[shard][0][1] > 0
