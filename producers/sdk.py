"""The producer SDK an agency system calls: validate, chain, sign, and commit to the outbox.

Validation happens here, before anything is stored, because an agency developer fixing a refused
event needs the message at the call site (path, expected, got), not in a quarantine days later.
Nothing here talks to Kafka: the relay does, so ``publish`` succeeds while the broker is down.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from ledger.canonical import ChainRuns, placed
from ledger.envelope import SignedEvent, envelope_runs, new_event_id, unsigned_event
from ledger.identifiers import AGENCY_ID
from ledger.keystore import Keystore, KeyValidity
from ledger.signing import SIGNATURE, Signer
from ledger.timeutil import TimeFormatError, format_time, parse_time
from ledger.topics import Topics
from ledger.validation import (
    Problem,
    _plain_numbers,
    compiled_members_refusal,
    envelope_time,
    misspelt,
    validate_event,
    verdict,
)
from ledger.validation import _show as show
from ledger.verification import MAX_MESSAGE_BYTES, RECEIPT_SKEW
from ledger.vocabulary import (
    agency_kind,
    agency_types,
    data_schema,
    envelope_schema,
    event_types,
    expected_type,
)
from producers.outbox import Outbox


class InvalidEvent(ValueError):
    """The event breaks the contract; ``problems`` lists every issue, ``str`` is one line."""

    def __init__(self, event_type: str, problems: list[Problem]) -> None:
        self.event_type = event_type
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"{event_type} refused: {shown}{more}")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Draft:
    """An event to publish, before the outbox gives it a chain position and it is signed."""

    event_type: str
    child: str
    data: Mapping[str, Any]
    time: datetime | None = None
    recorded: datetime | None = None
    event_id: str | None = None


class Prepared(NamedTuple):
    """A checked draft as the event it becomes, held as its canonical form around the chain
    position (``ChainRuns``): all that is left is to place it in the chain and sign it
    (``Signer.sign_placed``). A tuple of strings and bytes because the gateway's draft worker
    sends thousands of these per request to the process that signs, and no dict: the signed
    event's dict, when anyone wants it, is parsed from its payload (``SignedEvent.event``)."""

    id: str
    subject: str
    event_type: str
    topic: str
    event_id: str | None  # the caller's id (a retried publish finds it), None when generated
    runs: ChainRuns

    def event(self) -> dict[str, Any]:
        """The unsigned event (its ``sequence`` and ``prevhash`` are placeholders)."""
        prefix, closing = placed(self.runs, 1, "")
        parsed: dict[str, Any] = json.loads(prefix + closing)
        return parsed


# The envelope attributes a producer writes itself: never from a caller, so not schema-checked
# per event (``sequence`` and ``prevhash`` come from the outbox, ``signature`` from the key).
WRITTEN = frozenset({"specversion", "source", "kid", "sequence", "prevhash", "signature"})
# ... and the id, when the producer made it (``uuid4``) rather than the caller.
WRITTEN_WITH_ID = WRITTEN | {"id"}


# A draft as JSON (gateway requests, `sgledger publish --batch` lines): docs/gateway.md.
DRAFT_FIELDS = ("type", "subject", "time", "recordedtime", "id", "data")


_DRAFT_KEYS = frozenset(DRAFT_FIELDS)


def draft_from_json(item: Any) -> tuple[Draft | None, list[Problem]]:
    """A Draft from its JSON form, or every problem of its shape (the content is ``check``ed
    later, once the draft exists).

    A draft as ``json.loads`` makes it, with nothing wrong, is read with exact type tests
    first (the gateway reads thousands per request: the general checks below, with their
    abstract-class tests and problem lists, cost half as much again); anything else takes the
    general path, which gives the same draft or lists every problem."""
    if type(item) is dict and item.keys() <= _DRAFT_KEYS:
        kind, child, data = item.get("type"), item.get("subject"), item.get("data")
        given = "id" not in item or type(item["id"]) is str
        if type(kind) is str and type(child) is str and type(data) is dict and given:
            at, recorded = item.get("time"), item.get("recordedtime")
            try:
                times = (
                    None if at is None else parse_time(at),
                    None if recorded is None else parse_time(recorded),
                )
            except TimeFormatError:
                pass  # the general path says which
            else:
                return Draft(kind, child, data, *times, item.get("id")), []
    return _draft_with_problems(item)


