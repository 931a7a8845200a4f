"""Building a signed event: the one place an envelope is assembled (SDK, scenarios, tests)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import SIGNATURE, ChainRuns, canonical_json, chain_runs, digest_of_canonical
from ledger.identifiers import uuid_text
from ledger.signing import Signer
from ledger.timeutil import format_time


def new_event_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID, written as ``str(uuid.UUID(...))`` writes it:
    the Unix time in milliseconds (48 bits), then 74 random bits, built from bytes without the
    ``UUID`` object (a third of the cost: the gateway makes one per draft).

    Why version 7 rather than a fully random version 4 (issue 11): every store of events has a
    unique index on the id (the outbox, the ledger). Random ids land anywhere in that index, so
    each insert touches a different page, and the further the table grows the more of those
    pages are not in memory; ids that grow with time are inserted at the index's right edge.
    Measured on the gateway's SQLite outbox, 3,000-row batches: 10.4-13.8 against 14.3-17.1 us
    of CPU a row after 36,000 rows, the random ids' cost still growing with every batch. 74
    random bits per millisecond keep ids unguessable and collisions out of reach; the time they
    carry is the id's creation, which the event's ``recordedtime`` and its Kafka timestamp
    already tell (the envelope takes any lowercase UUID; ids given by callers are unchanged)."""
    return uuid_text((time.time_ns() // 1_000_000).to_bytes(6, "big") + _ten_random_bytes(), 7)


# os.urandom's bytes read 256 ids ahead: each call is a system call (getrandom), ~0.8 us, half
# of what an id cost the gateway's draft worker (issue 11); these are the same kernel CSPRNG
# bytes, only read in one call. A forked child drops the parent's unread ones (below), or the
# two processes would make the same ids.
_RANDOM_IDS_AHEAD = 256
_random_ahead: Iterator[bytes] = iter(())


def _ten_random_bytes() -> bytes:
    global _random_ahead
    chunk = next(_random_ahead, None)
    if chunk is None:
        block = os.urandom(10 * _RANDOM_IDS_AHEAD)
        _random_ahead = iter([block[at : at + 10] for at in range(0, len(block), 10)])
        chunk = next(_random_ahead)
    return chunk


def _forget_random_ahead() -> None:
    global _random_ahead
    _random_ahead = iter(())


os.register_at_fork(after_in_child=_forget_random_ahead)


def unsigned_event(
    *,
    kid: str,
    source: str,
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    time: datetime | str,
    recordedtime: datetime | str,
    sequence: int,
    prevhash: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Every attribute of an event except ``signature``: what the signature covers. Times are
    ``datetime`` objects, or already formatted (``format_time``)."""
    return {
        "specversion": "1.0",
        "id": event_id or new_event_id(),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time if isinstance(time, str) else format_time(time),
        "recordedtime": recordedtime if isinstance(recordedtime, str) else format_time(recordedtime),
        "sequence": sequence,
        "prevhash": prevhash,
        "kid": kid,
        "data": dict(data),
    }


# Strings JSON writes as they are, between quotes: printable ASCII without '"' or '\\'.
_PLAIN_TEXT = re.compile(r"[ !#-\[\]-~]*")


def envelope_runs(
    *,
    kid: str,
    source: str,
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    time: str,
    recordedtime: str,
    event_id: str,
    data_plain_numbers: bool = False,
) -> ChainRuns:
    """``chain_runs(unsigned_event(...))`` written from the parts, with the times already
    formatted: one RFC 8785 pass over ``data`` and byte templates around it, instead of
    building the envelope and serialising it whole (a quarter of what a gateway draft cost,
    issue 11). ``data_plain_numbers``: the caller has seen ``_plain_numbers(data)`` hold
    (``canonical_json``). Every other member is a string that must be written as it is (the
    envelope's patterns make them so for a valid event); if one is not, the frame comes from
    ``chain_runs`` instead, so the bytes are RFC 8785's either way."""
    strings = (event_id, kid, recordedtime, source, subject, time, event_type)
    if not _PLAIN_TEXT.fullmatch("".join(strings)):
        unsigned = unsigned_event(
            kid=kid, source=source, event_type=event_type, subject=subject, data=data,
            time=time, recordedtime=recordedtime, sequence=1, prevhash="", event_id=event_id,
        )  # fmt: skip
        return chain_runs(unsigned)
    return ChainRuns(
        b'{"data":%b,"id":"%b","kid":"%b","prevhash":"'
        % (canonical_json(data, plain_numbers=data_plain_numbers), event_id.encode(), kid.encode()),
        b'","recordedtime":"%b","sequence":' % recordedtime.encode(),
        b"",
        b',"source":"%b","specversion":"1.0","subject":"%b","time":"%b","type":"%b"}'
        % (source.encode(), subject.encode(), time.encode(), event_type.encode()),
    )


class SignedEvent:
    """A signed event's canonical bytes, the payload sent and stored, whose SHA-256 is the
    digest the next event of the chain names as ``prevhash``, with the attributes the outbox
    files it under. ``event`` (the dict) is parsed from the payload only when asked for: the
    gateway's batch path signs runs of canonical bytes (``Signer.sign_placed``) and never needs
    it, and building or parsing it per event cost a tenth of a signature (issue 11)."""

    __slots__ = ("_digest", "_event", "event_id", "payload", "sequence", "subject")

    def __init__(
        self,
        payload: bytes,
        *,
        event_id: str,
        subject: str,
        sequence: int,
        event: dict[str, Any] | None = None,
        digest: str | None = None,
    ) -> None:
        """``digest``: the payload's SHA-256, when the signer has it already (``Signer.sign_placed``)."""
        self.payload = payload
        self.event_id, self.subject, self.sequence = event_id, subject, sequence
        self._event = event
        self._digest = digest

    @classmethod
    def of(cls, event: dict[str, Any], payload: bytes) -> SignedEvent:
        """For an event already held as a dict (``payload`` must be its canonical bytes)."""
        return cls(
            payload, event_id=event["id"], subject=event["subject"], sequence=event["sequence"], event=event
        )

    @property
    def event(self) -> dict[str, Any]:
        if self._event is None:
            self._event = json.loads(self.payload)
        return self._event

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest_of_canonical(self.payload)
        return self._digest


def sign_unsigned(unsigned: dict[str, Any], signer: Signer) -> SignedEvent:
    """Sign an event built by ``unsigned_event`` (in place: it gains its ``signature``), with
    one RFC 8785 pass for both the signing input and the payload (``Signer.sign_canonical``)."""
    signature, payload = signer.sign_canonical(unsigned)
    unsigned[SIGNATURE] = signature
    return SignedEvent.of(unsigned, payload)


class ChainSigner:
    """An agency's key and chain position held in memory: signs events in sequence, each
    naming its predecessor's digest. The producer SDK keeps this state in its durable outbox;
    this is for tools that generate histories (tests, benchmarks, migrations)."""

    def __init__(self, source: str, key: Ed25519PrivateKey | None = None) -> None:
        self.source = source
        self.key = key or Ed25519PrivateKey.generate()
        self.signer = Signer(self.key)
        self.sequence = 0
        self.prevhash = ""

    @property
    def kid(self) -> str:
        return self.signer.kid

    def sign(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        subject: str,
        at: datetime,
        recorded: datetime | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        self.sequence += 1
        unsigned = unsigned_event(
            kid=self.signer.kid,
            source=self.source,
            event_type=event_type,
            subject=subject,
            data=data,
            time=at,
            recordedtime=recorded or at,
            sequence=self.sequence,
            prevhash=self.prevhash,
            event_id=event_id,
        )
        signed = sign_unsigned(unsigned, self.signer)
        self.prevhash = signed.digest
        return signed.event
