"""The draft worker (producers/gateway/worker.py): a batch checked in a second process while the
serving process signs. Driven through ``Gateway`` in this process, with the real worker process
and a real SQLite outbox, so a test can stop or kill the worker at a chosen moment."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pickle
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from starlette.responses import JSONResponse

from bench.gateway import cpu_seconds
from ledger.canonical import ChainRuns, event_digest
from ledger.envelope import SignedEvent, unsigned_event
from ledger.signing import signature_valid
from ledger.timeutil import parse_time
from producers.gateway.app import _batch_receipt, _receipts
from producers.gateway.drafts import checked
from producers.gateway.problems import ProblemError
from producers.gateway.service import Gateway, GatewayConfig, Outcome
from producers.gateway.tokens import Caller
from producers.gateway.worker import CHUNK, FIRST_CHUNK, Job, framed, next_chunk, unframed
from producers.outbox import IDLE, Outbox
from producers.sdk import Prepared
from tests.gateway.conftest import AGENCY, INCIDENT, draft

CALLER = Caller("token-1", "records-system")


def body(count: int, start: int = 0, **overrides: Any) -> bytes:
    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{start + n}"}, **overrides) for n in range(count)]
    return json.dumps(items).encode()


@pytest.fixture
def service(data_dir: Path) -> Iterator[Gateway]:
    gateway = Gateway(
        GatewayConfig(
            agency=AGENCY, keys_dir=data_dir / "keys", outbox_url=f"sqlite:///{data_dir}/outbox.sqlite"
        )
    )
    yield gateway
    gateway.close()


def chain_of(gateway: Gateway) -> list[dict[str, Any]]:
    """The stored chain, checked link by link: sequences 1..n, each prevhash the digest of
    the event before, every signature valid."""
    events = [Outbox.decode(row.payload) for row in gateway.outbox.events(AGENCY)]
    public = gateway._public_key
    previous = ""
    for sequence, event in enumerate(events, 1):
        assert event["sequence"] == sequence and event["prevhash"] == previous
        assert signature_valid(event, public)
        previous = event_digest(event)
    return events


def in_thread(call: Callable[[], Outcome]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = call()
        except Exception as exc:  # the assertion is on what was raised
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_batch_checked_in_the_worker_is_the_chain_the_single_process_path_makes(
    service: Gateway, data_dir: Path
) -> None:
    first = service.publish_draft_batch(CALLER, None, body(450), ndjson=False)
    lines = b"\n".join(json.dumps(draft(subject=f"C-{n}")).encode() for n in range(5))
    second = service.publish_draft_batch(CALLER, None, lines, ndjson=True)
    in_process = service.publish_drafts(CALLER, None, [draft(subject="C-9")], batch=True)
    events = chain_of(service)
    assert len(events) == 456
    assert [e.event_id for e in first.events + second.events + in_process.events] == [e["id"] for e in events]
    assert [e.payload for e in first.events] == [row.payload for row in service.outbox.events(AGENCY)[:450]]
    # in the body's order, each draft once, across every chunk the worker sent (8, 10, 12 ... 200)
    assert [e["data"]["incident_ref"] for e in events[:450]] == [f"INC-{n}" for n in range(450)]
    assert [e["subject"] for e in events[450:455]] == [f"C-{n}" for n in range(5)]


def test_chunks_grow_by_a_quarter_up_to_the_cap() -> None:
    """The ramp the serving process waits on (``next_chunk``): each chunk at most a quarter
    larger than the one before, so a worker up to 25% slower per draft than the signer never
    keeps it waiting after the first chunk; and it does reach the cap, so a long batch is
    not sent in thousands of small messages."""
    sizes = [FIRST_CHUNK]
    while sizes[-1] < CHUNK and len(sizes) < 100:
        sizes.append(next_chunk(sizes[-1]))
    assert sizes[-1] == CHUNK and next_chunk(CHUNK) == CHUNK
    assert all(before < after <= before * 1.25 for before, after in pairwise(sizes))
    assert len(sizes) < 20


def test_a_worker_killed_mid_request_fails_it_with_503_and_the_retry_stores_it_once(
    service: Gateway,
) -> None:
    service.publish_draft_batch(CALLER, "before", body(10), ndjson=False)
    assert service.worker is not None
    pid = service.worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the worker will not finish this request on its own
    request = body(2000, start=10)
    thread, result = in_thread(lambda: service.publish_draft_batch(CALLER, "batch-2", request, ndjson=False))
    time.sleep(0.5)
    assert thread.is_alive()  # waiting for the stopped worker, inside the outbox transaction
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    error = result.get("error")
    assert isinstance(error, ProblemError), result
    assert error.status == 503 and error.slug == "worker-unavailable"
    assert "nothing of this request was stored" in error.detail
    assert len(chain_of(service)) == 10  # nothing of the failed request

    retried = service.publish_draft_batch(CALLER, "batch-2", request, ndjson=False)  # a new worker
    again = service.publish_draft_batch(CALLER, "batch-2", request, ndjson=False)
    assert service.worker.pid != pid
    assert not retried.replayed and again.replayed
    assert [e.event_id for e in again.events] == [e.event_id for e in retried.events]
    assert [e.sequence for e in retried.events] == list(range(11, 2011))
    assert len(chain_of(service)) == 2010


def test_a_request_failing_while_its_body_is_still_being_sent_leaves_the_worker_in_step(
    data_dir: Path,
) -> None:
    """The job's body is sent on its reader thread while the serving thread begins the outbox
    transaction (``Job.read``). When that transaction fails (the outbox locked past the busy
    timeout) before the worker has even taken the body (it is stopped, so the send blocks),
    the request is a 503 with nothing stored, the cancel waits for the send to end rather than
    write into the middle of it, and the same worker takes the next request."""
    outbox = data_dir / "outbox.sqlite"
    gateway = Gateway(
        GatewayConfig(
            agency=AGENCY, keys_dir=data_dir / "keys", outbox_url=f"sqlite:///{outbox}", busy_timeout_s=0.3
        )
    )
    try:
        assert gateway.worker is not None and gateway.worker.pid is not None
        pid = gateway.worker.pid
        gateway.publish_draft_batch(CALLER, None, body(5), ndjson=False)
        blocker = sqlite3.connect(outbox, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        os.kill(pid, signal.SIGSTOP)
        try:
            thread, result = in_thread(
                lambda: gateway.publish_draft_batch(CALLER, "k", body(3000, start=5), ndjson=False)
            )
            time.sleep(1.5)  # past the busy timeout: the request is cancelling, its body half sent
            assert thread.is_alive()
        finally:
            os.kill(pid, signal.SIGCONT)
            blocker.execute("ROLLBACK")
            blocker.close()
        thread.join(30)
        error = result.get("error")
        assert isinstance(error, ProblemError) and error.slug == "outbox-unavailable", result
        after = gateway.publish_draft_batch(CALLER, "k", body(3000, start=5), ndjson=False)
        assert gateway.worker.pid == pid and not after.replayed
        assert [e.sequence for e in after.events] == list(range(6, 3006))
        assert len(chain_of(gateway)) == 3005
    finally:
        gateway.close()


def test_a_worker_killed_after_sending_part_of_the_batch_leaves_nothing_stored(service: Gateway) -> None:
    """Killed while the serving process is already signing its chunks."""
    assert service.worker is not None
    pid = service.worker.pid
    assert pid is not None
    before = service.worker.chunks
    thread, result = in_thread(lambda: service.publish_draft_batch(CALLER, None, body(9000), ndjson=False))
    deadline = time.monotonic() + 60
    while service.worker.chunks == before and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert isinstance(result.get("error"), ProblemError), result
    assert result["error"].status == 503
    assert service.outbox.events(AGENCY) == []
    assert len(service.publish_draft_batch(CALLER, None, body(3), ndjson=False).events) == 3
    assert len(chain_of(service)) == 3


def test_a_silent_worker_is_replaced_after_the_silence_limit(data_dir: Path) -> None:
    gateway = Gateway(
        GatewayConfig(
            agency=AGENCY, keys_dir=data_dir / "keys", outbox_url=f"sqlite:///{data_dir}/outbox.sqlite"
        )
    )
    try:
        assert gateway.worker is not None
        gateway.worker.silence_s = 0.5
        pid = gateway.worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(ProblemError, match=r"sent nothing for \d+ s") as refused:
            gateway.publish_draft_batch(CALLER, None, body(5), ndjson=False)
        assert refused.value.status == 503
        gateway.worker.silence_s = 60.0
        assert len(gateway.publish_draft_batch(CALLER, None, body(5), ndjson=False).events) == 5
        assert gateway.worker.pid != pid
    finally:
        gateway.close()


def test_refusals_list_every_problem_and_leave_the_worker_in_step(service: Gateway) -> None:
    broken = [draft(), draft(data={**INCIDENT, "children_present": "yes"}), draft(type="nope"), draft()]
    with pytest.raises(ProblemError) as refused:
        service.publish_draft_batch(CALLER, None, json.dumps(broken * 300).encode(), ndjson=False)
    assert refused.value.status == 422
    paths = {p.path for p in refused.value.problems}
    assert paths == {
        f"/{4 * n + i}{p}" for n in range(300) for i, p in ((1, "/data/children_present"), (2, "/type"))
    }
    for unreadable, status in ((b"[", 400), (b'{"a": 1}', 400), (b"[]", 422)):
        with pytest.raises(ProblemError) as answer:
            service.publish_draft_batch(CALLER, None, unreadable, ndjson=False)
        assert answer.value.status == status
    # a draft refused only once signed (over the size limit), after many were signed: rolled back
    huge = draft(data={**INCIDENT, "parties": [{"person": "P-m", "role": "victim"}] * 40_000})
    items = [draft()] * 1000 + [huge] + [draft()] * 1000
    with pytest.raises(Exception, match="1048576 bytes"):
        service.publish_draft_batch(CALLER, None, json.dumps(items).encode(), ndjson=False)
    assert service.outbox.events(AGENCY) == []
    # an answer replayed from the idempotency record abandons the worker's job mid-way
    first = service.publish_draft_batch(CALLER, "k", body(1000), ndjson=False)
    again = service.publish_draft_batch(CALLER, "k", body(1000), ndjson=False)
    assert again.replayed and [e.payload for e in again.events] == [e.payload for e in first.events]
    after = service.publish_draft_batch(CALLER, None, body(5, start=5000), ndjson=False)
    assert [e.sequence for e in after.events] == list(range(1001, 1006))
    assert len(chain_of(service)) == 1005


def test_ids_given_by_the_caller_find_the_stored_events_through_the_worker(service: Gateway) -> None:
    """The worker sends drafts without their dicts (``Prepared.lean``): a retried batch with the
    caller's ids is still recognised as the same events, and an id reused for other data is a
    clash, decided on the event rebuilt from its canonical bytes."""
    items = [draft(id=str(uuid.UUID(int=n + 1)), subject=f"C-{n}") for n in range(300)]
    first = service.publish_draft_batch(CALLER, None, json.dumps(items).encode(), ndjson=False)
    again = service.publish_draft_batch(CALLER, None, json.dumps(items).encode(), ndjson=False)
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert [e.digest for e in again.events] == [e.digest for e in first.events]
    clash = [*items[:5], {**items[5], "data": {**INCIDENT, "incident_ref": "other"}}]
    with pytest.raises(ProblemError) as refused:
        service.publish_draft_batch(CALLER, None, json.dumps(clash).encode(), ndjson=False)
    assert refused.value.status == 409 and refused.value.slug == "duplicate-id"
    assert len(chain_of(service)) == 300


def test_a_prepared_draft_is_the_envelope_the_producer_builds(service: Gateway) -> None:
    """Drafts are framed from their parts (``envelope_runs``), not from an assembled envelope:
    what is framed must be ``unsigned_event`` of the same draft, member for member."""
    [(ready, problems)] = list(checked(service.producer.preparer, [draft(subject="C-7")], batch=True))
    assert ready is not None and not problems
    event = ready.event()
    reference = unsigned_event(
        kid=service.kid, source=AGENCY, event_type="incident.reported", subject="C-7", data=INCIDENT,
        time=parse_time("2024-03-05T21:40:00+00:00"), recordedtime=parse_time(event["recordedtime"]),
        sequence=1, prevhash="", event_id=ready.id,
    )  # fmt: skip
    assert event == reference and ready.event_id is None and ready.subject == "C-7"


def test_a_prepared_draft_crosses_the_pipe_whole(service: Gateway) -> None:
    """Chunks carry drafts as flat tuples (``framed``) that the serving process makes
    ``Prepared`` again (``unframed``): every field, the caller's id included, in its place."""
    items = [draft(subject="C-7"), draft(subject="C-8", id=str(uuid.UUID(int=8)))]
    for ready, _ in checked(service.producer.preparer, items, batch=True):
        assert ready is not None
        back = unframed(pickle.loads(pickle.dumps(framed(ready))))
        assert type(back) is Prepared and type(back.runs) is ChainRuns
        assert back == ready and back._asdict() == ready._asdict() and back.runs == ready.runs
        assert back.event() == ready.event()


