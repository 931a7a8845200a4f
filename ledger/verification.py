"""Is this message an acceptable event? Pure checks, in the order DESIGN.md invariant 1 gives.

Every refusal carries a machine-readable reason and a sentence a person can act on; the
projector quarantines with both, the auditor reports with both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ledger.canonical import event_digest
from ledger.keyregistry import KeyRecord, KeyRegistry
from ledger.signing import signature_valid
from ledger.timeutil import parse_time
from ledger.validation import validate_event
from ledger.vocabulary import ROOT_TYPES, SERVICE_TYPES, agency_kind, event_types

MAX_MESSAGE_BYTES = 1024 * 1024
# How far an event's recordedtime may be ahead of the partnership's receipt of it: clocks drift,
# but an event recorded "in the future" is a claim about time nobody can check (docs/keys.md).
RECEIPT_SKEW = timedelta(minutes=5)
# An event is about five levels deep (envelope, data, a list, an object, a value); 32 leaves room
# for any vocabulary to come while staying far below what the JSON parser's recursion survives.
MAX_NESTING = 32
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


class Reason(StrEnum):
    OVERSIZED = "oversized"
    NOT_JSON = "not-json"
    UNKNOWN_TYPE = "unknown-type"
    SCHEMA = "schema-invalid"
    UNKNOWN_KEY = "unknown-key"
    KEY_OF_OTHER_AGENCY = "key-of-other-agency"
    KEY_NOT_VALID = "key-not-valid-at-recordedtime"
    KEY_REVOKED_AT_RECEIPT = "key-revoked-at-receipt"
    RECORDED_AFTER_RECEIPT = "recorded-after-receipt"
    NOT_ROOT_SIGNED = "not-root-signed"
    NOT_SERVICE_SIGNED = "not-service-signed"
    BAD_SIGNATURE = "bad-signature"
    REPLAYED_ID = "replayed-id"
    EQUIVOCATION = "equivocation"
    SEQUENCE_GAP = "sequence-gap"
    CHAIN_BROKEN = "chain-broken"
    # Handling the message raised something nobody anticipated (a bug, or input no check knew):
    # the message is set aside so the rest of the partnership's events keep flowing.
    INTERNAL_ERROR = "internal-error"


# Reasons that may clear by themselves when a later event arrives; the projector re-verifies
# entries held for them automatically (a missing predecessor, a key registered later).
SELF_CLEARING = frozenset({Reason.SEQUENCE_GAP, Reason.UNKNOWN_KEY})


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str


def parse_message(raw: bytes) -> dict[str, Any] | Rejection:
    """Bytes from Kafka -> event object, or why not (size first: never parse a huge blob)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection(
            Reason.OVERSIZED,
            f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES} (1 MiB). "
            "Send large documents by reference, not inline.",
        )
    if too_deeply_nested(raw):
        return Rejection(
            Reason.NOT_JSON,
            f"message is nested deeper than {MAX_NESTING} levels (or its brackets do not balance); "
            "refused without parsing",
        )
    try:
        value = loads_strict(raw)
    except DuplicateMember as exc:
        return Rejection(Reason.NOT_JSON, f"message is not I-JSON: {exc}")
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejection(Reason.NOT_JSON, f"message is not UTF-8 JSON: {exc}")
    if not isinstance(value, dict):
        return Rejection(Reason.NOT_JSON, "message is JSON but not an object (CloudEvent)")
    return value


