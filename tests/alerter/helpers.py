from __future__ import annotations

import json
import uuid
from typing import Any

from consumers.alerter.config import PartnershipConfig, parse_config
from transport.kafka import KafkaSettings, ensure_topics, make_producer

SECRET_NAME = "Jane Secretname"
SECRET_ADDRESS = "14 Hidden Lane"
SECRET_NOTE = "mother disclosed something private"


# What every routing file must have besides [smtp]: where the flag pages are, and the fallback.
REQUIRED: dict[str, Any] = {
    "web_base_url": "https://sgledger.partnership.test",
    "partnership": {"fallback": "fallback@partnership.test"},
}
REQUIRED_TOML = (
    'web_base_url = "https://sgledger.partnership.test"\n'
    '[partnership]\nfallback = "fallback@partnership.test"\n'
)


def config(port: int = 25, **extra: Any) -> PartnershipConfig:
    data: dict[str, Any] = {
        "smtp": {"host": "127.0.0.1", "port": port, "from": "alerts@partnership.test"},
        "web_base_url": "https://sgledger.partnership.test",
        "agencies": {
            "police/avon": {"leads": ["police-lead@police.test"]},
            "gp/Y001": {"leads": ["gp-lead@nhs.test", "gp-deputy@nhs.test"]},
            "la/children": {"leads": ["la-lead@la.test"]},
        },
        "partnership": {
            "leads_by_severity": {"high": ["partnership-high@partnership.test"]},
            "leads_by_rule": {"gp-not-notified": ["gp-rule@partnership.test"]},
            "fallback": "fallback@partnership.test",
        },
        "quiet_rules": ["school-absence"],
    }
    data.update(extra)
    return parse_config(data, "test.toml")


def flag_change(
    *,
    child: str = "child-7f3a",
    rule: str = "gp-not-notified",
    severity: str = "medium",
    concerns: list[str] | None = None,
    change: str = "raised",
    change_id: str | None = None,
    flag_id: str | None = None,
) -> dict[str, Any]:
    return {
        "change_id": change_id or str(uuid.uuid4()),
        "change": change,
        "changed_at": "2026-11-20T10:00:00Z",
        "flag": {
            "id": flag_id or str(uuid.uuid4()),
            "rule": rule,
            "version": 1,
            "child": child,
            "severity": severity,
            "title": f"Title of {rule}",
            "status": "open",
            "due": "2026-11-21T17:00:00Z",
            "evidence": ["ev-1"],
            "concerns": concerns if concerns is not None else ["police/avon"],
            "source": "Review of Child X (2021), para 4.2",
            "explanation": "explained",
            "action": "Notify the GP practice",
            "detail": {"note": SECRET_NOTE, "name": SECRET_NAME},
            "acknowledged_by": None,
            "resolved_by": None,
            "resolved_at": None,
            "dismissed_by": None,
            "dismissed_reason": None,
        },
        "evidence_detail": [
            {"id": "ev-1", "source": "police/avon", "type": "domestic-abuse-incident",
             "time": "2026-11-19T22:10:00Z", "recordedtime": "2026-11-19T23:00:00Z", "refs": ["INC-7"],
             "data": {"name": SECRET_NAME, "address": SECRET_ADDRESS, "notes": SECRET_NOTE}},
        ],
    }  # fmt: skip


def encode(change: dict[str, Any]) -> bytes:
    return json.dumps(change).encode()


def publish(settings: KafkaSettings, changes: list[dict[str, Any]]) -> None:
    """Put flag changes on the gap-flags topic the way the projector does (keyed by child)."""
    ensure_topics(settings, [settings.topics.gap_flags])
    producer = make_producer(settings)
    for change in changes:
        key = (change["flag"]["child"] or "partnership").encode()
        producer.send(settings.topics.gap_flags, key=key, value=encode(change))
    producer.flush()
    producer.close()