def test_the_serving_side_says_idle_only_when_no_chunk_is_waiting(service: Gateway) -> None:
    """``Job.prepared`` yields ``IDLE`` after a chunk when the next has not arrived (the outbox
    then signs and stores what it has instead of waiting, issue 11), never in place of a draft:
    the drafts come whole and in order. The test plays the worker's side of the protocol over
    a real pipe, so what has arrived when is decided here."""
    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(5)]
    ready = [p for p, _ in checked(service.producer.preparer, items, batch=True)]
    assert all(p is not None for p in ready)
    here, worker_end = multiprocessing.Pipe()
    job = Job(here, 10.0, lambda: None, lambda: None)
    job.read()
    worker_end.send(("start",))
    worker_end.send(("prepared", [framed(p) for p in ready[:2] if p is not None]))
    job.start()
    stream = job.prepared()
    assert [next(stream), next(stream), next(stream)] == [ready[0], ready[1], IDLE]
    worker_end.send(("prepared", [framed(p) for p in ready[2:4] if p is not None]))
    worker_end.send(("prepared", [framed(p) for p in ready[4:] if p is not None]))
    worker_end.send(("end", None))
    rest = list(stream)  # whether an IDLE comes between the last two chunks depends on timing
    assert rest[0] == ready[2] and [p for p in rest if p is not IDLE] == ready[2:]
    assert all(rest[i - 1] in (ready[3], ready[4]) for i, p in enumerate(rest) if p is IDLE)
    job.stop_reading(5)
    here.close()
    worker_end.close()


