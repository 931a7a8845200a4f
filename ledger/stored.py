"""An accepted envelope's JSON as the ledger's event store writes it, without the store.

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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