def too_deeply_nested(raw: bytes) -> bool:
    """Whether arrays and objects nest deeper than MAX_NESTING (or their brackets do not
    balance, which no JSON does), found without parsing and without recursion.

    Why before parsing: ``json.loads`` recurses per level and a few thousand levels raise
    RecursionError, which no ``except ValueError`` catches. Every step is a regex pass in C with
    no backtracking: drop escape pairs (so no quote is escaped), blank out string literals (which
    may hold brackets), keep only the brackets, then remove innermost pairs with ``bytes.replace``,
    one level per pass.
    Most events have fewer brackets than the limit in all and skip even that.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_NESTING:
        return False
    # Which bracket closes which does not matter for depth (the parser refuses a mismatch).
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", _ESCAPE.sub(b"", raw))).translate(_ONE_KIND)
    for _ in range(MAX_NESTING):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True


def loads_strict(raw: bytes | str) -> Any:
    """JSON as the partnership reads it wherever it arrives (Kafka, the gateway): RFC 8259
    without NaN/Infinity, and no object naming a member twice. Raises ``ValueError``
    (``DuplicateMember`` for a repeated name).

    ``json.loads(raw, parse_constant=..., object_pairs_hook=...)`` with the decoder made once
    (``STRICT_DECODER``): given any hook, ``json.loads`` builds a new decoder and its C scanner
    on every call, which cost more than reading a small event (issue 11: an NDJSON batch is
    read line by line; the projector reads every message here). The steps before the decoder
    are ``json.loads``'s own (its text from bytes, the BOM it refuses in a str), so the values
    and errors are the same (tests/ledger/test_verification.py compares them)."""
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
        text = raw
    else:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    return STRICT_DECODER.decode(text)


class DuplicateMember(ValueError):
    """An object names the same member twice."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse an object that names a member twice (I-JSON, RFC 7493 section 2.3: MUST NOT).

    Parsers disagree on which copy counts: Python's keeps the last, others the first or refuse.
    A message with ``"subject"`` twice could then be verified by one reader as about one child
    and shown by another as about a different one, so it is quarantined, never interpreted.
    Costs about one more parse of the object's members (~9 us an event, measured here)."""
    members = dict(pairs)
    if len(members) == len(pairs):
        return members
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise DuplicateMember(
                f"an object names the member {json.dumps(name)} twice; JSON readers disagree on "
                "which copy counts (RFC 7493 section 2.3), so it is refused, not interpreted"
            )
        seen.add(name)
    raise AssertionError("unreachable: a shorter dict means a repeated name")


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259) and RFC 8785 cannot canonicalise them."""
    raise ValueError(f"{name} is not a JSON number")


STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_members)
"""``loads_strict``'s rules as a decoder, for a reader that takes a document item by item with
``raw_decode`` (the gateway's streamed batch body), so both read JSON by the same rules."""


def check_event(
    event: Mapping[str, Any],
    keys: KeyRegistry,
    received: datetime | None = None,
    signed: bytes | None = None,
) -> Rejection | None:
    """Schema, who may sign this type (root, service or agency key), key ownership, key validity
    and signature (over ``signed``, the signing input, when the caller computed it with
    ``canonical_forms``).

    ``received`` is when the partnership received the event (the Kafka record's time, bounded by
    the projector's clock). An event's ``recordedtime`` is only the producer's claim, so with a
    receipt time the key must also not have been revoked at receipt, and ``recordedtime`` may be
    at most ``RECEIPT_SKEW`` after it (docs/keys.md). None (re-applying events the ledger already
    accepted, e.g. an as-of replay) judges ``recordedtime`` alone: their receipt was judged once.
    """
    event_type = event.get("type")
    if isinstance(event_type, str) and event_type not in event_types():
        return Rejection(
            Reason.UNKNOWN_TYPE,
            f"type {event_type!r} is not in the vocabulary (see ledger/schemas)",
        )
    problems = validate_event(event)
    if problems:
        return Rejection(Reason.SCHEMA, "; ".join(str(p) for p in problems[:10]))
    source, kid = event["source"], event["kid"]
    if received is not None and parse_time(event["recordedtime"]) > received + RECEIPT_SKEW:
        return Rejection(
            Reason.RECORDED_AFTER_RECEIPT,
            f"recordedtime {event['recordedtime']} is more than {RECEIPT_SKEW} after the partnership "
            f"received the event ({received.isoformat()}): an event cannot be recorded in the future; "
            "check the sending system's clock",
        )
    if event_type in ROOT_TYPES or source == keys.root.partnership:
        if kid != keys.root.kid or source != keys.root.partnership or event_type not in ROOT_TYPES:
            return Rejection(
                Reason.NOT_ROOT_SIGNED,
                f"{event_type} must come from {keys.root.partnership} signed by the root key "
                f"{keys.root.kid}, and the root key signs only key registrations and revocations; "
                f"got source {source}, kid {kid}",
            )
        public_key = keys.root.public_key
    else:
        record = keys.get(kid)
        if record is None:
            return Rejection(
                Reason.UNKNOWN_KEY,
                f"key {kid} is not registered; register it for {source} "
                "(sgledger agency add) and the event is re-verified automatically",
            )
        if record.agency != source:
            return Rejection(
                Reason.KEY_OF_OTHER_AGENCY,
                f"key {kid} belongs to {record.agency}, not to {source}",
            )
        is_service = agency_kind(source) == "partnership"
        if is_service != (event_type in SERVICE_TYPES):
            return Rejection(
                Reason.NOT_SERVICE_SIGNED,
                f"{event_type} must be signed by a partnership service key (e.g. partnership/service)"
                if event_type in SERVICE_TYPES
                else f"{source} is a partnership service: it signs only "
                f"{', '.join(sorted(SERVICE_TYPES))}, not {event_type}",
            )
        refusal = key_refusal(record, event, received)
        if refusal is not None:
            return refusal
        public_key = record.public_key
    if not signature_valid(event, public_key, signed):
        return Rejection(
            Reason.BAD_SIGNATURE,
            f"signature does not verify with key {kid}: the event was altered after signing "
            "or signed with another key",
        )
    return None


def key_refusal(record: KeyRecord, event: Mapping[str, Any], received: datetime | None) -> Rejection | None:
    """Was the key usable for this event: valid at its ``recordedtime`` and, when the receipt
    time is known, not revoked by then? The second closes back-dating: a stolen key revoked at R
    cannot sign at R+1 an event dated R-1."""
    kid, source = record.kid, event["source"]
    recorded = parse_time(event["recordedtime"])
    if not record.valid_at(recorded):
        why = (
            f"revoked from {record.revoked_from.isoformat()}"
            if record.revoked_from is not None and recorded >= record.revoked_from
            else f"valid only from {record.valid_from.isoformat()}"
        )
        return Rejection(
            Reason.KEY_NOT_VALID,
            f"key {kid} of {source} was not valid at recordedtime {event['recordedtime']} ({why})",
        )
    if received is not None and record.revoked_from is not None and received >= record.revoked_from:
        return Rejection(
            Reason.KEY_REVOKED_AT_RECEIPT,
            f"key {kid} of {source} was revoked from {record.revoked_from.isoformat()}, before the "
            f"partnership received this event ({received.isoformat()}); an event dated before a "
            "revocation is accepted only if it arrived before it",
        )
    return None


@dataclass(frozen=True)
class ChainFacts:
    """What the ledger already holds that bears on one event (looked up by the store)."""

    same_id_digest: str | None  # digest of an accepted event with this id
    same_sequence_digest: str | None  # digest of the accepted event at (source, sequence)
    predecessor_digest: str | None  # digest of the accepted event at (source, sequence - 1)
    highest_sequence: int  # highest accepted sequence of this source, 0 if none


DUPLICATE = "duplicate"


def check_chain(
    event: Mapping[str, Any], facts: ChainFacts, digest: str | None = None
) -> Rejection | str | None:
    """Idempotency, equivocation and the per-agency hash chain (``digest``: the event's, when the
    caller has it already).

    Returns None to accept, ``DUPLICATE`` for a redelivery of an event already accepted (applying
    it again would change nothing), or a Rejection.
    """
    digest = digest or event_digest(event)
    if facts.same_id_digest is not None:
        if facts.same_id_digest == digest:
            return DUPLICATE
        return Rejection(
            Reason.REPLAYED_ID,
            f"id {event['id']} was already accepted with different content; every event needs a fresh id",
        )
    sequence = event["sequence"]
    if facts.same_sequence_digest is not None:
        return Rejection(
            Reason.EQUIVOCATION,
            f"{event['source']} already has a different accepted event at sequence {sequence}: "
            "two events signed for one place in the chain (equivocation)",
        )
    if sequence == 1:
        if event["prevhash"] != "":
            return Rejection(Reason.CHAIN_BROKEN, "sequence 1 must have an empty prevhash")
        return None
    if facts.predecessor_digest is None:
        return Rejection(
            Reason.SEQUENCE_GAP,
            f"{event['source']} sequence {sequence} arrived before sequence {sequence - 1} "
            f"(highest accepted: {facts.highest_sequence}); held until it arrives, "
            "re-verified automatically",
        )
    if facts.predecessor_digest != event["prevhash"]:
        return Rejection(
            Reason.CHAIN_BROKEN,
            f"prevhash does not match the accepted {event['source']} sequence {sequence - 1}",
        )
    return None
