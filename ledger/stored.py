"""An accepted envelope's JSON as the ledger's event store writes it, and its times as the
ledger's index stores them, without the store.

Each ``ledger_events`` row's state is the eventsourcing transcoder's JSON of
``{"timestamp": ..., "envelope": <the envelope>}`` (``Ledger._stored_states``), and the
envelope's part is the transcoder's encoder applied to the envelope. That part is a pure
function of the parsed envelope, so a verification worker makes it with the verdict
(``consumers.projector.verifier.check``) and the projector's process, the serial one, only joins
it to the batch's timestamp (issue 13: ~10 us per event moved off the projector's process). This
module imports neither SQLAlchemy nor eventsourcing: a worker imports only what checking needs.

Exact by construction: the encoder here has the transcoder's settings (``same_settings`` is
checked by every ``Ledger`` before it writes a row), and a parsed envelope holds only JSON's own
types, for which the transcoder never calls its ``default``. tests/ledger/test_record.py compares
the rows with the library's mapper byte for byte, from both paths.

The index row (``ledger_accepted``) stores the event's ``time`` and ``recordedtime`` as UTC text
(``ledger.store.types.UTCTime``): ``stored_times`` makes that text the same way
(``ledger.timeutil.utc_text``, which the column type calls), so a worker makes it too, and the
serial process neither parses the two times again nor binds them (issue 13, ninth round: ~3% of
the projector process's CPU on a replay).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ledger.timeutil import parse_time, utc_text

# eventsourcing's JSONTranscoder: ``json.JSONEncoder(default=..., separators=(",", ":"),
# ensure_ascii=False)``.
ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SETTINGS = (
    "item_separator", "key_separator", "ensure_ascii", "sort_keys", "indent", "allow_nan", "skipkeys",
)  # fmt: skip


def envelope_json(event: Mapping[str, Any]) -> bytes:
    """The envelope's part of its stored state, in the envelope's own member order."""
    return ENCODER.encode(dict(event)).encode("utf8")


def same_settings(encoder: json.JSONEncoder) -> bool:
    """Whether ``encoder`` writes JSON values as ``ENCODER`` does (a library upgrade that
    changed its transcoder would otherwise store different bytes unseen)."""
    return all(getattr(encoder, name) == getattr(ENCODER, name) for name in _SETTINGS)


def stored_times(event: Mapping[str, Any]) -> tuple[str, str]:
    """The event's ``time`` and ``recordedtime`` as the index stores them (an accepted event's
    times parse: the schema check parsed them)."""
    return utc_text(parse_time(event["time"])), utc_text(parse_time(event["recordedtime"]))
