"""The draft worker: a second process that reads and checks a batch's drafts while the serving
process signs and stores the ones already checked.

Why (issue 11): an agency's chain is sequential by contract (each ``prevhash`` is the digest of
the previous signed event, signature included), so signing runs on one core, and everything
else a draft costs (JSON parsing, shape and schema checks, defaults, the event's RFC 8785 form
around its chain position: ``envelope_runs``) used to run on that same core before it, about four
times a signature. None of that depends on the chain, so it runs here, on the other core, in
chunks that stream to the serving process, which only places each event in the chain, signs it
(``Signer.sign_placed``: no serialisation) and writes the outbox rows, all in one transaction.

Guarantees kept: the batch is still all or nothing (every chunk is signed inside the outbox
transaction, which a refused draft, a lost worker or any error rolls back); a refused batch
lists every problem of every draft (the worker stops sending chunks at the first problem but
checks every draft); a worker that dies or hangs fails the request with a 503 before anything
is committed (a retry stores the batch once) and is started again for the next request.

The serving process sends each job and reads the pipe on a thread of its own (``_read_job``:
the body is sent while the serving thread begins the outbox transaction), into a queue, as
fast as the worker writes: otherwise the worker blocks in ``send`` once the socket's buffer (about
200 KB, one or two chunks) is full, whenever the serving process is busy signing the chunk
before, and the two processes take turns instead of overlapping (measured: the worker spent
100-190 ms of a 3,000-draft batch blocked in ``send``, the serving process as long waiting for
it; issue 11). The queue keeps the chunks in the order sent, and a job's messages end with its
last one, so the next job's reader starts in step.

Protocol (one duplex pipe, pickled tuples). The worker first says ``("ready",)``. Serving
process to worker: ``("job", body, ndjson, want_hash, max_events)``, ``("cancel",)`` (the
serving process gave up on the job: stop sending). Worker to serving process, per job:
``("start",)`` then ``("prepared", [framed Prepared, ...])`` chunks as the body is read
(``stream_items``), ending with ``("end", request_hash | None)`` or ``("invalid", problems,
request_hash | None)``; ``("refused", ProblemError fields)`` ends it instead when the body turns
out unreadable, empty or too long (possibly after some chunks: the serving process then rolls
back what it signed); ``("failed", message)`` for a bug in the worker. The request's hash (for
an Idempotency-Key) comes last because it covers the whole body: the serving process reads it
when it stores the key's record, or reads ahead to it when the key was used before
(``Job.request_hash``).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

from ledger.canonical import ChainRuns
from ledger.validation import Problem
from producers.gateway.drafts import RequestHash, checked_item, empty_batch, stream_items, too_many
from producers.gateway.problems import ProblemError, invalid
from producers.outbox import IDLE
from producers.sdk import Prepared, Preparer

log = logging.getLogger(__name__)

# Drafts per message: big enough that pickling and pipe traffic are a small share, small enough
# that the last chunk, signed while the worker has nothing left to do, is short. A job's first
# chunk is smaller still (the serving process waits only for the first FIRST_CHUNK drafts to be
# read and checked), and each next one a quarter larger than the last, up to CHUNK
# (``next_chunk``).
CHUNK = 200
FIRST_CHUNK = 8


def next_chunk(size: int) -> int:
    """The size of the chunk after one of ``size`` drafts: a quarter more, at most ``CHUNK``.

    Why a quarter and not twice (issue 11): while the serving process signs a chunk of n
    drafts, the worker prepares the next one, and the serving process waits for it whenever
    preparing that one takes longer than signing this one: g * n * w > n * s for a growth g,
    w and s the two sides' costs per draft. Doubling made it wait at every step of the ramp
    (for 8 + 16 + ... + 128 drafts' worth of (2w - s), ~7 ms of a 3,000-draft batch even with
    the worker 16% faster than the signer, more as the two sides get closer); at a quarter it
    waits only if the worker is more than 25% slower than the signer, and then the waits add
    up to a quarter as much. The ramp takes a few more messages (about 27 for 3,000 drafts
    against 19), a few microseconds each."""
    return min(size + max(1, size // 4), CHUNK)


# A worker that sends nothing for this long is taken for hung: killed, the request 503.
SILENCE_S = 60.0
# How long a new worker may take to import and say it is ready (start-up is not silence).
START_S = 120.0


def worker_unavailable(reason: str) -> ProblemError:
    return ProblemError(
        503, "worker-unavailable", "The gateway could not check the batch",
        f"the process checking drafts {reason}; nothing of this request was stored: retry it "
        "(with the same Idempotency-Key, if it had one)",
        headers={"Retry-After": "2"},
    )  # fmt: skip


def framed(prepared: Prepared) -> tuple[Any, ...]:
    """A prepared draft as it crosses the pipe: one flat tuple of its strings and bytes
    (``unframed`` makes it a ``Prepared`` again). Why: pickle writes a named tuple as a call of
    its class (a REDUCE, twice per draft with its ``ChainRuns``), which cost 2.2 us a draft to
    write and 0.9-1.4 to read; the flat tuple costs 0.3 to make, 0.9 to write and 0.8 to read
    and rebuild (CPU time, least of 9, issue 11; in instructions, callgrind, the worker's whole
    per-draft path is the same within 1%: the saving is in memory traffic, not in code run)."""
    return prepared[:5] + prepared.runs


def unframed(flat: tuple[Any, ...]) -> Prepared:
    """``framed``'s inverse, by ``tuple.__new__`` (C) rather than the named tuples' generated
    ``__new__`` (Python): the serving process rebuilds thousands per request."""
    runs = tuple.__new__(ChainRuns, flat[5:])
    return tuple.__new__(Prepared, (flat[0], flat[1], flat[2], flat[3], flat[4], runs))


# -- in the worker process -----------------------------------------------------------------------
def serve(conn: Connection, preparer: Preparer) -> None:
    """The worker's loop: one job at a time until the pipe closes (the serving process closes
    it on shutdown, and the kernel does if that process dies, so no worker outlives it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    gc.freeze()  # the imports and compiled validators live as long as the process (see app.py)
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] != "job":
            continue  # a "cancel" that crossed the end of its job
        _, raw, ndjson, want_hash, max_events = message
        try:
            _job(conn, preparer, raw, ndjson, want_hash, max_events)
        except ProblemError as exc:
            conn.send(("refused", (exc.status, exc.slug, exc.title, exc.detail, exc.problems, exc.headers)))
        except Exception as exc:  # a bug: say so and stay up for the next request
            log.exception("the draft worker failed")
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))