def test_a_body_is_streamed_and_one_that_breaks_off_late_stores_nothing(service: Gateway) -> None:
    """The worker reads the body item by item and sends the first drafts before it has read
    the last (``stream_items``): a body whose end is unreadable is refused (400, 413) after
    chunks were signed, and nothing of it is stored."""
    assert service.worker is not None
    good = body(2000)
    for unreadable, ndjson in (
        (good[:-1] + b", {", False),  # an array that breaks off
        (good[:-1] + b"] x", False),  # something after the array
        (b"\n".join(json.dumps(draft()).encode() for _ in range(2000)) + b"\n{no", True),
    ):
        before = service.worker.chunks
        with pytest.raises(ProblemError) as refused:
            service.publish_draft_batch(CALLER, None, unreadable, ndjson=ndjson)
        assert refused.value.status == 400
        assert service.worker.chunks > before  # signing had started: the body was streamed
    assert refused.value.problems[0].path == "/2000"  # the NDJSON line, as before
    small = Gateway(dataclasses.replace(service.config, max_batch_events=500))
    try:
        with pytest.raises(ProblemError) as too_long:
            small.publish_draft_batch(CALLER, None, good, ndjson=False)
        assert too_long.value.status == 413 and "more than 500" in too_long.value.detail
    finally:
        small.close()
    assert service.outbox.events(AGENCY) == []
    assert len(service.publish_draft_batch(CALLER, None, body(3), ndjson=False).events) == 3


