"""Building a signed event: the one place an envelope is assembled (SDK, scenarios, tests)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import event_digest
from ledger.signing import key_id, sign_event
from ledger.timeutil import format_time


def unsigned_event(
    *,
    kid: str,
    source: str,
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    time: datetime,
    recordedtime: datetime,
    sequence: int,
    prevhash: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Every attribute of an event except ``signature``: what the signature covers."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": format_time(time),
        "recordedtime": format_time(recordedtime),
        "sequence": sequence,
        "prevhash": prevhash,
        "kid": kid,
        "data": dict(data),
    }


def build_event(
    *,
    key: Ed25519PrivateKey,
    source: str,
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    time: datetime,
    recordedtime: datetime,
    sequence: int,
    prevhash: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A complete, signed CloudEvent. Validation is the caller's (producer's) job."""
    event = unsigned_event(
        kid=key_id(key.public_key()), source=source, event_type=event_type, subject=subject,
        data=data, time=time, recordedtime=recordedtime, sequence=sequence, prevhash=prevhash,
        event_id=event_id,
    )  # fmt: skip
    event["signature"] = sign_event(event, key)
    return event


class ChainSigner:
    """An agency's key and chain position held in memory: signs events in sequence, each
    naming its predecessor's digest. The producer SDK keeps this state in its durable outbox;
    this is for tools that generate histories (tests, benchmarks, migrations)."""

    def __init__(self, source: str, key: Ed25519PrivateKey | None = None) -> None:
        self.source = source
        self.key = key or Ed25519PrivateKey.generate()
        self.sequence = 0
        self.prevhash = ""

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

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
        event = build_event(
            key=self.key,
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
        self.prevhash = event_digest(event)
        return event
