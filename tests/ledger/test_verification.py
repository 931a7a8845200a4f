"""Invariant 1 and 2 of DESIGN.md as pure checks: each refusal has its own reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger.canonical import event_digest
from ledger.signing import sign_event
from ledger.verification import (
    DUPLICATE,
    MAX_MESSAGE_BYTES,
    RECEIPT_SKEW,
    ChainFacts,
    Reason,
    Rejection,
    _refuse_constant,
    _unique_members,
    check_chain,
    check_event,
    loads_strict,
    parse_message,
)
from tests.ledger.factory import INCIDENT, T0, Chain, Partnership


@pytest.fixture
def partnership() -> Partnership:
    return Partnership()


def reason(result: object) -> Reason | None:
    return result.reason if isinstance(result, Rejection) else None


def test_a_registered_agencys_event_verifies(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    assert check_event(police.event("incident.reported", INCIDENT), registry) is None


def test_schema_problems_name_path_expected_and_got(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    event = police.event("incident.reported", {**INCIDENT, "dash_risk": "extreme"})
    rejection = check_event(event, registry)
    assert reason(rejection) == Reason.SCHEMA
    assert isinstance(rejection, Rejection)
    assert "/data/dash_risk" in rejection.detail and '"extreme"' in rejection.detail


def test_unknown_type(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    assert reason(check_event(police.event("incident.imagined", {}), registry)) == Reason.UNKNOWN_TYPE


def test_unknown_key(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    assert (
        reason(check_event(police.event("incident.reported", INCIDENT), partnership.registry()))
        == Reason.UNKNOWN_KEY
    )


def test_key_of_another_agency(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    impostor = Chain("csc/somerset", key=police.key)
    registry = partnership.registry(partnership.register(police))
    event = impostor.event("referral.made", {"referral_ref": "R", "to": "csc/somerset", "reason": "x"})
    assert reason(check_event(event, registry)) == Reason.KEY_OF_OTHER_AGENCY


def test_revoked_key_refused_from_revocation_on(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    revoked_at = T0 + timedelta(days=1)
    registry = partnership.registry(partnership.register(police), partnership.revoke(police, revoked_at))
    before = police.event("incident.reported", INCIDENT, at=revoked_at - timedelta(seconds=1))
    after = police.event("incident.reported", INCIDENT, at=revoked_at)
    assert check_event(before, registry) is None
    assert reason(check_event(after, registry)) == Reason.KEY_NOT_VALID


def test_tampered_payload_fails_signature(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    event = police.event("incident.reported", INCIDENT)
    event["data"] = {**event["data"], "children_present": False}
    assert reason(check_event(event, registry)) == Reason.BAD_SIGNATURE


def test_signature_by_other_key_fails(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    event = police.event("incident.reported", INCIDENT)
    event["signature"] = sign_event(event, Chain("police/other").key)
    assert reason(check_event(event, registry)) == Reason.BAD_SIGNATURE


def test_partnership_events_need_the_root_key(partnership: Partnership) -> None:
    rogue = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(rogue))
    forged = rogue.event(
        "agency.key.registered", {"agency": "police/x", "kid": "0" * 32, "public_key": "A" * 43}
    )
    assert reason(check_event(forged, registry)) == Reason.NOT_ROOT_SIGNED


ACCESS = {"who": "local:lead@police.example", "role": "lead", "action": "child show", "target": "child:C-1"}


def test_reads_and_decisions_are_signed_by_a_registered_service_key(partnership: Partnership) -> None:
    """The root key signs only registrations and revocations (it can stay offline); a service
    key signs only the partnership's bookkeeping; an agency key signs neither."""
    service, police = Chain("partnership/service"), Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(service), partnership.register(police))
    assert check_event(service.event("access.recorded", ACCESS), registry) is None
    by_root = partnership.root.event("access.recorded", ACCESS)
    assert reason(check_event(by_root, registry)) == Reason.NOT_ROOT_SIGNED
    by_agency = police.event("access.recorded", ACCESS)
    assert reason(check_event(by_agency, registry)) == Reason.NOT_SERVICE_SIGNED
    service_posing = service.event("incident.reported", INCIDENT)
    assert reason(check_event(service_posing, registry)) == Reason.NOT_SERVICE_SIGNED
    service_registering = service.event(
        "agency.key.registered", {"agency": "police/x", "kid": "0" * 32, "public_key": "A" * 43}
    )
    assert reason(check_event(service_registering, registry)) == Reason.NOT_ROOT_SIGNED
    unregistered = Chain("partnership/service").event("access.recorded", ACCESS)
    assert reason(check_event(unregistered, registry)) == Reason.UNKNOWN_KEY


