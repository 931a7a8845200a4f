"""What the gateway does with a request, without HTTP: check, sign, chain, store, look up.

Everything that decides whether an event is acceptable is the producer SDK's (``Producer.prepare``
and ``Producer.append_prepared``) or the ledger's (``validate_event``, ``signature_valid``); the
gateway only turns requests into drafts, keeps idempotency records and reports status. The HTTP
layer (``producers.gateway.app``) maps the exceptions raised here to problem responses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ledger.canonical import canonical_forms, event_digest
from ledger.envelope import SignedEvent
from ledger.keystore import Keystore
from ledger.signing import key_id, signature_valid
from ledger.store.ledger import normalise_url
from ledger.store.models import AcceptedEvent, QuarantineEntry
from ledger.timeutil import parse_time
from ledger.topics import DEFAULT_PREFIX, Topics
from ledger.validation import Problem, validate_event
from ledger.verification import MAX_MESSAGE_BYTES
from ledger.vocabulary import agency_types, expected_type
from producers.gateway.drafts import batch_items, check_count, checked, request_hash
from producers.gateway.problems import ProblemError, invalid, prefixed
from producers.gateway.tokens import Caller, IdempotencyRow, TokenStore
from producers.gateway.worker import DraftWorker
from producers.outbox import DuplicateEventId, Entry, Outbox, OutboxRow
from producers.sdk import InvalidEvent, Prepared, Producer


@dataclass(frozen=True)
class GatewayConfig:
    agency: str
    keys_dir: Path
    outbox_url: str
    topic_prefix: str = DEFAULT_PREFIX
    ledger_url: str | None = None  # the partnership's database, to report acceptance
    max_event_bytes: int = MAX_MESSAGE_BYTES
    max_batch_bytes: int = 64 * 1024 * 1024
    max_batch_events: int = 10_000
    busy_timeout_s: float = 5.0  # then 503: a client retries rather than hangs
    # Check a batch's drafts in a second process while this one signs (producers/gateway/worker.py).
    draft_worker: bool = True


# Writes a request's answer (the response body) from the events it stored or replayed.
Answer = Callable[[list[SignedEvent]], bytes]


@dataclass(frozen=True)
class Outcome:
    events: list[SignedEvent]
    replayed: bool  # an earlier request with this Idempotency-Key created them
    answer: bytes = b""  # written by the request's ``Answer``, when it gave one


class ChainPositionError(ValueError):
    """A self-signed event does not continue the agency's chain as the outbox holds it."""

    def __init__(self, event: Mapping[str, Any], sequence: int, prevhash: str) -> None:
        self.sequence, self.prevhash = sequence, prevhash
        super().__init__(
            f"event {event.get('id')} is signed for sequence {event.get('sequence')} with prevhash "
            f"{event.get('prevhash')!r}, but the chain continues at sequence {sequence} with prevhash "
            f"{prevhash!r} (GET /v1/chain gives the head)"
        )


