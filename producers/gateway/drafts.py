"""Reading a batch request into checked drafts: shared by the serving process (single events,
signed events) and the draft worker (producers/gateway/worker.py), so both refuse the same
bodies with the same problems."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from ledger.canonical import canonical_json
from ledger.validation import Problem
from ledger.verification import loads_strict
from producers.gateway.problems import ProblemError, prefixed
from producers.sdk import Prepared, Preparer, draft_from_json


def bad_request(detail: str, problems: list[Problem] | None = None) -> ProblemError:
    return ProblemError(400, "bad-request", "The request could not be read", detail, problems=problems or [])


def parse_json(raw: bytes) -> Any:
    try:
        return loads_strict(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"the body is not UTF-8 JSON: {exc}") from exc


def parse_ndjson(raw: bytes) -> list[Any]:
    items: list[Any] = []
    problems: list[Problem] = []
    for index, line in enumerate(line for line in raw.splitlines() if line.strip()):
        try:
            items.append(loads_strict(line))
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(Problem(f"/{index}", "one JSON object on this line", f"not JSON ({exc})"))
    if problems:
        raise bad_request("the body is not NDJSON (one JSON object per line)", problems)
    return items


def batch_items(raw: bytes, ndjson: bool) -> list[Any]:
    """The items of a batch body (a JSON array, or NDJSON), or a 400."""
    items = parse_ndjson(raw) if ndjson else parse_json(raw)
    if not isinstance(items, list):
        raise bad_request("the body must be a JSON array of events")
    return items


def check_count(items: Sequence[Any], limit: int) -> None:
    if not items:
        raise ProblemError(422, "empty-batch", "Nothing to publish", "the request holds no events")
    if len(items) > limit:
        raise ProblemError(
            413, "batch-too-large", "Too many events in one request",
            f"{len(items)} events; at most {limit} per request: split the batch",
        )  # fmt: skip


def request_hash(kind: str, body: Any) -> str:
    """What an Idempotency-Key is bound to: the request's meaning (JSON value), not its bytes,
    so a retry that re-serialises the same drafts (or sends NDJSON instead of an array) is the
    same request."""
    return hashlib.sha256(canonical_json({"kind": kind, "body": body})).hexdigest()


def checked(
    preparer: Preparer, items: Sequence[Any], batch: bool
) -> Iterator[tuple[Prepared | None, list[Problem]]]:
    """Each item as a prepared draft, or its problems (paths of a batch start with the item's
    index): built and checked once (``Preparer.prepare``)."""
    for index, item in enumerate(items):
        draft, found = draft_from_json(item)
        ready = None
        if draft is not None:
            ready, found = preparer.prepare(draft)
        yield ready, (prefixed(index, found) if batch and found else found)
