"""Verification in worker processes (``consumers.projector.verifier``): the same verdicts as in
the projector's own process, a worker killed mid-batch costs nothing but time, and a batch
verified while the previous one was applied is judged with the keys the ledger holds when its
turn comes, not those it was verified with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import wait
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from consumers.projector.applier import Applier, Message
from consumers.projector.verifier import Item, Verifier
from ledger.canonical import canonical_json
from ledger.keyregistry import KeyRegistry
from ledger.store.ledger import Ledger
from ledger.store.models import AcceptedEvent, QuarantineEntry
from ledger.stored import envelope_json, stored_times
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership


@pytest.fixture
def pool() -> Iterator[Verifier]:
    verifier = Verifier(1)
    yield verifier
    verifier.close()


def mixed_batch(partnership: Partnership) -> tuple[list[Item], KeyRegistry]:
    """Good events and one of each kind of refusal the pre-check makes: enough messages for
    the workers (``POOL_FROM``)."""
    police, unknown = Chain("police/avon-somerset"), Chain("csc/somerset")
    registry = partnership.registry(partnership.register(police))
    good = [police.event("incident.reported", {**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(150)]
    tampered = {**police.event("incident.reported", INCIDENT), "subject": "C-2"}
    schema_bad = police.event("incident.reported", {"children_present": "yes"})
    stranger = unknown.event("child.registered", {"dob": "2023-11-01"})
    raws = [json.dumps(e).encode() for e in [*good, tampered, schema_bad, stranger]]
    raws += [b"not json", b'{"id": "a", "id": "b"}', b"[" * 5000, b"x" * (1024 * 1024 + 1)]
    return [(raw, T0 + timedelta(days=1)) for raw in raws], registry


def test_workers_give_the_verdicts_of_the_projector_process(pool: Verifier) -> None:
    items, registry = mixed_batch(Partnership())
    here = Verifier(0).check_all(items, registry)
    assert pool.check_all(items, registry) == here
    pending = pool.start(items, registry)
    assert all(future is not None for _, future in pending.parts)  # all of it to the worker
    assert pending.result() == here
    reasons = [str(verdict.reason) for verdict, _ in here if not isinstance(verdict, dict)]
    assert reasons == [
        "bad-signature", "schema-invalid", "unknown-key", "not-json", "not-json", "not-json", "oversized",
    ]  # fmt: skip
    passed = [(verdict, forms) for verdict, forms in here if isinstance(verdict, dict)]
    assert len(passed) == 150
    # what recording needs, made with the verdict: the canonical form, the stored envelope and
    # the stored times
    assert all(
        forms == (canonical_json(event), envelope_json(event), stored_times(event)) for event, forms in passed
    )


def test_this_process_checks_the_chunks_no_worker_has_begun(pool: Verifier) -> None:
    """Asking for the verdicts while the worker is busy checks here every chunk it has not
    begun, with the same verdicts: the intake stage applies a batch faster than its worker
    verifies the next, and waited idle for it. Asked once the worker is done, nothing is checked
    twice. "Begun" is the pool's word: its call queue holds one call more than it has workers,
    and a call moved there can no longer be cancelled, so one or two chunks stay with the worker
    (two when the worker had already taken the sleep off that queue, as a fast-starting worker
    does)."""
    items, registry = mixed_batch(Partnership())
    expected = Verifier(0).check_all(items * 4, registry)
    assert pool._pool is not None
    busy = pool._pool.submit(time.sleep, 1.0)
    pending = pool.start(items * 4, registry)
    assert len(pending.parts) == 4
    assert pending.result() == expected
    assert pending.taken >= len(pending.parts) - 2
    # counted by where each verdict was made (the benchmarks report the serial process's share)
    size = len(pending.parts[0][0])
    assert (pool.checked_here, pool.checked_by_workers) == (
        pending.taken * size,
        (len(pending.parts) - pending.taken) * size,
    )
    busy.result()
    idle = pool.start(items * 4, registry)
    wait([future for _, future in idle.parts if future is not None])
    assert idle.result() == expected
    assert idle.taken == 0
    assert (pool.checked_here, pool.checked_by_workers) == (pending.taken * size, (8 - pending.taken) * size)


def test_a_worker_killed_mid_batch_refuses_nothing(pool: Verifier) -> None:
    items, registry = mixed_batch(Partnership())
    expected = Verifier(0).check_all(items, registry)
    pool.check_all(items, registry)  # the worker is up
    pending = pool.start(items * 20, registry)
    assert pool._pool is not None
    for pid in list(pool._pool._processes):
        os.kill(pid, signal.SIGKILL)
    while pool.intact():  # noticed first, as a death during a batch usually is (``Verifier.intact``)
        time.sleep(0.01)
    assert pending.result() == expected * 20  # checked here instead, nothing internal-error
    assert pool.check_all(items, registry) == expected  # and a new pool took over


def test_a_batch_verified_before_a_revocation_is_judged_with_it(tmp_path: Path, pool: Verifier) -> None:
    """The runner verifies batch N+1 while it applies batch N. If N revokes a key, N+1's events
    signed with it and received after the revocation must be refused although they passed
    verification with the keys of before N."""
    partnership, police = Partnership(), Chain("police/avon-somerset")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    applier = Applier(ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=30), verifier=pool)
    applier.apply([Message(json.dumps(partnership.register(police)).encode())])
    revoked_at = T0 + timedelta(days=2)
    late = police.event("incident.reported", INCIDENT, recorded=T0 + timedelta(days=1))
    following = applier.prepare(
        [Message(json.dumps(late).encode(), "t/0/1", revoked_at + timedelta(hours=1))]
    )
    applier.apply([Message(json.dumps(partnership.revoke(police, revoked_at)).encode())])
    stats = applier.apply_prepared(following)
    assert (stats.accepted, stats.quarantined) == (0, 1)
    with ledger.read() as session:
        assert session.scalar(select(QuarantineEntry.reason)) == "key-revoked-at-receipt"
        assert late["id"] not in set(session.scalars(select(AcceptedEvent.event_id)))
    ledger.engine.dispose()


def test_a_batch_verified_while_the_registering_batch_is_applied_uses_its_keys(
    tmp_path: Path, pool: Verifier
) -> None:
    """A replay's key registrations come in its first batch; the second is verified while the
    first is applied, before the ledger holds the keys. Verified with the first batch's keys
    (``prepare(after=...)``) its events pass in the workers; verified with the ledger's alone
    all of them were refused as unknown-key and checked again in the projector's process."""
    partnership, police = Partnership(), Chain("police/avon-somerset")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    applier = Applier(ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=30), verifier=pool)
    first_events = [partnership.register(police)] + [
        police.event("incident.reported", {**INCIDENT, "incident_ref": f"I-{n}"}) for n in range(10)
    ]
    second_events = [
        police.event("incident.reported", {**INCIDENT, "incident_ref": f"J-{n}"}) for n in range(40)
    ]
    first = applier.prepare([Message(json.dumps(e).encode()) for e in first_events])
    second = applier.prepare([Message(json.dumps(e).encode()) for e in second_events], after=first)
    assert all(isinstance(verdict, dict) for verdict, _ in second.pending.result())
    applier.apply_prepared(first)
    stats = applier.apply_prepared(second)
    assert (stats.accepted, stats.held, stats.quarantined) == (40, 0, 0)
    assert ledger.count() == 51
    ledger.engine.dispose()


