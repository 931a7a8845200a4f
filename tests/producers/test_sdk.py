"""The SDK validates before it stores, signs with the agency's key and never needs a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ledger.canonical import canonical_json, event_digest
from ledger.keystore import Keystore, KeystoreError, KeyValidity
from ledger.signing import key_id, public_key_text, signature_valid
from ledger.topics import Topics
from ledger.validation import Problem, _plain_numbers, validate_event
from ledger.vocabulary import event_types
from producers.outbox import DuplicateEventId, Outbox
from producers.sdk import (
    Draft,
    InvalidEvent,
    Prepared,
    Preparer,
    Producer,
    _draft_with_problems,
    draft_from_json,
)
from tests.ledger.factory import INCIDENT
from tests.ledger.test_compiled_validation import mutations, valid_events
from tests.producers.conftest import POLICE

AT = datetime(2024, 3, 5, 21, 40, tzinfo=UTC)


def test_publish_signs_stores_and_needs_no_broker(agencies: Keystore, outbox_url: str) -> None:
    """No broker is configured at all: publishing is a local, durable write."""
    producer = Producer(POLICE, agencies, outbox_url, topics=Topics("t"), clock=lambda: AT)
    event = producer.publish("incident.reported", "C-1", INCIDENT, time=AT - timedelta(hours=2))
    key = agencies.agency_private_key(POLICE).public_key()
    assert signature_valid(event, key)
    assert event["kid"] == key_id(key)
    assert validate_event(event) == []
    assert (event["sequence"], event["prevhash"], event["subject"]) == (1, "", "C-1")
    assert event["recordedtime"] == AT.isoformat()
    assert event["time"] == (AT - timedelta(hours=2)).isoformat()
    [row] = producer.outbox.events(POLICE)
    assert (row.topic, row.key, row.event_id) == ("t.intake", POLICE, event["id"])  # keyed by agency
    assert row.payload == canonical_json(event)
    assert row.sent_at is None


def test_every_type_goes_to_the_intake_topic_keyed_by_agency(agencies: Keystore, outbox_url: str) -> None:
    """An agency's chain is one ordered stream whatever the types in it (issue 13): before, a
    closure went to ``.closure`` and an incident to ``.incident``, keyed by child."""
    producer = Producer(POLICE, agencies, outbox_url, topics=Topics("t"))
    producer.publish(
        "referral.closed", "C-1",
        {"referral_ref": "R-1", "outcome": "nfa", "reason": "no concerns",
         "persons_contacted": ["P-m"], "worked_by": "sw-1", "authorised_by": "tm-1"},
    )  # fmt: skip
    producer.publish("incident.reported", "C-2", INCIDENT)
    assert [(r.topic, r.key) for r in producer.outbox.events(POLICE)] == [("t.intake", POLICE)] * 2


def test_invalid_event_is_refused_with_path_expected_got(agencies: Keystore, outbox_url: str) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    bad = {**INCIDENT, "dash_risk": "very-high"}
    del bad["children_present"]
    with pytest.raises(InvalidEvent) as refused:
        producer.publish("incident.reported", "C-1", bad)
    paths = {p.path for p in refused.value.problems}
    assert paths == {"/data", "/data/dash_risk"}
    dash = next(p for p in refused.value.problems if p.path == "/data/dash_risk")
    assert isinstance(dash, Problem) and "high" in dash.expected and "very-high" in dash.got
    message = str(refused.value)
    assert "\n" not in message and message.startswith("incident.reported refused: /data")
    assert producer.outbox.head(POLICE) == (0, "")  # nothing stored, no sequence consumed
    with pytest.raises(InvalidEvent, match="/type"):
        producer.publish("incident.rumoured", "C-1", INCIDENT)
    assert producer.publish("incident.reported", "C-1", INCIDENT)["sequence"] == 1


def test_event_over_one_mebibyte_is_refused(agencies: Keystore, outbox_url: str) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    refs = [f"{n:04d}" + "x" * 1996 for n in range(600)]  # 600 x 2000 characters
    data = {"referral_ref": "R-1", "to": "csc/somerset", "reason": "dv", "incident_refs": refs}
    with pytest.raises(InvalidEvent, match="expected at most 1048576 bytes"):
        producer.publish("referral.made", "C-1", data)
    assert producer.outbox.head(POLICE) == (0, "")


def test_partnership_publishes_with_the_root_key(keystore: Keystore, outbox_url: str) -> None:
    agency_key = keystore.create_agency_key(POLICE).public_key()
    producer = Producer("partnership/test", keystore, outbox_url)
    event = producer.publish(
        "agency.key.registered", POLICE,
        {"agency": POLICE, "kid": key_id(agency_key), "public_key": public_key_text(agency_key)},
    )  # fmt: skip
    assert event["kid"] == keystore.root_info().kid
    assert signature_valid(event, keystore.root_private_key().public_key())
    assert producer.outbox.events("partnership/test")[0].topic == "safeguarding.intake"


def test_same_event_id_is_idempotent_and_never_reused(agencies: Keystore, outbox_url: str) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    event_id = "4f6b1f0e-8a51-4cb4-9d4b-3f3cf1d6a001"
    first = producer.publish("incident.reported", "C-1", INCIDENT, event_id=event_id)
    again = producer.publish("incident.reported", "C-1", INCIDENT, event_id=event_id)
    assert again == first
    with pytest.raises(DuplicateEventId, match="sequence 1"):
        producer.publish("incident.reported", "C-2", INCIDENT, event_id=event_id)
    assert producer.outbox.head(POLICE)[0] == 1


def test_publish_many_is_one_all_or_nothing_transaction(agencies: Keystore, outbox_url: str) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    drafts = [Draft("incident.reported", f"C-{n}", {**INCIDENT, "incident_ref": f"I{n}"}) for n in range(5)]
    with pytest.raises(InvalidEvent, match="/data/children_present"):
        producer.publish_many(
            [*drafts, Draft("incident.reported", "C-9", {**INCIDENT, "children_present": "yes"})]
        )
    assert producer.outbox.head(POLICE) == (0, "")
    events = producer.publish_many(drafts)
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["prevhash"] for e in events[1:]] == [event_digest(e) for e in events[:-1]]
    assert producer.outbox.head(POLICE) == (5, event_digest(events[-1]))


def test_append_many_answers_with_the_stored_bytes_and_what_they_are_filed_under(
    agencies: Keystore, outbox_url: str
) -> None:
    producer = Producer(POLICE, agencies, outbox_url)
    drafts = [Draft("incident.reported", f"C-{n}", {**INCIDENT, "incident_ref": f"I{n}"}) for n in range(3)]
    signed = producer.append_many(drafts)
    stored = producer.outbox.events(POLICE)
    assert [s.payload for s in signed] == [row.payload for row in stored]
    assert [(s.event_id, s.sequence, s.subject) for s in signed] == [
        (row.event_id, row.sequence, f"C-{n}") for n, row in enumerate(stored)
    ]
    assert [s.digest for s in signed] == [event_digest(s.event) for s in signed]
    assert producer.outbox.head(POLICE) == (3, signed[-1].digest)
    with pytest.raises(InvalidEvent, match="/data/children_present"):  # checked before anything is stored
        producer.append_many([Draft("incident.reported", "C-9", {**INCIDENT, "children_present": "yes"})])
    assert producer.outbox.head(POLICE)[0] == 3


def test_missing_agency_key_fails_at_construction(keystore: Keystore, tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="school/100001"):
        Producer("school/100001", keystore, Outbox(f"sqlite:///{tmp_path / 'o.sqlite'}"))


def test_an_id_repeated_inside_one_batch_is_one_event_or_a_clash(agencies: Keystore, outbox_url: str) -> None:
    """The rows of a batch are inserted together after signing, so the outbox must find a
    repeated id among the batch's own events, not only among those stored before."""
    producer = Producer(POLICE, agencies, outbox_url)
    event_id = "4f6b1f0e-8a51-4cb4-9d4b-3f3cf1d6a002"
    same = Draft("incident.reported", "C-1", INCIDENT, event_id=event_id)
    other = Draft("incident.reported", "C-2", INCIDENT, event_id=event_id)
    with pytest.raises(DuplicateEventId, match="sequence 1"):
        producer.publish_many([same, other])
    assert producer.outbox.head(POLICE) == (0, "")  # the whole batch rolled back
    first, again, after = producer.publish_many([same, same, Draft("incident.reported", "C-3", INCIDENT)])
    assert again == first and (first["sequence"], after["sequence"]) == (1, 2)
    assert after["prevhash"] == event_digest(first)
    assert [row.payload for row in producer.outbox.events(POLICE)] == [
        canonical_json(first),
        canonical_json(after),
    ]