SIGNED_NOT_DRAFT = (
    " (this is a signed event, not a draft: send it to the gateway as "
    "Content-Type: application/cloudevents+json, or a batch as application/cloudevents-batch+json)"
)


def _draft_with_problems(item: Any) -> tuple[Draft | None, list[Problem]]:
    """``draft_from_json`` by the general path."""
    if not isinstance(item, Mapping):
        return None, [Problem("", "a JSON object (an event draft)", show(item))]
    problems = []
    extra = sorted(set(item) - set(DRAFT_FIELDS))
    if extra:
        # An event the agency signed itself sent where drafts go (the gateway's default media
        # type, or `publish --batch`): say where it belongs rather than only what is unexpected.
        signed = {"specversion", "signature"} <= set(extra)
        hint = SIGNED_NOT_DRAFT if signed else misspelt(extra, DRAFT_FIELDS)
        expected = f"only the attributes {', '.join(DRAFT_FIELDS)}{hint}"
        problems.append(Problem("", expected, "unexpected " + ", ".join(extra)))
    for name, kind in (("type", str), ("subject", str), ("data", Mapping)):
        if name not in item:
            problems.append(Problem(f"/{name}", f"required attribute {name!r}", "nothing"))
        elif not isinstance(item[name], kind):
            want = "a JSON object" if kind is Mapping else "a string"
            problems.append(Problem(f"/{name}", want, show(item[name])))
    if "id" in item and not isinstance(item["id"], str):
        problems.append(Problem("/id", "a string (UUID)", show(item["id"])))
    times: dict[str, datetime | None] = {}
    for name in ("time", "recordedtime"):
        value = item.get(name)
        try:
            times[name] = parse_time(value) if value is not None else None
        except TimeFormatError:
            problems.append(Problem(f"/{name}", "an RFC 3339 time with offset", show(value)))
    if problems:
        return None, problems
    return Draft(
        item["type"], item["subject"], item["data"], times["time"], times["recordedtime"], item.get("id")
    ), []