def _job(
    conn: Connection, preparer: Preparer, raw: bytes, ndjson: bool, want_hash: bool, max_events: int
) -> None:
    """Read, hash and check the body item by item, sending chunks of prepared drafts as they
    are ready: the first ones small, so the serving process starts signing after a few drafts
    rather than after the whole body was parsed (``FIRST_CHUNK``)."""
    conn.send(("start",))
    preparer = preparer.at_receipt()
    hashed = RequestHash("drafts") if want_hash else None
    chunk: list[tuple[Any, ...]] = []
    problems: list[Problem] = []
    size, count = FIRST_CHUNK, 0
    for index, item in enumerate(stream_items(raw, ndjson)):
        if index == max_events:
            raise too_many(f"more than {max_events}", max_events)
        if hashed is not None:
            hashed.add(item)
        ready, found = checked_item(preparer, index, item)
        count += 1
        if found:
            problems += found
        elif ready is not None and not problems:
            chunk.append(framed(ready))
        if len(chunk) == size:
            conn.send(("prepared", chunk))
            chunk, size = [], next_chunk(size)
        if count % CHUNK == 0 and conn.poll() and conn.recv()[0] == "cancel":
            conn.send(("end", None))
            return
    if not count:
        raise empty_batch()
    digest = None if hashed is None else hashed.hexdigest()
    if problems:
        conn.send(("invalid", problems, digest))
        return
    if chunk:
        conn.send(("prepared", chunk))
    conn.send(("end", digest))


# -- in the serving process ----------------------------------------------------------------------
# The kinds of message that end a job (each job ends with exactly one).
LAST = frozenset({"end", "invalid", "refused", "failed"})
# What the reader thread queues when the pipe breaks (the worker died or was stopped).
_BROKEN = ("broken",)


def _read_job(
    conn: Connection,
    messages: queue.SimpleQueue[Any],
    request: tuple[Any, ...] | None,
    sent: threading.Event,
    read_all: Callable[[], None],
) -> None:
    """The reader thread of one job: sends the job (``request``, when given) and then reads
    every message the worker sends, in order, up to the job's last one (and then calls
    ``read_all``: the worker is free for the next job), or ``_BROKEN`` once the pipe breaks.

    Why the job is sent here (issue 11): the body crosses the pipe whole, and a body larger
    than the socket's buffer (~200 KB; a 3,000-draft body is ~860 KB) blocks ``send`` until the
    worker has read most of it; sent from the serving thread, that was serial time before the
    outbox transaction began. Sent here, the serving thread begins the transaction (and looks up
    an Idempotency-Key) meanwhile and then waits for the worker's ``start``."""
    try:
        if request is not None:
            try:
                conn.send(request)
            except OSError:
                messages.put(_BROKEN)
                return
    finally:
        sent.set()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            messages.put(_BROKEN)
            return
        messages.put(message)
        if message[0] in LAST:
            read_all()
            return


