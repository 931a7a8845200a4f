"""`audit verify` decodes a stored row by one C ``json`` pass (``plain_envelope``) only where
that provably gives what the eventsourcing mapper gives; anything else goes to the mapper, which
decides (and fails) exactly as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.auditor.stored import StoredRow, check_row, decoded, offline_mapper, plain_envelope
from ledger.store.ledger import EventAccepted, stream_id

TOPIC = "ledger.store.ledger:EventAccepted"
STAMP = {"_type_": "datetime_iso", "_data_": "2024-01-08T09:00:00+00:00"}


def state(envelope: Any, **extra: Any) -> bytes:
    return json.dumps({"timestamp": STAMP, "envelope": envelope, **extra}, ensure_ascii=False).encode()


def row(state_bytes: bytes, *, source: str = "police/x", version: int = 1, topic: str = TOPIC) -> StoredRow:
    return StoredRow(7, stream_id(source).bytes, version, topic, state_bytes, None)


def mapper_envelope(r: StoredRow) -> Any:
    return decoded(offline_mapper(), r.notification)


def test_a_row_as_the_ledger_writes_it_decodes_to_the_mappers_envelope() -> None:
    envelope = {"id": "e-1", "source": "police/x", "sequence": 1, "data": {"a": [1, "é", None], "b": 2}}
    written = offline_mapper().to_stored_event(
        EventAccepted(
            originator_id=stream_id("police/x"),
            originator_version=1,
            timestamp=datetime(2024, 1, 8, 9, tzinfo=UTC),
            envelope=envelope,
        )
    )
    r = row(written.state, topic=written.topic)
    assert plain_envelope(r.topic, r.state) == mapper_envelope(r) == envelope


def test_rows_the_fast_pass_cannot_vouch_for_go_to_the_mapper() -> None:
    envelope = {"id": "e-1", "source": "police/x", "sequence": 1}
    transcoded = {**envelope, "data": {"when": dict(STAMP)}}  # the mapper makes this a datetime
    for topic, stored in [
        (TOPIC, state(transcoded)),
        (TOPIC, state({**envelope, "note": "_type_"})),  # the bytes twice: not vouched for
        (TOPIC, state(envelope, class_version=2)),
        ("ledger.store.ledger:Other", state(envelope)),
        (TOPIC, state(envelope).replace(b"2024-01-08T09", b"2024-13-08T09")),
        (TOPIC, state(envelope).replace(b"datetime_iso", b"decimal_str!")),
        (TOPIC, b"\xff" + state(envelope)),
        (TOPIC, state([envelope])),
        (TOPIC, b'{"timestamp":' + json.dumps(STAMP).encode() + b',"envelope":"text"}'),
    ]:
        assert plain_envelope(topic, stored) is None, stored
    r = row(state(transcoded))
    findings: list[Any] = []
    assert check_row(offline_mapper(), r, findings) == mapper_envelope(r) != transcoded  # the mapper's
    text = row(state(envelope).decode())  # type: ignore[arg-type]  # a state edited into a text value
    assert plain_envelope(text.topic, text.state) is None
    assert check_row(offline_mapper(), text, findings) is None
    assert [f.check for f in findings] == ["index", "storage"]  # the first row has no index entry
    assert "does not decode" in findings[1].detail


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["_type_", '"_type_"']),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["_type_", "_data_", "a"]) | st.text(max_size=4), children, max_size=3
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _values, max_size=5))
def test_whenever_the_fast_pass_answers_it_is_the_mappers_answer(envelope: dict[str, Any]) -> None:
    r = row(state(envelope))
    fast = plain_envelope(r.topic, r.state)
    if fast is not None:
        assert fast == mapper_envelope(r)
        assert json.dumps(fast, sort_keys=True) == json.dumps(mapper_envelope(r), sort_keys=True)


def test_stream_columns_that_disagree_with_the_event_are_still_reported() -> None:
    envelope = {"id": "e-1", "source": "police/x", "sequence": 3}
    findings: list[Any] = []
    check_row(offline_mapper(), row(state(envelope), version=4), findings)
    check_row(offline_mapper(), row(state(envelope), source="police/y", version=3), findings)
    assert [f.check for f in findings] == ["storage", "index", "storage", "index"]  # no index rows here
    assert "stream/version" in findings[0].detail and "stream/version" in findings[2].detail
