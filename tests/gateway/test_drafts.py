"""Reading a batch body item by item (``iter_json_array``) answers what reading it whole
(``batch_items``) answers: the same items, or the same 400, on bodies built to trip the
streamed reader (whitespace anywhere JSON allows it, an empty array, trailing commas or text,
duplicate members, NaN, bodies that are not arrays or not UTF-8)."""

from __future__ import annotations

from typing import Any

import pytest

from producers.gateway.drafts import batch_items, iter_json_array
from producers.gateway.problems import ProblemError

ITEM = b'{"type": "incident.reported", "subject": "C-1", "data": {"a": [1, {"b": null}]}}'

BODIES = [
    b"[" + ITEM + b"," + ITEM + b"]",
    b" \r\n\t[ \n" + ITEM + b" \t,\r\n " + ITEM + b"\n ] \n",
    b"[" + ITEM + b"]",
    b"[]",
    b" [ ] ",
    b'[1, 2, "three", [4], {}]',  # not drafts, but an array: the items as they are
    b"[" + ITEM + b",]",  # a trailing comma
    b"[," + ITEM + b"]",
    b"[" + ITEM + b" " + ITEM + b"]",  # no comma
    b"[" + ITEM + b"] x",  # something after the array
    b"[" + ITEM + b"]]",
    b"[" + ITEM,  # breaks off
    b"[" + ITEM + b",",
    b"[",
    b"",
    b"   ",
    b'[{"a": 1, "a": 2}]',  # a duplicate member
    b'[{"x": {"a": 1, "a": 2}}]',
    b"[NaN]",
    b"[1e999]",  # a float JSON allows; Python reads inf
    b"{}",  # an object, not an array
    b'"text"',
    b"[\xff]",  # not UTF-8
    b"\xef\xbb\xbf[]",  # a byte order mark
    b"[1]\n[2]",
]


def answer(read: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "items", list(read(raw))
    except ProblemError as exc:
        return "refused", (exc.status, exc.slug, exc.detail, exc.problems)


@pytest.mark.parametrize("raw", BODIES)
def test_a_body_read_item_by_item_is_the_body_read_whole(raw: bytes) -> None:
    whole = answer(lambda body: batch_items(body, ndjson=False), raw)
    assert answer(iter_json_array, raw) == whole