class Job:
    """One batch as the worker reports it; ``prepared()`` is read inside the outbox transaction.

    The job holds the worker from its sending until its reader thread has read its last
    message, not until the serving process has signed it: then the worker takes the next
    request's job while this one's last chunks are still being signed and committed. Why
    (issue 11): the serving process's signing thread is the batch's critical path, and with
    the worker held for a whole request, a second request in flight waited for the first's
    commit before its first draft was even read: each request's head (the worker reading the
    body and its first chunk) and tail (the commit, the answer, the client's next upload) were
    serial time on that thread. ``release_worker`` is called exactly once: by the reader at the
    job's last message, or by ``DraftWorker.job`` after replacing a lost worker."""

    def __init__(
        self,
        conn: Connection,
        silence_s: float,
        received: Callable[[], None],
        release_worker: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._silence_s = silence_s
        self._received = received
        self._release_worker = release_worker
        self.finished = False  # the serving process has read this job's last message
        self.lost = False  # the worker died or hung: it must be replaced
        self._hash: str | None = None  # the request's hash, with the job's last message
        self._started = False  # the worker's "start" was read
        self._messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sent = threading.Event()  # the job is sent (or its sending failed): the pipe is free
        self._reader: threading.Thread | None = None
        self._holding = True  # the worker is this job's (see the class's docstring)
        # held while a "cancel" is sent, so that it always reaches the worker before the next job
        self._holding_lock = threading.Lock()

    def read(self, request: tuple[Any, ...] | None = None) -> None:
        """Send the job (``request``; None: it was sent already) and read the worker's messages
        for it, on the job's reader thread (``_read_job``)."""
        self._reader = threading.Thread(
            target=_read_job, args=(self._conn, self._messages, request, self._sent, self.let_go),
            name="sgledger-gateway-drafts-reader", daemon=True,
        )  # fmt: skip
        self._reader.start()

    def let_go(self) -> None:
        """Free the worker for the next job (once; later calls do nothing)."""
        with self._holding_lock:
            if not self._holding:
                return
            self._holding = False
        self._release_worker()

    def take_back(self) -> bool:
        """Keep the worker from the next job (the caller replaces it, then calls
        ``release_worker`` itself): True if it was still this job's, False if the reader had
        already read the job's end and let it go (then it is in step and left alone)."""
        with self._holding_lock:
            holding, self._holding = self._holding, False
        return holding

    def stop_reading(self, timeout_s: float) -> None:
        """Wait for the reader thread (it ends at the job's last message, or when the pipe
        breaks: call this only once the worker has finished the job or been killed)."""
        if self._reader is not None:
            self._reader.join(timeout_s)

    def _recv(self) -> Any:
        try:
            message = self._messages.get(timeout=self._silence_s)
        except queue.Empty:
            self.lost = True
            raise worker_unavailable(f"sent nothing for {self._silence_s:.0f} s") from None
        if message is _BROKEN:
            self.lost = True
            raise worker_unavailable("stopped")
        return message

    def start(self) -> None:
        """Wait until the worker has the job (the whole body); raises if it refused it
        outright. Read once, before any other message of the job: ``prepared`` and
        ``request_hash`` call it, so the serving process begins its transaction meanwhile."""
        if not self._started:
            self._started = True
            self._check(self._final(self._recv()), "start")

    def prepared(self) -> Iterator[Prepared | None]:
        """Every draft of the batch, prepared, as the chunks arrive, with ``IDLE`` (None)
        after a chunk when the next has not arrived yet (``Outbox.append_each`` then signs
        what it has read and stores what it has signed, rather than wait); raises the 422
        listing every problem if any draft was refused, or the body's refusal (400, 413, 422)
        when the worker finds it, which may be after some chunks."""
        self.start()
        while True:
            message = self._final(self._recv())
            if message[0] == "prepared":
                self._received()
                yield from map(unframed, message[1])
                if self._messages.empty():
                    yield IDLE
            elif message[0] == "invalid":
                raise invalid(message[1], "the batch")
            else:
                self._check(message, "end")
                return

    def request_hash(self) -> str:
        """The request's hash (``RequestHash``; the job must have been started with
        ``want_hash``): known once the worker has read the whole body, so this reads up to the
        job's last message, dropping chunks not read yet (an earlier request with the same
        Idempotency-Key is answered without signing this one)."""
        self.start()
        while not self.finished:
            message = self._final(self._recv())
            if message[0] not in ("prepared", "invalid"):
                self._check(message, "end")
        if self._hash is None:
            raise RuntimeError("the draft worker was not asked for the request's hash")
        return self._hash

    def _final(self, message: Any) -> Any:
        """``message``, noting the job's end and hash if it is the last one; raises the body's
        refusal."""
        if message[0] in ("end", "invalid"):
            self.finished = True
            self._hash = message[-1]
        elif message[0] == "refused":
            self.finished = True
            status, slug, title, detail, problems, headers = message[1]
            raise ProblemError(status, slug, title, detail, problems=problems, headers=headers)
        return message

    def _check(self, message: Any, expected: str) -> None:
        if message[0] == "failed":
            self.finished = True
            raise RuntimeError(f"the draft worker failed: {message[1]}")
        if message[0] != expected:
            self.lost = True  # out of step: start again with a new worker
            raise RuntimeError(f"the draft worker sent {message[0]!r}, expected {expected!r}")

    def abandon(self) -> None:
        """The serving process stops reading (refused, replayed, failed): tell the worker, if
        it is still on this job, and read up to the job's last message. The job's own sending
        must be over first (the reader thread sends it): two threads writing one pipe would
        interleave their bytes."""
        if not self._sent.wait(self._silence_s):
            self.lost = True
            raise worker_unavailable(f"took no job for {self._silence_s:.0f} s")
        with self._holding_lock:
            if self._holding:
                self._conn.send(("cancel",))
        while not self.finished:
            self.finished = self._recv()[0] in LAST


class DraftWorker:
    """The worker process, started at once and again whenever one is lost; one job at a time,
    each held only until its last message is read (``Job``). Started with ``spawn``, which imports
    the main module again in the worker: a program embedding the gateway needs the usual
    ``if __name__ == "__main__"`` guard (the CLI's entry points have it)."""

    def __init__(self, preparer: Preparer, *, silence_s: float = SILENCE_S) -> None:
        self._preparer = preparer
        self.silence_s = silence_s
        self.chunks = 0  # chunks received, all jobs (to see a batch under way)
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        with self._lock:
            self._start()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _start(self) -> None:
        # spawn, not fork: the serving process has threads (uvicorn's pool, the relay)
        context = multiprocessing.get_context("spawn")
        here, there = context.Pipe()
        process = context.Process(
            target=serve, args=(there, self._preparer), name="sgledger-gateway-drafts", daemon=True
        )
        process.start()
        there.close()
        self._process, self._conn = process, here
        try:
            ready = here.poll(START_S) and here.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop()
            raise worker_unavailable(f"did not start within {START_S:.0f} s")

    def _kill(self) -> None:
        """Kill the worker: its end of the pipe closes, so a thread reading ours sees the pipe
        break (before ``_stop`` closes our end: a descriptor closed under a reading thread
        could be reused by another before that thread returns to it)."""
        if self._process is not None:
            self._process.kill()
            self._process.join(5)

    def _stop(self) -> None:
        self._kill()
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def _count_chunk(self) -> None:
        self.chunks += 1

    @contextmanager
    def job(self, raw: bytes, ndjson: bool, want_hash: bool, max_events: int) -> Iterator[Job]:
        """One batch's job: waits until the worker is free (the previous job's last message
        read, not its batch signed: see ``Job``), sends the job and yields it."""
        self._lock.acquire()  # released by the job (``Job.let_go``) or below, whichever first
        try:
            if self._process is None or not self._process.is_alive():
                self._stop()
                self._start()
            assert self._conn is not None
            job = Job(self._conn, self.silence_s, self._count_chunk, self._lock.release)
        except BaseException:
            self._lock.release()
            raise
        try:
            job.read(("job", raw, ndjson, want_hash, max_events))  # sent on the job's reader thread
            yield job
        finally:
            if not job.finished and not job.lost:
                try:
                    job.abandon()
                except (ProblemError, OSError):
                    job.lost = True
            if job.lost and job.take_back():  # still this job's worker: replace it
                try:
                    self._kill()
                    job.stop_reading(5)  # the pipe broke
                    self._stop()
                finally:
                    self._lock.release()
            else:
                job.stop_reading(5)  # it has read the job's last message
                job.let_go()  # a reader that could not start never did

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(OSError):
                    self._conn.send(None)
            if self._process is not None:
                self._process.join(5)
            self._stop()
