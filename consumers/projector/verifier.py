"""Pre-verification of a batch's messages, in this process or across a pool of processes.

Parsing, schema validation, the canonical form and the Ed25519 signature are a pure function of
the message bytes, their receipt time and the key registry, and they were more than half of the
intake stage's CPU (issue 13: ~180 of ~315 us per event). They need no database and no order, so
they can run on the other core while this process does what must be serial: the ordered accept
under the ledger's writer lock. What comes back is exactly what the in-process check returns (the
same function runs in the worker), so a pool changes where the work runs, never a verdict.

Why processes, not threads: every step is Python holding the GIL except the libsodium call.
Why ``spawn``: the projector runs kafka-python's threads, and forking a process with threads can
copy a lock held by one of them; a spawned worker imports only this module's dependencies
(about 0.3 s, once, in the background while the consumer joins its group).

A worker that dies (killed, out of memory) is infrastructure, never a message's fault: its chunk
is verified again in this process, the pool is replaced, and no message is quarantined for it.

The default, one worker (``DEFAULT_WORKERS``), was chosen by measurement on the project's
two-core machine (issue 13, bench/RESULTS.md): it moved 0.23-0.32 ms of CPU per event of a
10,000-event replay to the other core and cut the projector process's own CPU per event by
10-20% (0.94-1.05 ms against 1.13 ms; `Applier.apply` alone 556-581 us against 612-732 us).
More workers than spare cores only add copying; on a one-core machine use 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from rfc8785 import CanonicalizationError

from consumers.projector.collector import collect_less
from ledger.canonical import canonical_forms
from ledger.keyregistry import KeyRegistry
from ledger.stored import envelope_json, stored_times
from ledger.verification import Reason, Rejection, check_event, parse_message

log = logging.getLogger(__name__)
DEFAULT_WORKERS = 1  # chosen by measurement: see the module docstring
# Fewer messages than this are checked in this process: below it, sending them and the registry
# to a worker costs more than checking them (a steady low rate: one or two per poll).
POOL_FROM = 64
# Most messages in one task of a worker (see ``Verifier.start``).
CHUNK = 250

# Failures of this machine, never of one message (the applier adds the database's own:
# ``consumers.projector.applier.INFRASTRUCTURE_ERRORS``). A check touches no database, so only
# these can come out of one; the module does not import SQLAlchemy for that reason: a worker
# imports this module when it starts, and SQLAlchemy was about 40% of that import (issue 13:
# a worker's start cost ~0.5 s of CPU, a twentieth of a 10,000-event replay's verification).
MACHINE_ERRORS: tuple[type[BaseException], ...] = (MemoryError, OSError)
# What recording a passed message needs that checking it can make: its whole canonical form (the
# chain digest's input: computed once here, not again on acceptance), the envelope's part of
# its stored state and its two times as the index stores them (``ledger.stored``: made in the
# worker, so the projector's process does not). A plain tuple: a worker pickles one per
# message, and a named class costs more to unpickle.
Forms = tuple[bytes, bytes, tuple[str, str]]
# A message's verdict and, when it passed, its forms.
Checked = tuple[dict[str, Any] | Rejection, Forms | None]
Item = tuple[bytes, datetime | None]  # raw message, when the partnership received it


def check(raw: bytes, registry: KeyRegistry, received: datetime | None) -> Checked:
    """Parse, schema, key and signature (``ledger.verification.check_event``) with one canonical
    pass for the signing input and the chain digest; a passed message's forms (``Forms``)."""
    parsed = parse_message(raw)
    if isinstance(parsed, Rejection):
        return parsed, None
    try:
        canonical, signed = canonical_forms(parsed)
    except CanonicalizationError:
        # Not serialisable (e.g. an integer beyond 2**53): judged as before, refused by schema.
        canonical, signed = None, None
    refusal = check_event(parsed, registry, received, signed)
    if refusal is not None:
        return refusal, None
    return parsed, None if canonical is None else (canonical, envelope_json(parsed), stored_times(parsed))


def check_isolated(raw: bytes, registry: KeyRegistry, received: datetime | None) -> Checked:
    """``check``, with anything it raises turned into this message's refusal: it runs before the
    write transaction, so nothing else is affected (issue 9: no message stops the projector)."""
    try:
        return check(raw, registry, received)
    except MACHINE_ERRORS:
        raise
    except Exception as error:
        return internal_error(error), None


def check_chunk(registry: KeyRegistry, items: Sequence[Item]) -> list[Checked]:
    """A worker's task: ``check_isolated`` of each item, in order."""
    return [check_isolated(raw, registry, received) for raw, received in items]


def internal_error(error: BaseException) -> Rejection:
    """The refusal for an unanticipated failure: the exception's class and the first line of
    its message, cut short (a database error's text can carry the statement and its values)."""
    message = (str(error).splitlines() or [""])[0][:200]
    return Rejection(
        Reason.INTERNAL_ERROR,
        f"{type(error).__name__}: {message} (a fault in the projector, not necessarily in the "
        "message; `sgledger quarantine readmit` once it is fixed)",
    )


def _ready() -> None:
    """Nothing: submitted once per worker at start so the pool's imports happen early."""


