"""The event vocabulary (DESIGN.md, "Vocabulary v1") and its JSON Schemas.

Schemas live as JSON files in ``ledger/schemas`` so agency systems in any language can validate
before they sign; this module only loads them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_PACKAGE = "ledger"
# Signed by the partnership root key only: who may sign anything at all. The root key can then
# stay offline, needed only when a key is registered or revoked.
ROOT_TYPES = frozenset({"agency.key.registered", "agency.key.revoked"})
# The partnership's own bookkeeping, signed by a registered *service* key (an agency id of kind
# ``partnership``, e.g. ``partnership/service``) on behalf of an authenticated person or a
# scheduled job: every read of a child's record, a lead's acknowledgement or dismissal of a flag,
# and Merkle tree heads. A service key signs nothing else, and no agency key signs these.
SERVICE_TYPES = frozenset({"flag.acknowledged", "flag.dismissed", "access.recorded", "ledger.tree-head"})
PARTNERSHIP_TYPES = ROOT_TYPES | SERVICE_TYPES
# The identity the partnership's services sign as (web workspace, CLI reads, tree heads).
SERVICE_AGENCY = "partnership/service"
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


@cache
def agency_types() -> frozenset[str]:
    """The types an agency publishes: the vocabulary without the partnership's own bookkeeping
    (keys, flag lifecycle, access records, tree heads), which agency-facing lists never show."""
    return event_types() - PARTNERSHIP_TYPES


def closest(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Candidates that look like a mistyped ``word``, best first ("did you mean ...?"): only
    those nearly as close as the best, so one obvious typo gets one answer."""
    found = difflib.get_close_matches(word, sorted(candidates), n=limit, cutoff=0.6)
    if not found:
        return []
    best = difflib.SequenceMatcher(None, word, found[0]).ratio()
    return [c for c in found if difflib.SequenceMatcher(None, word, c).ratio() >= best - 0.03]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x' or 'y'?)`` or nothing: a suffix for refusal messages."""
    found = closest(word, candidates)
    return f" (did you mean {' or '.join(repr(c) for c in found)}?)" if found else ""


def expected_type(event_type: str, known: Iterable[str]) -> str:
    """What a refusal of ``event_type`` (not in ``known``) expects: the near known types, or,
    for one of the partnership's own types, why an agency cannot send it (suggesting a near
    agency type for ``agency.key.registered`` would send the developer the wrong way)."""
    if event_type in PARTNERSHIP_TYPES:
        return f"an agency event type: {event_type} is signed by the partnership itself, never by an agency"
    return f"an event type of the vocabulary{did_you_mean(event_type, known)}"


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
