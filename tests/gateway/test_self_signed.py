"""Events an agency system signed itself (CloudEvents), posted to the real gateway process: they
are refused for what the partnership would quarantine, exactly as drafts are."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.keystore import Keystore, KeyValidity
from tests.gateway.conftest import AGENCY, GatewayProcess, draft, new_token, start_gateway

CLOUDEVENT = {"Content-Type": "application/cloudevents+json"}


@pytest.fixture
def registered(data_dir: Path) -> Iterator[GatewayProcess]:
    """A gateway whose key was registered today, as `sgledger agency add` records it."""
    Keystore(data_dir / "keys").record_validity(AGENCY, KeyValidity(datetime.now(UTC)))
    process = start_gateway(data_dir)
    process.token = new_token(data_dir)
    yield process
    process.stop()


def signed(http: httpx.Client, key: Ed25519PrivateKey, recordedtime: str) -> dict[str, Any]:
    """The next event of the chain, signed from docs/signing.md alone (RFC 8785, Ed25519)."""
    head = http.get("/v1/chain").json()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    event: dict[str, Any] = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": AGENCY, "type": "child.registered",
        "subject": "C-7", "time": recordedtime, "recordedtime": recordedtime,
        "sequence": head["sequence"] + 1, "prevhash": head["digest"],
        "kid": hashlib.sha256(raw).hexdigest()[:32], "data": {"dob": "2018-01-01"},
    }  # fmt: skip
    signature = key.sign(rfc8785.dumps(event))
    return {**event, "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode()}


def body(event: dict[str, Any]) -> bytes:
    return rfc8785.dumps(event)


def test_a_self_signed_event_recorded_before_its_key_was_valid_is_refused_like_a_draft(
    registered: GatewayProcess,
) -> None:
    """Accepted, it would be quarantined by the partnership (key-not-valid-at-recordedtime) and
    every later event of the agency held behind the hole for an hour."""
    key = Keystore(registered.data_dir / "keys").agency_private_key(AGENCY)
    back_dated = "2019-01-01T00:00:00+00:00"
    with registered.client() as http:
        refused = http.post("/v1/events", content=body(signed(http, key, back_dated)), headers=CLOUDEVENT)
        as_draft = http.post("/v1/events", json=draft(recordedtime=back_dated))
        now = datetime.now(UTC).isoformat()
        accepted = http.post("/v1/events", content=body(signed(http, key, now)), headers=CLOUDEVENT)
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"] == as_draft.json()["problems"]
    [problem] = refused.json()["problems"]
    assert problem["path"] == "/recordedtime" and "agency add --valid-from" in problem["expected"]
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["sequence"] == 1


def test_an_event_off_the_chain_is_told_the_position_it_must_carry(registered: GatewayProcess) -> None:
    """docs/gateway.md and the OpenAPI document: `sequence` and `prevhash` of the 409 are what
    the event must carry (head + 1, the head's digest), not the head's own sequence."""
    key = Keystore(registered.data_dir / "keys").agency_private_key(AGENCY)
    with registered.client() as http:
        assert http.post("/v1/events", json=draft()).status_code == 202
        head = http.get("/v1/chain").json()
        event = signed(http, key, datetime.now(UTC).isoformat())
        skipped = {**event, "sequence": event["sequence"] + 1}
        del skipped["signature"]
        skipped["signature"] = base64.urlsafe_b64encode(key.sign(body(skipped))).rstrip(b"=").decode()
        answer = http.post("/v1/events", content=body(skipped), headers=CLOUDEVENT)
    assert answer.status_code == 409, answer.text
    assert answer.json()["type"].endswith("chain-position")
    assert (answer.json()["sequence"], answer.json()["prevhash"]) == (head["sequence"] + 1, head["digest"])


def test_a_signed_event_sent_as_a_draft_is_told_its_media_type(registered: GatewayProcess) -> None:
    """A signed CloudEvent posted as plain JSON (the drafts' media type) was told only
    "unexpected specversion, ..., signature"; it is told where it belongs, and nothing is stored."""
    key = Keystore(registered.data_dir / "keys").agency_private_key(AGENCY)
    with registered.client() as http:
        event = signed(http, key, datetime.now(UTC).isoformat())
        answer = http.post("/v1/events", content=body(event), headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["path"] == "" and problem["got"].startswith("unexpected kid, prevhash, sequence")
    assert problem["expected"].endswith(
        "(this is a signed event, not a draft: send it to the gateway as Content-Type: "
        "application/cloudevents+json, or a batch as application/cloudevents-batch+json)"
    )
    assert registered.outbox_rows() == 0
