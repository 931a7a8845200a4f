"""The event vocabulary (DESIGN.md, "Vocabulary v1") and its JSON Schemas.

Schemas live as JSON files in ``ledger/schemas`` so agency systems in any language can validate
before they sign; this module only loads them.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_PACKAGE = "ledger"
PARTNERSHIP_TYPES = frozenset(
    {
        "agency.key.registered",
        "agency.key.revoked",
        "flag.acknowledged",
        "flag.dismissed",
        "access.recorded",
        "ledger.tree-head",
    }
)
AGENCY_KINDS = (
    "police",
    "csc",
    "phn",
    "gp",
    "school",
    "midwifery",
    "amhs",
    "idva",
    "housing",
    "marac",
    "leaving-care",
    "probation",
    "partnership",
)


@cache
def envelope_schema() -> dict[str, Any]:
    return _load("envelope")


@cache
def data_schema(event_type: str) -> dict[str, Any] | None:
    """The schema of ``data`` for a type, or None for a type outside the vocabulary."""
    if event_type not in event_types():
        return None
    return _load(event_type)


@cache
def event_types() -> frozenset[str]:
    return frozenset(envelope_schema()["properties"]["type"]["enum"])


def is_amendment(event_type: str) -> bool:
    """``*.corrected`` and ``*.withdrawn`` amend an earlier event named in ``data.original``."""
    return event_type.endswith((".corrected", ".withdrawn"))


def family(event_type: str) -> str:
    """The type without its last segment: ``referral.made`` -> ``referral``.

    A ``referral.corrected`` may amend any event whose family is ``referral``.
    """
    return event_type.rsplit(".", 1)[0]


def agency_kind(agency_id: str) -> str:
    """``gp/L85001`` -> ``gp``; the kind decides routing and which rules apply."""
    return agency_id.split("/", 1)[0]


def _load(name: str) -> dict[str, Any]:
    text = resources.files(SCHEMA_PACKAGE).joinpath("schemas", f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