def test_an_idempotency_key_binds_the_same_request_through_either_path(service: Gateway) -> None:
    """The worker hashes the body as it streams it (``RequestHash``): the hash must be the one
    the single-process path computes from the parsed body, so a request stored by one path and
    retried by the other (or as NDJSON) is a replay, and a different body with the key a 409."""
    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(400)]
    first = service.publish_drafts(CALLER, "key-1", items, batch=True)
    ndjson = b"\n".join(json.dumps(item).encode() for item in items)
    for raw, is_ndjson in ((json.dumps(items, indent=1).encode(), False), (ndjson, True)):
        again = service.publish_draft_batch(CALLER, "key-1", raw, ndjson=is_ndjson)
        assert again.replayed and [e.payload for e in again.events] == [e.payload for e in first.events]
    streamed = service.publish_draft_batch(CALLER, "key-2", body(300, start=1000), ndjson=False)
    assert not streamed.replayed
    assert service.publish_drafts(CALLER, "key-2", json.loads(body(300, start=1000)), batch=True).replayed
    with pytest.raises(ProblemError) as reused:
        service.publish_draft_batch(CALLER, "key-2", body(300, start=2000), ndjson=False)
    assert reused.value.status == 409 and reused.value.slug == "idempotency-key-reused"
    assert len(chain_of(service)) == 700


