"""Hypothesis strategies: messages a hostile or broken agency system could put on a topic.

Mutations start from the valid signed history (tests/fuzz/history.py) so that most inputs get
deep into verification: some are re-signed after the change, so the signature verifies and the
mutation meets the schema, chain and projection code behind it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from ledger.canonical import canonical_json
from tests.fuzz.history import History, encode

HISTORY = History()
NAMES = sorted(HISTORY.events)
ENVELOPE_KEYS = (
    "specversion", "id", "source", "type", "subject", "time", "recordedtime",
    "sequence", "prevhash", "kid", "signature", "data", "datacontenttype", "extra",
)  # fmt: skip
# Values that broke, or nearly broke, something once: exactness, anchors, bounds, types.
TRICKY: list[Any] = [
    2.0, 1.0, True, False, None, 0, -1, 1, 2, 3, 6, 2**31, 2**53 - 1, 2**53, 10**30, -(2**63), 1e308,
    "", "C-1", "C-1\n", "C-2", "police/avon-somerset", "police/avon-somerset\n", "police/../../x",
    "csc/somerset", "partnership/test", "x" * 300, "2024-03-04T09:00:00+00:00",
    "2024-02-30T09:00:00+00:00", "incident.reported", "agency.key.registered", "ledger.tree-head",
    "0" * 64, "0" * 32, [], {}, [[[[[]]]]],
]  # fmt: skip

json_values = st.recursive(
    st.sampled_from(TRICKY)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A history event with a few attributes (of the envelope or of ``data``) set, removed or
    borrowed from another event, then re-signed or not."""
    event: dict[str, Any] = json.loads(json.dumps(HISTORY.events[draw(st.sampled_from(NAMES))]))
    for _ in range(draw(st.integers(1, 3))):
        target = event["data"] if draw(st.booleans()) and isinstance(event.get("data"), dict) else event
        key = draw(st.sampled_from(sorted(target) or ["x"]) | st.sampled_from(ENVELOPE_KEYS))
        action = draw(st.sampled_from(["set", "delete", "borrow"]))
        if action == "delete":
            target.pop(key, None)
        elif action == "borrow":  # e.g. another event's id, sequence or prevhash
            other = HISTORY.events[draw(st.sampled_from(NAMES))]
            target[key] = copy.deepcopy(other.get(key, other["sequence"]))  # never alter HISTORY
        else:
            target[key] = draw(json_values)
    if draw(st.booleans()):
        try:
            canonical_json(event)
        except Exception:  # not canonicalisable: nobody could have signed it
            return encode(event)
        event = HISTORY.resign(event)
    return encode(event)


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    """A valid event's bytes cut short, or with a few bytes overwritten."""
    raw = bytearray(encode(HISTORY.events[draw(st.sampled_from(NAMES))]))
    if draw(st.booleans()):
        return bytes(raw[: draw(st.integers(0, len(raw)))])
    for _ in range(draw(st.integers(1, 4))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


valid = st.sampled_from(NAMES).map(lambda name: encode(HISTORY.events[name]))
nested = st.integers(30, 5000).map(lambda depth: b"[" * depth + b"]" * depth)
messages = st.one_of(
    valid,
    valid,
    mutated_events(),
    mutated_events(),
    damaged_bytes(),
    st.binary(max_size=64),
    nested,
)
batches = st.lists(st.lists(messages, min_size=1, max_size=10), min_size=1, max_size=3)