def test_a_pool_applies_what_the_projector_process_applies(tmp_path: Path, pool: Verifier) -> None:
    partnership, police, gp = Partnership(), Chain("police/avon-somerset"), Chain("gp/L85001")
    events: list[dict[str, Any] | bytes] = [partnership.register(police), partnership.register(gp)]
    for n in range(40):
        child = f"C-{n}"
        events.append(
            police.event("incident.reported", {**INCIDENT, "incident_ref": f"I-{n}"}, subject=child)
        )
        events.append(gp.event("gp.registered", {"person": child, "practice": "L85001"}, subject=child))
    tampered = {**police.event("incident.reported", INCIDENT), "subject": "C-9"}
    events += [b"not json", json.dumps(tampered).encode()]
    messages = [Message(e if isinstance(e, bytes) else json.dumps(e).encode()) for e in events]

    def applied(verifier: Verifier, name: str) -> tuple[list[Any], list[Any]]:
        ledger = Ledger(f"sqlite:///{tmp_path / name}")
        Applier(ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=30), verifier=verifier).apply(
            messages
        )
        with ledger.read() as session:
            accepted = session.execute(
                select(AcceptedEvent.position, AcceptedEvent.event_id, AcceptedEvent.envelope)
            ).all()
            refused = session.execute(select(QuarantineEntry.reason, QuarantineEntry.status)).all()
        ledger.engine.dispose()
        return list(accepted), list(refused)

    in_process = applied(Verifier(0), "here.sqlite")
    assert applied(pool, "pool.sqlite") == in_process
    assert len(in_process[0]) == 82 and sorted(in_process[1]) == [
        ("bad-signature", "quarantined"), ("not-json", "quarantined"),
    ]  # fmt: skip