def _exit_with(parent: int) -> None:
    """A worker's initializer: exit once the projector that started it is gone (a projector
    killed with SIGKILL cannot shut its pool down, and its worker would wait for work forever:
    found by the SIGKILL test, one orphan per kill), and collect garbage at the projector's pace
    (``consumers.projector.collector``)."""
    collect_less()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-projector", daemon=True).start()


class Verifier:
    """``workers`` = 0 checks in this process, when the verdicts are asked for. With workers,
    ``start`` hands a batch to them at once, in chunks, and returns; ``Pending.result`` collects
    it, and this process checks every chunk no worker has begun by then (from the end, while the
    workers go on from the front). Asked at once (``check_all``, a batch with nothing verified
    ahead) both cores verify one batch; asked after applying the previous batch (the runner's
    overlap), this process takes over whatever the workers have not reached, instead of waiting
    idle for them.

    Why take over rather than a fixed split: how long applying a batch takes depends on the
    stage and the batch (the intake stage alone applies 5,000 events in about a third of the time
    its worker needs to verify them; stage ``both``, with the children, takes longer than the
    worker), so a fixed share leaves one core idle in one of the cases. Before (issue 13), the
    overlapped batch went to the workers whole and the intake stage waited for them; the first
    batch was split in halves."""

    def __init__(self, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError("verify workers must be 0 or more")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        # Messages whose verdicts this process made and those the workers made, for the
        # benchmarks (bench/ingest.py): how much of the checking stayed on the serial process.
        self.checked_here = 0
        self.checked_by_workers = 0
        if workers:
            self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with,
            initargs=(os.getpid(),),
        )
        for _ in range(self.workers):
            pool.submit(_ready)
        self._pool = pool
        return pool

    def check_all(self, items: Sequence[Item], registry: KeyRegistry) -> list[Checked]:
        """The verdict of each item, in order."""
        return self.start(items, registry).result()

    def start(self, items: Sequence[Item], registry: KeyRegistry) -> Pending:
        """Begin checking ``items`` against ``registry``; the verdicts come from ``result``."""
        if not self.workers or len(items) < POOL_FROM:
            return Pending(self, registry, [(items, None)])
        pool = self._pool or self._start()
        # Small enough that this process and the workers end together (a chunk is ~75 ms of
        # checks), at least two per hand for a small batch.
        size = max(1, min(CHUNK, -(-len(items) // (2 * (self.workers + 1)))))
        parts: list[tuple[Sequence[Item], Future[list[Checked]] | None]] = []
        for start in range(0, len(items), size):
            part = items[start : start + size]
            try:
                parts.append((part, pool.submit(check_chunk, registry, part)))
            except BrokenProcessPool:
                self._replace()
                parts.append((part, None))
        return Pending(self, registry, parts)

    def intact(self) -> bool:
        """Whether the pool has not noticed a dead worker. Chunks are taken over (their futures
        cancelled) only then: CPython 3.11's pool, marking every pending future failed when a
        worker dies, raises in its own thread on one that is cancelled (3.12 ignores it). That
        can still happen if a worker dies between this check and a cancel; the pool is broken
        then anyway and is replaced, and no verdict waits on it: the futures it leaves unmarked
        come after the cancelled ones (it starts them in order), so they are pending still and
        taken over here too."""
        return self._pool is not None and not getattr(self._pool, "_broken", False)

    def _replace(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class Pending:
    """A batch being checked: chunks in order, each with a worker's future, or None to check it
    here. ``taken`` counts the chunks this process took over from the workers."""

    def __init__(
        self,
        verifier: Verifier,
        registry: KeyRegistry,
        parts: list[tuple[Sequence[Item], Future[list[Checked]] | None]],
    ) -> None:
        self.verifier, self.registry, self.parts = verifier, registry, parts
        self.taken = 0

    def result(self) -> list[Checked]:
        """Every verdict, in order. Chunks no worker has begun are checked here first, from the
        last one back (a cancelled future is one the pool will never start; the workers take
        chunks from the front); a chunk whose worker died is checked here (see the module doc)."""
        verdicts: dict[int, list[Checked]] = {}
        for i in reversed(range(len(self.parts))):
            part, future = self.parts[i]
            if future is None or (self.verifier.intact() and future.cancel()):
                verdicts[i] = check_chunk(self.registry, part)
                self.verifier.checked_here += len(part)
                self.taken += future is not None
        results: list[Checked] = []
        for i, (part, future) in enumerate(self.parts):
            if i in verdicts:
                results.extend(verdicts[i])
                continue
            assert future is not None
            try:
                results.extend(future.result())
                self.verifier.checked_by_workers += len(part)
            except BrokenProcessPool:
                if self.verifier._pool is not None:
                    log.warning("a verification worker died: its chunks are checked here, pool restarted")
                    self.verifier._replace()
                results.extend(check_chunk(self.registry, part))
                self.verifier.checked_here += len(part)
        return results

    def cancel(self) -> None:
        """The batch will not be applied (the runner rewinds): drop what has not started."""
        for _, future in self.parts:
            if future is not None:
                future.cancel()
