"""Reading a batch request into checked drafts: shared by the serving process (single events,
signed events) and the draft worker (producers/gateway/worker.py), so both refuse the same
bodies with the same problems."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ledger.canonical import canonical_json
from ledger.validation import Problem
from ledger.verification import STRICT_DECODER, loads_strict
from producers.gateway.problems import ProblemError, prefixed
from producers.sdk import Prepared, Preparer


def bad_request(detail: str, problems: list[Problem] | None = None) -> ProblemError:
    return ProblemError(400, "bad-request", "The request could not be read", detail, problems=problems or [])


def parse_json(raw: bytes) -> Any:
    try:
        return loads_strict(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"the body is not UTF-8 JSON: {exc}") from exc


def parse_ndjson(raw: bytes) -> list[Any]:
    return list(iter_ndjson(raw))


def iter_ndjson(raw: bytes) -> Iterator[Any]:
    """The items of an NDJSON body as each line is read; a 400 listing every unreadable line
    once all are read (the items before it were already given: a caller that acted on them
    undoes that, as the gateway's transaction does)."""
    problems: list[Problem] = []
    for index, line in enumerate(line for line in raw.splitlines() if line.strip()):
        try:
            item = loads_strict(line)
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(Problem(f"/{index}", "one JSON object on this line", f"not JSON ({exc})"))
            continue
        if not problems:
            yield item
    if problems:
        raise bad_request("the body is not NDJSON (one JSON object per line)", problems)


_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def _after_space(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return index if match is None else match.end()  # never None: the pattern matches ""


# What may follow an array's item: whitespace, "," or "]", whitespace (group 1: which).
_AFTER_ITEM = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


def iter_json_array(raw: bytes) -> Iterator[Any]:
    """The items of a JSON array body as each is parsed (``loads_strict``'s rules), so the
    draft worker can send the first drafts on before the last is read (issue 11: the body
    used to be parsed whole first, while the signing process waited). Any body that is not a
    plain UTF-8 array, or breaks off, is read whole by ``batch_items`` instead, whose answer
    (the items, or the 400 saying why) is then the answer.

    Each item is read by the strict decoder's scanner itself (``raw_decode`` is a Python
    wrapper around it) and what follows it by one expression: the loop's own steps cost as
    much as reading a small draft (issue 11)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    start = _after_space(text, 0)
    if not text.startswith("[", start):
        yield from batch_items(raw, ndjson=False)
        return
    index = _after_space(text, start + 1)
    closed = text.startswith("]", index)
    if closed:
        index = _after_space(text, index + 1)
    scan: Callable[[str, int], tuple[Any, int]] = STRICT_DECODER.scan_once  # type: ignore[attr-defined]
    after_item = _AFTER_ITEM.match
    while not closed:
        try:
            item, index = scan(text, index)
        except (StopIteration, ValueError):
            break
        yield item
        separator = after_item(text, index)
        if separator is None:
            break
        index, closed = separator.end(), separator.group(1) == "]"
    if not closed or index != len(text):
        parse_json(raw)  # raises the whole body's 400
        raise AssertionError("a body read whole but not item by item")


def stream_items(raw: bytes, ndjson: bool) -> Iterator[Any]:
    """``batch_items``, item by item (a refusal may come after some items)."""
    return iter_ndjson(raw) if ndjson else iter_json_array(raw)


def batch_items(raw: bytes, ndjson: bool) -> list[Any]:
    """The items of a batch body (a JSON array, or NDJSON), or a 400."""
    items = parse_ndjson(raw) if ndjson else parse_json(raw)
    if not isinstance(items, list):
        raise bad_request("the body must be a JSON array of events")
    return items


def empty_batch() -> ProblemError:
    return ProblemError(422, "empty-batch", "Nothing to publish", "the request holds no events")


def too_many(count: str, limit: int) -> ProblemError:
    return ProblemError(
        413, "batch-too-large", "Too many events in one request",
        f"{count} events; at most {limit} per request: split the batch",
    )  # fmt: skip


def check_count(items: Sequence[Any], limit: int) -> None:
    if not items:
        raise empty_batch()
    if len(items) > limit:
        raise too_many(str(len(items)), limit)


class RequestHash:
    """What an Idempotency-Key is bound to: the request's meaning (JSON value), not its bytes,
    so a retry that re-serialises the same drafts (or sends NDJSON instead of an array) is the
    same request. SHA-256 of the RFC 8785 form of ``{"body": items, "kind": kind}``, fed item
    by item (RFC 8785 writes an array's items independently), so the draft worker hashes a
    body as it streams it."""

    def __init__(self, kind: str) -> None:
        self._sha = hashlib.sha256(b'{"body":[')
        self._kind = kind
        self._separator = b""

    def add(self, item: Any) -> None:
        self._sha.update(self._separator + canonical_json(item))
        self._separator = b","

    def hexdigest(self) -> str:
        done = self._sha.copy()
        done.update(b'],"kind":' + canonical_json(self._kind) + b"}")
        return done.hexdigest()


def request_hash(kind: str, items: Iterable[Any]) -> str:
    hashed = RequestHash(kind)
    for item in items:
        hashed.add(item)
    return hashed.hexdigest()


def checked(
    preparer: Preparer, items: Sequence[Any], batch: bool
) -> Iterator[tuple[Prepared | None, list[Problem]]]:
    """Each item as a prepared draft, or its problems (paths of a batch start with the item's
    index): built and checked once (``Preparer.prepare``)."""
    for index, item in enumerate(items):
        yield checked_item(preparer, index if batch else None, item)


def checked_item(preparer: Preparer, index: int | None, item: Any) -> tuple[Prepared | None, list[Problem]]:
    """``checked`` of one item, the ``index``-th of a batch (None: a single event)."""
    ready, found = preparer.prepare_json(item)
    return ready, (prefixed(index, found) if index is not None and found else found)
