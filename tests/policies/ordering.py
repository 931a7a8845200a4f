"""Delivery-order independence, checked the same way for every rule: the flags (as JSON, byte for
byte) must not change when the same events arrive in another order."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from policies.base import Policy
from policies.view import Event
from tests.policies.helpers import flags, view


def flags_json(rule: Policy, events: Sequence[Event], as_of: str) -> str:
    return json.dumps([f.to_json() for f in flags(rule, view(*events), as_of)], sort_keys=True)


def assert_order_independent(rule: Policy, events: Sequence[Event], as_of: str, shuffles: int = 8) -> None:
    expected = flags_json(rule, events, as_of)
    assert expected != "[]", "the check needs a story that raises flags"
    for seed in range(shuffles):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        assert flags_json(rule, shuffled, as_of) == expected
