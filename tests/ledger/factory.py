"""Signed events for tests: a partnership root, agencies with keys, and their chains."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import event_digest
from ledger.envelope import build_event
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.signing import key_id, public_key_text

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
PARTNERSHIP = "partnership/test"


class Chain:
    """One agency's signing key and its next sequence/prevhash, like an agency system."""

    def __init__(self, source: str, key: Ed25519PrivateKey | None = None) -> None:
        self.source = source
        self.key = key or Ed25519PrivateKey.generate()
        self.sequence = 0
        self.prevhash = ""

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

    def event(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        subject: str = "C-1",
        at: datetime = T0,
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


class Partnership:
    def __init__(self) -> None:
        self.root = Chain(PARTNERSHIP)
        self.root_key = RootKey(PARTNERSHIP, self.root.key.public_key())

    def register(self, agency: Chain, at: datetime = T0 - timedelta(days=1)) -> dict[str, Any]:
        return self.root.event(
            "agency.key.registered",
            {
                "agency": agency.source,
                "kid": agency.kid,
                "public_key": public_key_text(agency.key.public_key()),
            },
            subject=agency.source,
            at=at,
        )

    def revoke(self, agency: Chain, at: datetime) -> dict[str, Any]:
        return self.root.event(
            "agency.key.revoked",
            {"agency": agency.source, "kid": agency.kid, "reason": "laptop stolen"},
            subject=agency.source,
            at=at,
        )

    def registry(self, *key_events: Mapping[str, Any]) -> KeyRegistry:
        registry = KeyRegistry(self.root_key)
        for event in key_events:
            registry.apply(event)
        return registry


INCIDENT = {
    "incident_ref": "INC-1",
    "children_present": True,
    "domestic_abuse": True,
    "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-f", "role": "alleged-perpetrator"}],
}