def test_oversized_and_non_json_messages() -> None:
    assert reason(parse_message(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")) == Reason.OVERSIZED
    assert reason(parse_message(b"\xff\xfe not json")) == Reason.NOT_JSON
    assert reason(parse_message(b"[1, 2]")) == Reason.NOT_JSON
    assert parse_message(json.dumps({"a": 1}).encode()) == {"a": 1}


def facts(**kw: object) -> ChainFacts:
    base = {
        "same_id_digest": None,
        "same_sequence_digest": None,
        "predecessor_digest": None,
        "highest_sequence": 0,
    }
    return ChainFacts(**{**base, **kw})  # type: ignore[arg-type]


def test_chain_rules() -> None:
    police = Chain("police/avon-somerset")
    first = police.event("incident.reported", INCIDENT)
    second = police.event("incident.reported", INCIDENT)
    assert check_chain(first, facts()) is None
    assert check_chain(second, facts(predecessor_digest=event_digest(first), highest_sequence=1)) is None
    assert check_chain(first, facts(same_id_digest=event_digest(first))) == DUPLICATE
    assert reason(check_chain(first, facts(same_id_digest="0" * 64))) == Reason.REPLAYED_ID
    assert reason(check_chain(second, facts(same_sequence_digest="0" * 64))) == Reason.EQUIVOCATION
    assert reason(check_chain(second, facts(highest_sequence=0))) == Reason.SEQUENCE_GAP
    assert reason(check_chain(second, facts(predecessor_digest="0" * 64))) == Reason.CHAIN_BROKEN


def test_a_key_revoked_before_receipt_cannot_sign_a_back_dated_event(partnership: Partnership) -> None:
    """The attack of issue 11: after revocation at R, a stolen key signs an event dated R - 1 h.
    Its recordedtime is inside the key's validity; its receipt is not."""
    police = Chain("police/avon-somerset")
    revoked_at = T0 + timedelta(days=1)
    registry = partnership.registry(partnership.register(police), partnership.revoke(police, revoked_at))
    back_dated = police.event("incident.reported", INCIDENT, at=revoked_at - timedelta(hours=1))
    refused = check_event(back_dated, registry, received=revoked_at + timedelta(minutes=1))
    assert reason(refused) == Reason.KEY_REVOKED_AT_RECEIPT
    assert refused is not None and "revoked" in refused.detail
    assert check_event(back_dated, registry, received=revoked_at - timedelta(minutes=1)) is None
    assert check_event(back_dated, registry) is None  # no receipt time (a replay): recordedtime alone


def test_an_event_recorded_after_its_receipt_is_refused(partnership: Partnership) -> None:
    police = Chain("police/avon-somerset")
    registry = partnership.registry(partnership.register(police))
    event = police.event("incident.reported", INCIDENT, at=T0)
    assert check_event(event, registry, received=T0 - RECEIPT_SKEW) is None  # clocks drift a little
    late = check_event(event, registry, received=T0 - RECEIPT_SKEW - timedelta(seconds=1))
    assert reason(late) == Reason.RECORDED_AFTER_RECEIPT


STRICT_INPUTS: list[bytes | str] = [
    b'{"a": [1, {"b": null}], "c": "x\\u00e9"}',
    '{"a": [1, {"b": null}], "c": "xé"}',
    '{"a": 1}'.encode("utf-8-sig"),  # a byte order mark: json.loads takes it in bytes
    "\ufeff{}",  # ... and refuses it in a str
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-32"),
    '{"a": 1}'.encode("utf-32-be"),
    b'"\xed\xa0\x80"',  # an encoded surrogate: json.loads decodes with surrogatepass
    b"\xff",
    b'{"a": 1, "a": 2}',
    b'{"x": [{"a": 1, "a": 2}]}',
    b"[NaN]",
    b"-Infinity",
    b'{"a": 1} x',
    b" \n[1, 2]\t ",
    b"",
    "",
    b"1",
    b"12",
    b"\x001",
]


@pytest.mark.parametrize("raw", STRICT_INPUTS)
def test_loads_strict_reads_what_json_loads_with_its_rules_reads(raw: bytes | str) -> None:
    """``loads_strict`` keeps one decoder rather than letting ``json.loads`` build one per
    call: the same value, or the same error, for bytes and text of every encoding JSON
    detects, byte order marks, surrogates, duplicate members and NaN."""

    def outcome(read: Callable[[bytes | str], Any]) -> tuple[str, Any]:
        try:
            return "value", read(raw)
        except Exception as exc:
            return type(exc).__name__, str(exc)

    reference = outcome(
        lambda text: json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_members)
    )
    assert outcome(loads_strict) == reference
