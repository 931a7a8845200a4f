"""Intake and child projection run apart (docs/stages.md): the same views and flags as one
transaction, whatever order the shards run in; a shard killed mid-batch resumes exactly once."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.auditor.diff import diff
from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from consumers.projector.applier import Applier, Message
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from tests.consumers.kafka_helpers import ServiceProcess, count, snapshot, story
from tests.consumers.test_observability import get, samples
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership
from tests.test_cli import sgledger
from transport.broker import free_port

NOW = T0 + timedelta(days=30)


def test_every_child_has_exactly_one_shard_and_it_never_changes() -> None:
    """Pinned: a release that moved children between shards would leave two shards writing one
    child (or none) until every process restarted with the new code."""
    children = [f"C-{n}" for n in range(1, 7)]
    for parts in (1, 2, 3, 5):
        for child in children:
            assert sum(Shard(i, parts).owns(child) for i in range(1, parts + 1)) == 1
    assert [c for c in [*children, "C-CH-1", "C-CH-2"] if Shard(1, 2).owns(c)] == ["C-1", "C-4", "C-CH-2"]
    assert [next(i for i in (1, 2, 3) if Shard(i, 3).owns(c)) for c in children] == [2, 3, 2, 3, 2, 2]
    assert Shard.parse(" 2/3 ") == Shard(2, 3) and Shard(2, 3).tracking_name == "children:2/3"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--stage", "children", "--shard", "3/2"], "error: --shard: shard 3/2: want i/n with 1 <= i <= n"),
        (["--stage", "children", "--shard", "half"], "error: --shard: shard 'half': want i/n"),
        (["--shard", "1/2"], "error: --shard applies to --stage children only"),
    ],
)
def test_a_wrong_shard_is_refused_in_one_line(tmp_path: Path, options: list[str], says: str) -> None:
    result = sgledger(tmp_path, "project", *options, ok=False)
    assert result.returncode == 2 and result.stderr.startswith(says), result.stderr
    assert "Traceback" not in result.stderr


def apply(applier: Applier, events: Sequence[dict[str, Any]]) -> None:
    applier.apply([Message(json.dumps(e).encode()) for e in events])


def one_in_each_shard() -> tuple[str, str]:
    first = next(c for c in (f"C-{n}" for n in range(100)) if Shard(1, 2).owns(c))
    second = next(c for c in (f"C-{n}" for n in range(100)) if Shard(2, 2).owns(c))
    return first, second


def household_story(partnership: Partnership) -> list[list[dict[str, Any]]]:
    """Batches in which siblings ``a`` and ``b`` (one per shard of two) meet: ``b``'s link
    makes ``a``'s incident a sibling flag, an unrelated later event of ``a`` must keep it, and
    ``b``'s own incident resolves it (tests/consumers/test_applier_household.py, across shards)."""
    police, csc, gp = Chain("police/avon-somerset"), Chain("csc/somerset"), Chain("gp/L85001")
    a, b = one_in_each_shard()
    mother = {"person": "P-m", "role": "mother", "lives_with_child": True}
    incident = {**INCIDENT, "parties": [{"person": "P-m", "role": "victim"}]}
    others = [
        police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-X{n}"}, subject=f"X-{n}")
        for n in range(6)
    ]
    return [
        [
            partnership.register(police),
            partnership.register(csc),
            partnership.register(gp),
            csc.event("person.linked", mother, subject=a),
            police.event("incident.reported", incident, subject=a, at=T0 + timedelta(hours=1)),
            *others[:3],
        ],
        [csc.event("person.linked", mother, subject=b), *others[3:]],
        [gp.event("gp.registered", {"person": a, "practice": "L85001"}, subject=a)],
        [police.event("incident.reported", incident, subject=b, at=T0 + timedelta(days=2))],
    ]


def sibling_flags(url: str) -> int:
    return count(url, "SELECT count(*) FROM flags WHERE rule = 'sibling-not-considered' AND status = 'open'")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_stages_apart_give_the_views_and_flags_of_one_transaction(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    partnership = Partnership()
    batches = household_story(partnership)
    one_url = f"sqlite:///{tmp_path / 'one.sqlite'}"
    apart_url = (
        request.getfixturevalue("postgres_db")
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'apart.sqlite'}"
    )
    root = partnership.root_key
    one, apart = Ledger(one_url), Ledger(apart_url)
    together = Applier(one, root, clock=lambda: NOW)
    intake = Applier(apart, root, clock=lambda: NOW, children=False)
    first, second = (ChildProjection(apart, root, shard=Shard(i, 2), clock=lambda: NOW) for i in (1, 2))
    checked_open = []
    for batch in batches:
        apply(together, batch)
        apply(intake, batch)
        first.catch_up()  # the second shard lags the whole story behind
        checked_open.append(sibling_flags(one_url))
    assert count(apart_url, "SELECT count(*) FROM view_children") < count(
        one_url, "SELECT count(*) FROM view_children"
    )
    second.catch_up()
    assert checked_open == [0, 1, 1, 0]  # the story does what it says on the single-process path
    assert diff(one_url, apart_url) == []
    assert count(apart_url, "SELECT count(*) FROM flags") > 5
    one.engine.dispose()
    apart.engine.dispose()