@dataclass(frozen=True)
class Preparer:
    """What checking a draft needs of a producer, without its private key or outbox: the
    gateway's worker process holds one (picklable: ``clock`` must be a module-level function)."""

    agency_id: str
    kid: str
    types: frozenset[str]
    validity: KeyValidity | None
    topics: Topics
    clock: Callable[[], datetime] = _now
    # ``at_receipt``'s time as the envelope writes it, already found acceptable as a recorded
    # time; None: each draft's recorded time is formatted and judged on its own
    receipt: str | None = field(default=None, compare=False)

    def at_receipt(self) -> Preparer:
        """This preparer for the drafts of one request: the clock stops at the request's receipt,
        so a draft without a ``recordedtime`` is recorded when the gateway received it, one time
        for every draft of a batch (what an agency's loader would expect of one submission,
        rather than times a few microseconds apart in the order the gateway read them). The
        time is formatted and judged once, not per draft (issue 11: 1.5-2 us of the draft
        worker's CPU per draft)."""
        now = self.clock()
        text = format_time(now)
        return replace(self, clock=lambda: now, receipt=text if self._taken(now, text, now) else None)

    def _taken(self, recorded: datetime, on_record: str, now: datetime) -> bool:
        """Is ``on_record`` (``recorded`` as ``format_time`` wrote it) a recorded time the
        envelope's schema and the partnership take? The fast path's one test of it, per draft
        or once per request (``at_receipt``)."""
        return envelope_time(on_record) and not self.recorded_problems(recorded, on_record, now)

    def prepare(self, draft: Draft) -> tuple[Prepared | None, list[Problem]]:
        """The draft as the event it becomes, built and schema-checked once (``append_prepared``
        only adds the chain position and signs it), or every problem of it, found without
        signing or storing anything: unknown type (with a suggestion), schema, and a recorded
        time the partnership would refuse.

        Callers that take many drafts (the gateway, ``publish --batch``) prepare them all first
        so one answer lists every problem of every draft, instead of stopping at the first. The
        attributes this producer writes itself (``WRITTEN``) are not schema-checked per event;
        what came from the caller (id, type, subject, times, data) is."""
        known = self.types
        if draft.event_type not in known:
            return None, [Problem("/type", expected_type(draft.event_type, known), repr(draft.event_type))]
        now = self.clock()
        recorded = draft.recorded or now
        at, on_record = format_time(draft.time or recorded), format_time(recorded)
        event_id = draft.event_id or new_event_id()
        # The compiled verdict on what the caller sent, without assembling the envelope
        # (``compiled_members_refusal``); anything it refuses, and data with floats or huge
        # integers, is judged and explained on the whole event by ``validate_event``.
        members: dict[str, Any] = {
            "type": draft.event_type, "subject": draft.child, "time": at, "recordedtime": on_record,
            "data": draft.data,
        }  # fmt: skip
        if draft.event_id is not None:
            members["id"] = draft.event_id
        plain = _plain_numbers(draft.data)
        problems: list[Problem] = []
        if not plain or compiled_members_refusal(members) is not None:
            event = unsigned_event(
                kid=self.kid, source=self.agency_id, event_type=draft.event_type, subject=draft.child,
                data=draft.data, time=at, recordedtime=on_record, sequence=1, prevhash="", event_id=event_id,
            )  # fmt: skip
            event[SIGNATURE] = "A" * 86  # the shape of a signature, for the envelope's "required"
            problems = validate_event(event, WRITTEN if draft.event_id is not None else WRITTEN_WITH_ID)
        problems += self.recorded_problems(recorded, on_record, now)
        if problems:
            return None, problems
        ready = self._prepared(
            draft.event_type, draft.child, draft.data, at, on_record, event_id, draft.event_id, plain
        )
        too_large = oversized(ready.runs)
        return (None, [too_large]) if too_large else (ready, [])

    def prepare_json(self, item: Any) -> tuple[Prepared | None, list[Problem]]:
        """``prepare(draft_from_json(item))``: a draft in its JSON form (the gateway's requests)
        as the event it becomes, or every problem of it.

        Why not just that (issue 11): the gateway's draft worker reads thousands of drafts per
        request, and the general path (the draft's shape, then the ``Draft``, the members, the
        walk for ``_plain_numbers``, the compiled validators with their ``isinstance`` tests,
        the times parsed again) cost about two thirds of a draft. A draft that one predicate
        per type (``_draft_verdict``: shape, members and ``data`` in one pass, exact types) shows
        valid, with times that parse and a recorded time the partnership takes, is built at
        once; any other takes the general path, which gives the verdict and every problem. So
        the verdicts are ``prepare``'s (tests/producers/test_sdk.py compares the two)."""
        ready = self._prepared_at_once(item)
        if ready is not None:
            return ready, []
        draft, found = draft_from_json(item)
        return (None, found) if draft is None else self.prepare(draft)

    def _prepared_at_once(self, item: Any) -> Prepared | None:
        """``prepare_json``'s fast path: the prepared draft, or None for "not shown valid here"."""
        if type(item) is not dict:
            return None
        kind = item.get("type")
        if type(kind) is not str or kind not in self.types or not _draft_verdict(kind)(item):
            return None
        now = self.clock()
        at_text, recorded_text = item.get("time"), item.get("recordedtime")  # strings, or None
        try:
            recorded = now if recorded_text is None else parse_time(recorded_text)
            at = recorded if at_text is None else parse_time(at_text)
        except TimeFormatError:
            return None
        if recorded is now and self.receipt is not None:
            on_record = self.receipt  # judged once for the request (``at_receipt``)
        else:
            on_record = format_time(recorded)
            if not self._taken(recorded, on_record, now):
                return None  # an offset with seconds (formatted, the schema refuses it), or a time refused
        on_time = on_record if at is recorded else format_time(at)
        if at is not recorded and not envelope_time(on_time):
            return None
        given: str | None = item.get("id")
        subject, data = item["subject"], item["data"]
        ready = self._prepared(kind, subject, data, on_time, on_record, given or new_event_id(), given, True)
        return None if oversized(ready.runs) else ready  # the general path says so

    def recorded_problems(self, recorded: datetime, on_record: str, now: datetime) -> list[Problem]:
        """A recorded time the partnership would refuse: outside the key's validity, or later
        than now plus the skew it allows. Drafts and events the agency signed itself (the
        gateway's CloudEvents) are judged by this one check."""
        problems = []
        if self.validity is not None and not self.validity.valid_at(recorded):
            problems.append(
                Problem(
                    "/recordedtime",
                    f"a time when this agency's key is valid ({self.validity}; historical loads need "
                    "a key registered with `sgledger agency add --valid-from`)",
                    on_record,
                )
            )
        if recorded > now + RECEIPT_SKEW:
            problems.append(
                Problem(
                    "/recordedtime",
                    f"no later than now plus {RECEIPT_SKEW} ({format_time(now + RECEIPT_SKEW)}): "
                    "the partnership quarantines events recorded in the future",
                    on_record,
                )
            )
        return problems

    def _prepared(
        self,
        event_type: str,
        child: str,
        data: Mapping[str, Any],
        at: str,
        on_record: str,
        event_id: str,
        given_id: str | None,
        plain: bool,
    ) -> Prepared:
        """A checked draft (times formatted) as the event it becomes: ``event_id`` is
        ``given_id``, the caller's, or one made for it."""
        runs = envelope_runs(
            kid=self.kid, source=self.agency_id, event_type=event_type, subject=child, data=data,
            time=at, recordedtime=on_record, event_id=event_id, data_plain_numbers=plain,
        )  # fmt: skip
        return Prepared(event_id, child, event_type, self.topics.for_type(event_type), given_id, runs)