def test_the_batch_receipt_is_what_json_response_writes(service: Gateway) -> None:
    """The batch answer is written from a template (``_batch_receipt``): byte for byte what
    ``JSONResponse`` writes for the receipts, also for an id JSON would escape."""
    events = service.publish_draft_batch(CALLER, None, body(50), ndjson=False).events
    expected = JSONResponse({"count": 50, "events": _receipts(events)}).body
    assert _batch_receipt(events) == expected
    odd = [SignedEvent(b"{}", event_id='a"\u00e9', subject="C-1", sequence=7)]
    assert _batch_receipt(odd) == JSONResponse({"count": 1, "events": _receipts(odd)}).body
    assert json.loads(_batch_receipt(odd))["events"][0]["id"] == 'a"\u00e9'


def test_the_answer_is_written_beside_the_commit_and_returned_only_after_it(service: Gateway) -> None:
    """``answer`` (the batch receipt) runs on the gateway's answer thread, started before the
    commit so that it overlaps the commit's sync, and the outcome comes back only after the
    outbox's session has committed; a replay is answered the same, byte for byte."""
    seen: list[str] = []
    threads: list[str] = []

    def answer(events: list[SignedEvent]) -> bytes:
        threads.append(threading.current_thread().name)
        seen.append("answer written")
        return _batch_receipt(events)

    sqlalchemy_event.listen(service.outbox._sessions, "after_commit", lambda _: seen.append("committed"))
    outcome = service.publish_draft_batch(CALLER, "k-answer", body(300), ndjson=False, answer=answer)
    seen.append("returned")
    assert seen.index("committed") < seen.index("returned")
    assert threads == ["sgledger-gateway-answer_0"]
    assert outcome.answer == JSONResponse({"count": 300, "events": _receipts(outcome.events)}).body
    stored = service.outbox.events(AGENCY)
    assert [(e["id"], e["sequence"]) for e in json.loads(outcome.answer)["events"]] == [
        (r.event_id, r.sequence) for r in stored
    ]
    replayed = service.publish_draft_batch(CALLER, "k-answer", body(300), ndjson=False, answer=answer)
    assert replayed.replayed and replayed.answer == outcome.answer
    assert len(chain_of(service)) == 300