class StageProcess(ServiceProcess):
    """`sgledger project --stage children` as its own process, as an operator runs it."""

    def __init__(
        self, url: str, keys: Path, log: Path, shard: str = "1/1", max_batch: int = 20, *options: str
    ) -> None:
        command = ["--database-url", url, "--keys-dir", str(keys), "--log-format", "json", "project"]
        command += ["--stage", "children", "--shard", shard, "--max-batch", str(max_batch), *options]
        super().__init__(command, log, os.environ)


def position(url: str, shard: str = "1/1") -> int:
    return count(
        url, f"SELECT max(notification_id) FROM ledger_tracking WHERE application_name = 'children:{shard}'"
    )


def wait_until(done: Callable[[], bool], timeout_s: float, *processes: StageProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for process in processes:
            process.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def intake_only(keystore: Keystore, url: str, children: int) -> int:
    """A ledger that intake alone filled (no child projected yet); returns its last position."""
    ledger = Ledger(url)
    events = story(keystore, children=children, incidents_per_child=3)
    Applier(ledger, keystore.root_info().root_key(), children=False).apply(
        [Message(json.dumps(e).encode()) for e in events]
    )
    ledger.engine.dispose()
    return count(url, "SELECT max(position) FROM ledger_accepted")


def one_incident_accepted(tmp_path: Path) -> tuple[Chain, Applier, ChildProjection]:
    """A police chain whose registration and one incident intake has accepted, intake itself
    (no child projection) and a shard of one over the same SQLite ledger, not yet run."""
    partnership = Partnership()
    police = Chain("police/avon-somerset")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    intake = Applier(ledger, partnership.root_key, clock=lambda: NOW, children=False)
    apply(intake, [partnership.register(police), police.event("incident.reported", INCIDENT)])
    return police, intake, ChildProjection(ledger, partnership.root_key, clock=lambda: NOW)


@pytest.mark.slow
def test_a_shard_reads_again_at_once_after_a_batch_that_found_notifications(tmp_path: Path) -> None:
    """Under a steady stream the next batch reads what was accepted while the last one ran,
    without an idle wait: a shard that waited after every batch not full sat asleep a third of
    an end-to-end run while notifications queued (issue 13). It waits only when it found none."""
    police, intake, shard = one_incident_accepted(tmp_path)
    stop, batches = threading.Event(), []

    def on_batch(stats: Any, seconds: float) -> None:
        batches.append(stats.accepted)
        if len(batches) == 1:  # accepted while the first batch ran, as in a steady stream
            apply(intake, [police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})])
        elif stats.accepted == 0:
            stop.set()  # nothing more to read: the idle wait (an hour) would come next

    runner = threading.Thread(target=shard.run, args=(stop, on_batch), kwargs={"idle_wait_s": 3600})
    runner.start()
    runner.join(timeout=20)
    stop.set()
    runner.join()
    assert batches[:3] == [2, 1, 0] and shard.lag() == 0


def test_an_idle_shard_projects_what_intake_accepts_within_its_look_not_its_idle_wait(tmp_path: Path) -> None:
    """Idle, a shard looks at the ledger's head every ``look_s`` and runs a batch as soon as
    intake accepted something: it used to sleep the whole ``idle_wait_s`` (0.2 s) first, in the
    latency of the flags and in the fill and drain of every burst (issue 13). Here the idle wait
    is an hour: only the look can project the event accepted while the shard was idle."""
    police, intake, shard = one_incident_accepted(tmp_path)
    stop, batches = threading.Event(), []
    later = police.event("incident.reported", {**INCIDENT, "incident_ref": "INC-2"})

    def on_batch(stats: Any, seconds: float) -> None:
        batches.append(stats.accepted)
        if stats.accepted and len(batches) > 1:
            stop.set()

    runner = threading.Thread(target=shard.run, args=(stop, on_batch), kwargs={"idle_wait_s": 3600})
    runner.start()
    deadline = time.monotonic() + 20
    while batches[-1:] != [0] and time.monotonic() < deadline:
        time.sleep(0.01)  # the first batch read both events, the second nothing: now idle
    time.sleep(0.2)  # well inside its idle wait
    apply(intake, [later])
    runner.join(timeout=20)
    stop.set()
    runner.join()
    assert batches == [2, 0, 1] and shard.lag() == 0