# What signing adds to an event's ``ChainRuns`` at the least: a one-digit sequence, no prevhash
# (the first event), and the signature member.
_PLACED_AT_LEAST = len(b'1,"signature":"') + 86 + len(b'"')


def oversized(runs: ChainRuns) -> Problem | None:
    """An event that will be over the message limit however it is placed in the chain, found
    while a draft is checked, so that a batch's refusal names the item (``/3``) with every other
    problem. (One within a few dozen bytes of the limit is found only once placed and signed,
    ``Producer._sign``: refused all the same, without the item's index.)"""
    size = len(runs.opening) + len(runs.between) + len(runs.before_signature) + len(runs.closing)
    if size + _PLACED_AT_LEAST <= MAX_MESSAGE_BYTES:
        return None
    return Problem("", f"at most {MAX_MESSAGE_BYTES} bytes", f"{size + _PLACED_AT_LEAST} bytes or more")


@cache
def _draft_verdict(event_type: str) -> Callable[[Any], bool]:
    """True only for a draft of ``event_type`` in its JSON form (``DRAFT_FIELDS``) that
    ``draft_from_json`` reads and whose members and ``data`` the compiled validators take,
    ``data`` with ``_plain_numbers`` (``ledger.validation.verdict``); its times are only
    required to be strings or null here (the producer checks them once formatted). The type
    itself is the caller's to look up."""
    envelope = envelope_schema()["properties"]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "type": {"const": event_type},
            "subject": envelope["subject"],
            "id": envelope["id"],
            "time": {"type": ["string", "null"]},  # null: the default, as draft_from_json reads it
            "recordedtime": {"type": ["string", "null"]},
            "data": data_schema(event_type),
        },
        "required": ["type", "subject", "data"],
        "additionalProperties": False,
    }
    data_checks = {k: v for k, v in envelope["data"].items() if k not in ("description", "examples")}
    if schema["properties"].keys() != _DRAFT_KEYS or data_checks != {"type": "object"}:
        raise ValueError("the draft's fields or the envelope's data changed: see _draft_verdict")
    return verdict(schema)