def test_what_the_caller_sends_is_checked_even_where_the_producer_writes_the_rest(
    agencies: Keystore, outbox_url: str
) -> None:
    """``prepare`` skips the schema checks of the attributes the producer writes (source, kid,
    sequence, prevhash, signature), never those of the caller's id, subject and times."""
    producer = Producer(POLICE, agencies, outbox_url)
    odd_offset = datetime(2024, 3, 5, 21, 40, tzinfo=timezone(timedelta(hours=5, seconds=7)))
    _, problems = producer.prepare(
        Draft("incident.reported", "C 1", INCIDENT, time=odd_offset, event_id="not-a-uuid")
    )
    assert {p.path for p in problems} == {"/subject", "/time", "/id"}
    ready, problems = producer.prepare(Draft("incident.reported", "C-1", INCIDENT, time=AT))
    assert ready is not None and problems == []
    assert "signature" not in ready.event() and ready.event()["source"] == POLICE


@pytest.mark.parametrize(
    "item",
    [
        {"type": "incident.reported", "subject": "C-1", "data": {"a": 1}},
        {"type": "t", "subject": "C-1", "data": {}, "time": "2024-03-05T21:40:00+01:00", "id": "x"},
        {"type": "t", "subject": "C-1", "data": {}, "recordedtime": "2024-03-05T21:40:00Z", "time": None},
        {"type": "t", "subject": "C-1", "data": {}, "time": "yesterday"},
        {"type": "t", "subject": "C-1", "data": {}, "time": ""},
        {"type": "t", "subject": "C-1", "data": {}, "time": 5},
        {"type": "t", "subject": "C-1", "data": {}, "id": None},
        {"type": "t", "subject": "C-1", "data": {}, "id": 7},
        {"type": "t", "subject": "C-1", "data": []},
        {"type": "t", "subject": 1, "data": {}},
        {"type": True, "subject": "C-1", "data": {}},
        {"type": "t", "data": {}},
        {"type": "t", "subject": "C-1", "data": {}, "extra": 1},
        [],
        "draft",
    ],
)
def test_a_draft_read_by_the_quick_path_is_the_draft_of_the_general_one(item: object) -> None:
    """``draft_from_json`` reads the common shape with exact type tests first: same draft,
    same problems as the general path, for drafts right and wrong."""
    assert draft_from_json(item) == _draft_with_problems(item)