def test_the_worker_is_never_held_back_by_the_signing_process(service: Gateway) -> None:
    """The serving process reads the worker's pipe on a thread (``_read_job``): the worker
    checks a whole 3,000-draft body (a few MB of chunks, far more than a socket buffer holds)
    while the serving process signs nothing. Shown by killing the worker once it has stopped
    working: every chunk, in order, and the job's end had already been read from it."""
    assert service.worker is not None
    pid = service.worker.pid
    assert pid is not None
    items = [draft(data={**INCIDENT, "incident_ref": f"INC-{n}"}) for n in range(3000)]
    with service.worker.job(json.dumps(items).encode(), False, False, 10_000) as job:
        job.start()
        used, deadline = -1.0, time.monotonic() + 60
        while time.monotonic() < deadline:  # until its CPU time stops growing: done, or blocked
            time.sleep(2)
            now = cpu_seconds(pid)
            if now == used:
                break
            used = now
        os.kill(pid, signal.SIGKILL)
        prepared = [p for p in job.prepared() if p is not None]
    assert [p.event()["data"]["incident_ref"] for p in prepared] == [f"INC-{n}" for n in range(3000)]


def test_the_worker_takes_the_next_job_once_a_job_is_read_not_once_it_is_signed(service: Gateway) -> None:
    """A job holds the worker only until its last message is read (``Job``): with a first
    batch's drafts all checked but none yet signed (its request still open, as while its
    chain is signed and committed), a second request's whole batch is checked meanwhile, and
    both then come out whole and in order. Why (issue 11): with two requests in flight, the
    second's drafts are ready when the first commits, instead of its head (the body crossing
    the pipe, the first chunk) adding to the signing thread's serial time."""
    assert service.worker is not None
    first_items = [draft(data={**INCIDENT, "incident_ref": f"A-{n}"}) for n in range(500)]
    second_items = [draft(data={**INCIDENT, "incident_ref": f"B-{n}"}) for n in range(500)]
    second: dict[str, Any] = {}

    def other_request() -> None:
        assert service.worker is not None
        with service.worker.job(json.dumps(second_items).encode(), False, False, 10_000) as job:
            second["prepared"] = [p for p in job.prepared() if p is not None]

    with service.worker.job(json.dumps(first_items).encode(), False, False, 10_000) as job:
        job.start()
        thread = threading.Thread(target=other_request)
        thread.start()
        thread.join(20)  # the first job's drafts are not read yet: it is still "being signed"
        assert not thread.is_alive(), "the second request waited for the first one to end"
        first = [p for p in job.prepared() if p is not None]
    assert [p.event()["data"]["incident_ref"] for p in first] == [f"A-{n}" for n in range(500)]
    assert [p.event()["data"]["incident_ref"] for p in second["prepared"]] == [f"B-{n}" for n in range(500)]
    after = service.publish_draft_batch(CALLER, None, body(3), ndjson=False)  # still in step
    assert len(after.events) == 3


def test_a_job_abandoned_after_the_worker_moved_on_leaves_the_next_job_whole(service: Gateway) -> None:
    """A request that stops reading (refused, replayed, failed) after its job's end was
    read sends no "cancel": the worker may already be on the next request's job, which a
    stray cancel would cut short. Both requests end with what they should."""
    assert service.worker is not None
    items = [draft(data={**INCIDENT, "incident_ref": f"A-{n}"}) for n in range(300)]
    second: dict[str, Any] = {}
    started, release = threading.Event(), threading.Event()

    def other_request() -> None:
        assert service.worker is not None
        with service.worker.job(body(2000), False, False, 10_000) as job:
            job.start()  # the worker has begun this job: the first one's end was read
            started.set()
            release.wait(30)  # the first request abandons its job meanwhile
            second["prepared"] = [p for p in job.prepared() if p is not None]

    with service.worker.job(json.dumps(items).encode(), False, False, 10_000) as job:
        job.start()
        thread = threading.Thread(target=other_request)
        thread.start()
        assert started.wait(30)
    release.set()  # the first job was abandoned unread
    thread.join(60)
    refs = [p.event()["data"]["incident_ref"] for p in second["prepared"]]
    assert refs == [f"INC-{n}" for n in range(2000)]