class Producer:
    """Publishes as one agency. The partnership id works too (signed with the root key), which
    is how ``agency.key.registered`` and other governance events are published."""

    def __init__(
        self,
        agency_id: str,
        keystore: Keystore,
        outbox_url: str | Outbox,
        *,
        topics: Topics | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        # Checked here once, so no event needs its ``source`` checked (``WRITTEN``).
        self.agency_id = AGENCY_ID.check(agency_id)
        self._signer = Signer(keystore.agency_private_key(agency_id))  # fail at start-up, not mid-publish
        self._types = event_types() if agency_kind(agency_id) == "partnership" else agency_types()
        self._validity = keystore.key_validity(agency_id)
        self.outbox = outbox_url if isinstance(outbox_url, Outbox) else Outbox(outbox_url)
        self.topics = topics or Topics()
        self.clock = clock
        self.preparer = Preparer(
            self.agency_id, self._signer.kid, self._types, self._validity, self.topics, clock
        )

    def publish(
        self,
        event_type: str,
        child: str,
        data: Mapping[str, Any],
        *,
        time: datetime | None = None,
        recorded: datetime | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Sign and store the next event of this agency; returns it as it will be sent.

        ``recorded`` defaults to now (when the agency records it), ``time`` to ``recorded``.
        Publishing again with the same ``event_id`` and content returns the stored event.
        """
        return self.publish_many([Draft(event_type, child, data, time, recorded, event_id)])[0]

    def prepare(self, draft: Draft) -> tuple[Prepared | None, list[Problem]]:
        """``Preparer.prepare`` with this producer's agency, key and clock."""
        return self.preparer.prepare(draft)

    def publish_many(
        self,
        drafts: Iterable[Draft],
        *,
        also: Callable[[Session, list[SignedEvent]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish several events in one outbox transaction: all are stored or none (the first
        invalid one raises InvalidEvent), with one commit instead of one per event. ``also``
        writes more rows in that transaction (see ``Outbox.append``)."""
        return [signed.event for signed in self.append_many(drafts, also=also)]

    def append_many(
        self,
        drafts: Iterable[Draft],
        *,
        also: Callable[[Session, list[SignedEvent]], None] | None = None,
    ) -> list[SignedEvent]:
        """``publish_many`` answering with the signed events (id, sequence, digest, the bytes
        sent) rather than dicts: a system publishing in bulk rarely reads back what it just
        wrote, and parsing every payload into a dict cost about a tenth of the SDK's CPU per
        event (issue 13); ``SignedEvent.event`` still parses one on demand."""
        prepared = []
        for draft in drafts:
            ready, problems = self.prepare(draft)
            if ready is None:
                raise InvalidEvent(draft.event_type, problems)
            prepared.append(ready)
        return self.append_prepared(prepared, also=also)

    def append_prepared(
        self,
        prepared: Iterable[Prepared | None],
        *,
        also: Callable[[Session, list[SignedEvent]], None] | None = None,
    ) -> list[SignedEvent]:
        """``append_many`` for drafts the caller has had ``prepare``d (and so checked) itself:
        ``publish --batch`` checks every draft first to report every problem, and the gateway
        answers with ids, sequences and digests only. ``prepared`` is read lazily inside the
        outbox transaction (``Outbox.append_each``; a None in it is ``IDLE``: nothing ready yet)."""
        return self.outbox.append_each(self.agency_id, prepared, self._sign, self._same, also=also)

    def _sign(self, prepared: Prepared, sequence: int, prevhash: str) -> SignedEvent:
        """``prepared`` placed at ``sequence`` after ``prevhash`` and signed."""
        payload, digest = self._signer.sign_placed(prepared.runs, sequence, prevhash)
        # The schema was checked (``prepare``) on this same content; only the size is new.
        if len(payload) > MAX_MESSAGE_BYTES:  # the ledger would quarantine it as oversized
            problem = Problem("", f"at most {MAX_MESSAGE_BYTES} bytes", f"{len(payload)} bytes")
            raise InvalidEvent(prepared.event_type, [problem])  # rolls the transaction back
        return SignedEvent(
            payload, event_id=prepared.id, subject=prepared.subject, sequence=sequence, digest=digest
        )

    def _same(self, prepared: Prepared, stored: Mapping[str, Any]) -> bool:
        """Is a stored event with the same id this one published again (same source, type,
        child and data), rather than another event reusing the id?"""
        asked = {**prepared.event(), "source": self.agency_id}
        return all(stored.get(k) == asked[k] for k in ("source", "type", "subject", "data"))