def unavailable(exc: SQLAlchemyError) -> ProblemError:
    """The outbox database could not take the write (locked, full, unreachable). Honest about
    what is known: on SQLite a failed commit stored nothing, on a network database a lost
    connection during commit is ambiguous; either way a retry with the same Idempotency-Key
    returns the event if it was stored and stores it once if it was not."""
    reason = str(getattr(exc, "orig", exc)).splitlines()[0]
    return ProblemError(
        503, "outbox-unavailable", "The outbox database is unavailable",
        f"the event could not be committed to the outbox ({reason}); retry the same request with "
        "the same Idempotency-Key: it will not be stored twice",
        headers={"Retry-After": "2"},
    )  # fmt: skip


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Callable[[], datetime] | None = None) -> None:
        """``clock``: a module-level function (the draft worker receives it pickled)."""
        self.config = config
        self.outbox = Outbox(
            config.outbox_url, busy_timeout_s=config.busy_timeout_s, checkpoint_in_background=True
        )
        self.producer = Producer(
            config.agency,
            Keystore(config.keys_dir),
            self.outbox,
            topics=Topics(config.topic_prefix),
            **({"clock": clock} if clock else {}),
        )
        self._public_key = Keystore(config.keys_dir).agency_private_key(config.agency).public_key()
        self.kid = key_id(self._public_key)
        self.tokens = TokenStore(config.outbox_url, busy_timeout_s=config.busy_timeout_s)
        self.worker = DraftWorker(self.producer.preparer) if config.draft_worker else None
        # Writes a batch's answer while its commit syncs (``_once``): one thread, as batches
        # commit one at a time (the outbox's write lock).
        self._answers = ThreadPoolExecutor(1, thread_name_prefix="sgledger-gateway-answer")
        self._ledger_engine = (
            create_engine(normalise_url(config.ledger_url), pool_pre_ping=True) if config.ledger_url else None
        )

    def ready(self) -> tuple[bool, str]:
        """Ready while the outbox answers: a request that cannot be stored gets a 503 anyway."""
        return True, f"outbox answers ({self.outbox.pending_count()} event(s) waiting)"

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self._answers.shutdown()
        self.outbox.close()
        self.tokens.close()
        if self._ledger_engine is not None:
            self._ledger_engine.dispose()

    # -- drafts -------------------------------------------------------------------------------
    def drafts(self, items: Sequence[Any], batch: bool) -> list[Prepared]:
        """Drafts from request JSON, each built and checked once (``Producer.prepare``), or a
        422 listing every problem of every item (paths of a batch start with the item's index)."""
        prepared: list[Prepared] = []
        problems: list[Problem] = []
        for ready, found in checked(self.producer.preparer.at_receipt(), items, batch):
            if ready is not None:
                prepared.append(ready)
            problems += found
        if problems:
            raise invalid(problems, "the batch" if batch else "the draft")
        return prepared

    def publish_drafts(
        self,
        caller: Caller,
        idempotency_key: str | None,
        items: list[Any],
        batch: bool,
        answer: Answer | None = None,
    ) -> Outcome:
        """``answer``: see ``_once``."""
        check_count(items, self.config.max_batch_events)
        return self._once(
            caller, idempotency_key, cache(lambda: request_hash("drafts", items)),
            lambda also: self.producer.append_prepared(self.drafts(items, batch), also=also), answer,
        )  # fmt: skip

    def publish_draft_batch(
        self,
        caller: Caller,
        idempotency_key: str | None,
        raw: bytes,
        ndjson: bool,
        answer: Answer | None = None,
    ) -> Outcome:
        """A batch body of drafts (JSON array or NDJSON), read and checked by the draft worker
        while this process signs and stores what it has checked (producers/gateway/worker.py);
        the same answers as ``publish_drafts`` of the parsed body. The request's hash comes
        from the worker once it has read the whole body (``Job.request_hash``)."""
        if self.worker is None:
            return self.publish_drafts(caller, idempotency_key, batch_items(raw, ndjson), True, answer)
        want_hash = idempotency_key is not None
        with self.worker.job(raw, ndjson, want_hash, self.config.max_batch_events) as job:
            # not ``job.start()`` first: the transaction begins while the body crosses the pipe
            return self._once(
                caller, idempotency_key, job.request_hash,
                lambda also: self.producer.append_prepared(job.prepared(), also=also), answer,
            )  # fmt: skip

    # -- events the agency signed itself ---------------------------------------------------
    def signed_entries(self, items: Sequence[Any], batch: bool) -> list[Entry]:
        problems: list[Problem] = []
        entries: list[Entry] = []
        for index, item in enumerate(items):
            found, payload = self._signed_problems(item)
            problems += prefixed(index, found) if batch else found
            if payload is not None:
                entries.append(_placed(item, payload, self.producer.topics.for_type(item["type"])))
        if problems:
            raise invalid(problems, "the batch" if batch else "the signed event")
        return entries

    def _signed_problems(self, event: Any) -> tuple[list[Problem], bytes | None]:
        """Every problem of an event signed elsewhere, or none and its canonical bytes (the
        payload to store: serialised once, with the signing input, by ``canonical_forms``)."""
        event_type = event.get("type") if isinstance(event, Mapping) else None
        if isinstance(event_type, str) and event_type not in agency_types():
            return [Problem("/type", expected_type(event_type, agency_types()), repr(event_type))], None
        problems = validate_event(event)
        if problems:
            return problems, None
        whole, signed = canonical_forms(event)
        if event["source"] != self.config.agency:
            return [
                Problem("/source", f"{self.config.agency!r} (this gateway's agency)", repr(event["source"]))
            ], None
        if event["kid"] != self.kid:
            expected = f"{self.kid!r}, the key of {self.config.agency}"
            return [Problem("/kid", expected, repr(event["kid"]))], None
        if not signature_valid(event, self._public_key, signed):
            return [
                Problem(
                    "/signature",
                    "an Ed25519 signature over the RFC 8785 form of the other attributes (docs/signing.md)",
                    "a signature that does not verify",
                )
            ], None
        recorded, now = event["recordedtime"], self.producer.clock()
        refused = self.producer.preparer.recorded_problems(parse_time(recorded), recorded, now)
        if refused:
            return refused, None
        if len(whole) > MAX_MESSAGE_BYTES:
            return [Problem("", f"at most {MAX_MESSAGE_BYTES} bytes", f"{len(whole)} bytes")], None
        return [], whole

    def publish_signed(
        self,
        caller: Caller,
        idempotency_key: str | None,
        items: list[Any],
        batch: bool,
        answer: Answer | None = None,
    ) -> Outcome:
        """``answer``: see ``_once``."""
        check_count(items, self.config.max_batch_events)
        return self._once(
            caller, idempotency_key, cache(lambda: request_hash("signed", items)),
            lambda also: self.outbox.append(self.config.agency, self.signed_entries(items, batch), also=also),
            answer,
        )  # fmt: skip

    def head(self) -> dict[str, Any]:
        sequence, digest = self.outbox.head(self.config.agency)
        return {"agency": self.config.agency, "kid": self.kid, "sequence": sequence, "digest": digest}

    # -- idempotency ------------------------------------------------------------------------
    def _once(
        self,
        caller: Caller,
        key: str | None,
        wanted: Callable[[], str],
        publish: Callable[[Callable[[Session, list[SignedEvent]], None] | None], list[SignedEvent]],
        answer: Answer | None = None,
    ) -> Outcome:
        """Publish once per ``key``. ``answer`` writes the response body (``Outcome.answer``):
        for stored events on a thread of its own while the commit writes and syncs the
        write-ahead log (sqlite3 releases the GIL for it), and is joined only after the commit
        returned, so the caller still answers only once the events are durable, and not at
        all if the commit fails. Why (issue 11): written after the commit, a 3,000-event
        batch's answer (2-4 ms of CPU) was serial time between two requests, while the
        commit's own 7-9 ms were mostly the disk's."""
        try:
            if key is not None:
                earlier = self._earlier(caller, key, wanted)
                if earlier is not None:
                    return _answered(earlier, answer)
            written: list[Future[bytes]] = []

            def before_commit(session: Session, events: list[SignedEvent]) -> None:
                if key is not None:
                    TokenStore.remember(
                        session,
                        IdempotencyRow(
                            system=caller.system, key=key, request_sha256=wanted(),
                            event_ids=json.dumps([e.event_id for e in events]), created_at=datetime.now(UTC),
                        ),
                    )  # fmt: skip
                if answer is not None:
                    session.flush()  # the transaction's last Python work, before the answer's thread starts
                    written.append(self._answers.submit(answer, events))

            try:
                hook = before_commit if key is not None or answer is not None else None
                events = publish(hook)
                return Outcome(events, replayed=False, answer=written[0].result() if written else b"")
            except IntegrityError:
                # Another request with the same key committed first: answer as its retry.
                earlier = self._earlier(caller, key, wanted) if key is not None else None
                if earlier is None:
                    raise
                return _answered(earlier, answer)
        except DuplicateEventId as exc:
            raise ProblemError(409, "duplicate-id", "Event id already used", str(exc)) from exc
        except InvalidEvent as exc:  # found only once signed: the event is over the size limit
            raise invalid(exc.problems) from exc
        except ChainPositionError as exc:
            raise ProblemError(
                409, "chain-position", "Not the next event of the chain", str(exc),
                sequence=exc.sequence, prevhash=exc.prevhash,
            ) from exc  # fmt: skip
        except SQLAlchemyError as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise unavailable(exc) from exc

    def _earlier(self, caller: Caller, key: str, wanted: Callable[[], str]) -> Outcome | None:
        """The outcome of an earlier request with this key, if any: ``wanted()``, the hash
        of this request, is asked for only then (for a batch streamed through the draft worker
        it is known only once the worker has read the whole body)."""
        row = self.tokens.remembered(caller.system, key)
        if row is None:
            return None
        if row.request_sha256 != wanted():
            raise ProblemError(
                409, "idempotency-key-reused", "Idempotency-Key reused with a different request",
                f"Idempotency-Key {key!r} of {caller.system} was used at {row.created_at:%Y-%m-%d %H:%M} "
                "for a different request; a retry must repeat the request exactly, new work needs a new key",
            )  # fmt: skip
        ids = json.loads(row.event_ids)
        rows = self.outbox.rows(ids)
        return Outcome(
            [SignedEvent.of(Outbox.decode(rows[i].payload), rows[i].payload) for i in ids], replayed=True
        )

    # -- where is it? ---------------------------------------------------------------------------
    def status(self, event_id: str) -> dict[str, Any]:
        row = self.outbox.rows([event_id]).get(event_id)
        if row is None:
            raise ProblemError(
                404, "unknown-event", "No such event", f"no event {event_id} in this gateway's outbox"
            )
        status = _outbox_status(row)
        if row.sent_at is not None or self._ledger_engine is not None:
            status.update(self._partnership_status(event_id))
        return status

    def _partnership_status(self, event_id: str) -> dict[str, Any]:
        if self._ledger_engine is None:
            return {
                "partnership": "not visible: this gateway is not configured with the partnership's database"
            }
        try:
            with Session(self._ledger_engine) as session:
                accepted = session.scalar(
                    select(AcceptedEvent.accepted_at).where(AcceptedEvent.event_id == event_id)
                )
                entry = session.scalars(
                    select(QuarantineEntry)
                    .where(QuarantineEntry.event_id == event_id)
                    .order_by(QuarantineEntry.id.desc())
                ).first()
        except SQLAlchemyError as exc:
            return {"partnership": f"not visible: the partnership's database failed ({type(exc).__name__})"}
        if accepted is not None:
            return {"status": "accepted", "accepted_at": _iso(accepted)}
        if entry is not None and entry.status in ("held", "quarantined"):
            return {
                "status": entry.status,
                "reason": entry.reason,
                "detail": entry.detail,
                "received_at": _iso(entry.received_at),
            }
        return {}