def test_a_shard_killed_mid_batch_resumes_exactly_once(keystore: Keystore, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed.sqlite"
    head = intake_only(keystore, f"sqlite:///{crashed}", children=60)
    clean = tmp_path / "clean.sqlite"
    shutil.copy(crashed, clean)
    os.chmod(clean, 0o600)
    crashed_url, clean_url = f"sqlite:///{crashed}", f"sqlite:///{clean}"
    log = tmp_path / "stage.log"
    for stop_at in (head // 5, head // 2, (4 * head) // 5):
        # Batches of 5: with remembered child histories a batch of 20 took so little that the
        # stage could finish the last fifth between two looks of wait_until (no kill mid-way).
        process = StageProcess(crashed_url, keystore.directory, log, max_batch=5)
        wait_until(lambda: position(crashed_url) >= stop_at, 120, process)  # noqa: B023 (called at once)
        process.kill()  # between two batches' commits: mid-batch, or mid-write
        assert position(crashed_url) < head
    process = StageProcess(crashed_url, keystore.directory, log)
    uninterrupted = StageProcess(clean_url, keystore.directory, log)
    try:
        wait_until(
            lambda: position(crashed_url) == head and position(clean_url) == head, 180, process, uninterrupted
        )
    finally:
        process.stop()
        uninterrupted.stop()
    after_crashes = snapshot(crashed_url)
    assert after_crashes == snapshot(clean_url)  # flags' change counts included: none applied twice
    assert len(after_crashes["children"]) == 60
    changes = "SELECT count(*) FROM flag_changes"
    assert count(crashed_url, changes) == count(clean_url, changes) > 60


def test_a_shard_serves_its_lag_and_readiness_and_logs_no_child_ids(
    keystore: Keystore, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    head = intake_only(keystore, url, children=8)
    port, log = free_port(), tmp_path / "stage.log"
    process = StageProcess(url, keystore.directory, log, "1/1", 10, "--metrics-port", str(port))
    try:
        wait_until(lambda: position(url) == head, 120, process)
        deadline = time.monotonic() + 30
        while True:  # the gauges follow the batch's commit by a moment
            _, body = get(port, "/metrics")
            found = samples(body)
            if found.get(("sgledger_consumer_lag", (("partition", "1"), ("topic", "ledger")))) == 0:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        raised = sum(v for (name, labels), v in found.items()
                     if name == "sgledger_flag_changes_total" and ("change", "raised") in labels)  # fmt: skip
        assert raised == count(url, "SELECT count(*) FROM flag_changes WHERE change = 'raised'") > 0
        ready_status, ready_body = get(port, "/readyz")
        assert ready_status == 200 and "last batch" in ready_body
    finally:
        process.stop()
    assert process.process.returncode == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    batches = [line for line in lines if line.get("message", "").startswith("children 1/1: ")]
    assert sum(b["notifications"] for b in batches) == head
    assert not any(f"C-{n:04d}" in log.read_text() for n in range(8))  # no child ids in logs


def test_a_child_whose_evaluation_raises_is_logged_and_the_shard_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Intake accepted its event, so there is no message to quarantine: the child is left as it
    was, the others are projected, and the position moves on (one child must not stop all)."""
    from policies.registry import ALL_POLICIES

    class Broken(type(ALL_POLICIES[0])):  # type: ignore[misc]
        def findings(self, view: Any, as_of: Any) -> Any:
            if view.child == "C-bad":
                raise ZeroDivisionError(f"division by zero for {view.child}")
            return super().findings(view, as_of)

    partnership, police = Partnership(), Chain("police/avon-somerset")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    events = [
        partnership.register(police),
        police.event("incident.reported", INCIDENT, subject="C-bad"),
        police.event("incident.reported", INCIDENT, subject="C-2"),
    ]
    apply(Applier(ledger, partnership.root_key, clock=lambda: NOW, children=False), events)
    stage = ChildProjection(
        ledger, partnership.root_key, policies=[*ALL_POLICIES[1:], Broken()], clock=lambda: NOW
    )
    stats = stage.run_once()
    assert stats.children == {"C-2"} and stage.lag() == 0
    # named by the event that changed it, its id masked even in the error's text (README: logs
    # never carry a child's id)
    assert (
        f"projecting failed for the child changed by event {events[1]['id']}: "
        "ZeroDivisionError: division by zero for <child>"
    ) in caplog.text
    assert "C-bad" not in caplog.text
    url = str(ledger.engine.url)
    assert count(url, "SELECT count(*) FROM view_children WHERE child = 'C-bad'") == 0
    assert count(url, "SELECT count(*) FROM flags WHERE child = 'C-2'") > 0
    ledger.engine.dispose()