def test_messages_released_by_their_key_are_judged_as_in_the_projector_process(
    tmp_path: Path, pool: Verifier
) -> None:
    """An agency's events held for its unknown key are checked again in the pool when the key
    arrives; a revocation released in the same sweep, between two of them, must still count
    for those after it (their pool verdicts predate it)."""
    partnership, police = Partnership(), Chain("police/avon-somerset")
    registration = partnership.register(police)
    revocation = partnership.revoke(police, T0 + timedelta(hours=1))
    events = [
        police.event("incident.reported", {**INCIDENT, "incident_ref": f"I-{n}"}, at=T0 + timedelta(hours=2))
        for n in range(70)
    ]
    first = [Message(json.dumps(e).encode()) for e in [*events, revocation]]

    def applied(verifier: Verifier, name: str) -> tuple[set[str], list[tuple[str, str]]]:
        ledger = Ledger(f"sqlite:///{tmp_path / name}")
        applier = Applier(
            ledger, partnership.root_key, clock=lambda: T0 + timedelta(days=30), verifier=verifier
        )
        applier.apply(first)  # all held: the key and the revocation's predecessor are missing
        applier.apply([Message(json.dumps(registration).encode())])
        with ledger.read() as session:
            accepted = set(session.scalars(select(AcceptedEvent.event_id)))
            refused = session.execute(
                select(QuarantineEntry.status, QuarantineEntry.reason).order_by(QuarantineEntry.sequence)
            ).all()
        ledger.engine.dispose()
        return accepted, [(str(status), str(reason)) for status, reason in refused]

    in_process = applied(Verifier(0), "here.sqlite")
    assert applied(pool, "pool.sqlite") == in_process
    accepted, refused = in_process
    assert {registration["id"], revocation["id"], events[0]["id"]} <= accepted
    assert len(accepted) == 3  # the first was released before the revocation, the rest after it
    assert refused.count(("quarantined", "key-not-valid-at-recordedtime")) == 69


def test_a_killed_projector_leaves_no_worker_behind(tmp_path: Path) -> None:
    script = tmp_path / "projector.py"
    script.write_text(
        "import sys, time\n"
        "from consumers.projector.verifier import Verifier\n"
        "if __name__ == '__main__':\n"
        "    verifier = Verifier(1)\n"
        "    verifier.check_all([(b'not json', None)] * 10, None)\n"  # the workers are up
        "    print(*verifier._pool._processes, flush=True)\n"
        "    time.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[2]
    projector = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert projector.stdout is not None
    workers = [int(pid) for pid in projector.stdout.readline().split()]
    assert workers
    projector.kill()
    projector.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a verification worker outlived its projector"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running (not exited; an exited orphan is reaped by init or left a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_checks_without_importing_sqlalchemy() -> None:
    """A spawned worker imports the verifier's module when it starts: SQLAlchemy was ~40% of
    that import's CPU, for error classes no check can raise (a check touches no database)."""
    code = (
        "import sys\n"
        "import consumers.projector.verifier as verifier\n"
        "verifier.check_chunk(None, [(b'not json', None)])\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'sqlalchemy'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)}, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"
