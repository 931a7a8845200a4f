"""Signed events for tests: a partnership root, agencies with keys, and their chains."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.envelope import ChainSigner
from ledger.keyregistry import KeyRegistry, RootKey
from ledger.signing import public_key_text

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
PARTNERSHIP = "partnership/test"


class Chain(ChainSigner):
    """An agency's chain with the defaults tests want (child C-1, time T0)."""

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
        return self.sign(event_type, data, subject=subject, at=at, recorded=recorded, event_id=event_id)


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
