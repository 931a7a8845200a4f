"""Building a signed event: the one place an envelope is assembled (SDK, scenarios, tests)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.signing import key_id, sign_event
from ledger.timeutil import format_time


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
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": format_time(time),
        "recordedtime": format_time(recordedtime),
        "sequence": sequence,
        "prevhash": prevhash,
        "kid": key_id(key.public_key()),
        "data": dict(data),
    }
    event["signature"] = sign_event(event, key)
    return event