def _answered(outcome: Outcome, answer: Answer | None) -> Outcome:
    """A replayed outcome with its answer written (nothing is committed: no overlap to find)."""
    return outcome if answer is None else Outcome(outcome.events, outcome.replayed, answer(outcome.events))


def _placed(event: Mapping[str, Any], payload: bytes, topic: str) -> Entry:
    """An outbox entry for an event signed elsewhere (``payload``: its canonical bytes): it is
    stored only at the chain position it was signed for, so the outbox stays the one place that
    orders this agency's chain."""
    signed = SignedEvent.of(dict(event), payload)

    def place(sequence: int, prevhash: str) -> SignedEvent:
        if event["sequence"] != sequence or event["prevhash"] != prevhash:
            raise ChainPositionError(event, sequence, prevhash)
        return signed

    return Entry(topic, place, event["id"], lambda stored: event_digest(stored) == signed.digest)


def _outbox_status(row: OutboxRow) -> dict[str, Any]:
    event = Outbox.decode(row.payload)
    status: dict[str, Any] = {
        "id": row.event_id,
        "status": "queued" if row.sent_at is None else "sent",
        "type": event["type"],
        "subject": event["subject"],
        "sequence": row.sequence,
        "digest": hashlib.sha256(row.payload).hexdigest(),
        "queued_at": _iso(row.created_at),
    }
    if row.sent_at is not None:
        status["sent_at"] = _iso(row.sent_at)
        status["kafka"] = {"topic": row.topic, "partition": row.kafka_partition, "offset": row.kafka_offset}
    return status


def _iso(value: datetime) -> str:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