def _outcome(result: tuple[Prepared | None, list[Problem]]) -> tuple[Any, list[Problem]]:
    """A prepared draft as what it becomes (its frame's bytes when the caller gave the id; a
    generated id is new each time, so then the event without it), or its problems. (The
    general path takes an empty id for none: it makes one, and the quick path leaves such a
    draft to it.)"""
    ready, problems = result
    if ready is None:
        return None, problems
    if ready.event_id:
        return ready, problems
    event = ready.event()
    del event["id"]
    return (ready.subject, ready.event_type, ready.topic, event), problems


def test_a_draft_prepared_at_once_is_the_draft_the_general_path_prepares() -> None:
    """``Preparer.prepare_json`` builds a draft that one predicate per type shows valid at
    once (issue 11: the gateway's draft worker); the general path (``draft_from_json``, then
    ``prepare``) must give the same bytes, or the same problems, on every mutation of a draft
    of every type: shape, members, data, times (formatted, offsets, the key's validity, the
    future), ids given or not. And the quick path must not be a dead letter: it takes every
    valid draft, and every mutation the general path accepts, unless its data holds a float
    or a huge integer (the strict validators' alone)."""
    events = {e["type"]: e for e in valid_events()}  # one per type
    recorded = sorted(datetime.fromisoformat(e["recordedtime"]) for e in events.values())
    now = recorded[-1] + timedelta(days=1)
    validities = (None, KeyValidity(recorded[len(recorded) // 2]))  # the second refuses half the drafts
    compared = quick = 0
    disagreements: list[str] = []
    for validity, receipt in ((v, r) for v in validities for r in (False, True)):
        preparer = Preparer(POLICE, "ab" * 16, event_types(), validity, Topics("t"), lambda: now)
        if receipt:  # a request's: the time now judged once (``at_receipt``), drafts without one take it
            preparer = preparer.at_receipt()
            assert preparer.receipt is not None
        for event in events.values():
            draft = {k: event[k] for k in ("type", "subject", "time", "recordedtime", "id", "data")}
            assert validity is not None or preparer._prepared_at_once(draft) is not None, event["type"]
            tried = [("as sent", draft), *mutations(draft)]
            tried += [
                ("no id", {k: v for k, v in draft.items() if k != "id"}),
                ("time Z", {**draft, "time": "2024-03-05T21:40:00Z"}),
                ("time with fraction", {**draft, "time": "2024-03-05T21:40:00.5+01:00"}),
                ("offset seconds", {**draft, "time": "2024-03-05T21:40:00+05:00:07"}),
                ("month 13", {**draft, "recordedtime": "2024-13-05T21:40:00+00:00"}),
                ("future", {**draft, "recordedtime": (now + timedelta(hours=1)).isoformat()}),
                ("no times", {k: v for k, v in draft.items() if k not in ("time", "recordedtime")}),
            ]  # fmt: skip
            for description, item in tried:
                found, general = preparer.prepare_json(item), draft_from_json(item)
                expected = general if general[0] is None else preparer.prepare(general[0])
                compared += 1
                if _outcome(found) != _outcome(expected):
                    disagreements.append(f"{event['type']}: {description}: {found} != {expected}")
                if expected[0] is not None and _plain_numbers(item) and item.get("id") != "":
                    quick += 1
                    if preparer._prepared_at_once(item) is None:
                        disagreements.append(f"{event['type']}: {description}: not prepared at once")
    assert not disagreements, "\n".join(disagreements[:20])
    assert compared > 10000 and quick > 1000, (compared, quick)


def test_the_drafts_of_one_request_are_recorded_when_it_was_received() -> None:
    """``Preparer.at_receipt``: a request's drafts without a ``recordedtime`` all take the
    time it was received (the clock read once, not once per draft), and one that gives its
    own keeps it. A receipt time the key does not cover is not taken as judged: each draft is
    refused as it would be without it, naming the key's validity."""
    ticks = iter(datetime(2026, 12, 3, 17, 0, second, tzinfo=UTC) for second in range(60))
    preparer = Preparer(POLICE, "ab" * 16, event_types(), None, Topics("t"), lambda: next(ticks))
    request = preparer.at_receipt()
    drafts = [{"type": "incident.reported", "subject": f"C-{n}", "data": INCIDENT} for n in range(3)]
    drafts.append({**drafts[0], "recordedtime": "2026-12-03T16:00:00+00:00"})
    recorded = [p.event()["recordedtime"] for p, _ in map(request.prepare_json, drafts) if p is not None]
    assert recorded == ["2026-12-03T17:00:00+00:00"] * 3 + ["2026-12-03T16:00:00+00:00"]
    assert preparer.prepare_json(drafts[0])[0] is not None  # without it, the clock moves on
    assert next(ticks).second == 2

    later = KeyValidity(datetime(2026, 12, 4, tzinfo=UTC))
    refusing = Preparer(
        POLICE, "ab" * 16, event_types(), later, Topics("t"), lambda: datetime(2026, 12, 3, tzinfo=UTC)
    )
    request = refusing.at_receipt()
    assert request.receipt is None
    ready, problems = request.prepare_json(drafts[0])
    assert ready is None and [p.path for p in problems] == ["/recordedtime"]
    assert "historical loads" in problems[0].expected
