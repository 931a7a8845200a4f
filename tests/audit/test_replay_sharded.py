"""`audit replay` on a generated history of many children: evaluating each child once, split
across shard processes, gives exactly the rows the child projection stage writes when it
follows the same ledger batch by batch as of the same time (the stage is the live path)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.audit import T0, generate_history
from consumers.auditor.diff import diff
from consumers.auditor.replay import replay, shard_children
from consumers.projection.shard import Shard
from consumers.projection.stage import ChildProjection
from ledger.keyregistry import RootKey
from ledger.store.ledger import Ledger

PARTNERSHIP = "partnership/test"
EVENTS, CHILDREN = 600, 30
AS_OF = T0 + timedelta(minutes=EVENTS)  # every event recorded by then (one a minute)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ledger, RootKey]:
    """A generated history (each child's events spread over the whole ledger, as live traffic
    arrives), projected by the child stage in batches smaller than a round of children."""
    path = tmp_path_factory.mktemp("history") / "ledger.db"
    key = Ed25519PrivateKey.generate()
    ledger, root = Ledger(f"sqlite:///{path}"), RootKey(PARTNERSHIP, key.public_key())
    generate_history(ledger, key, PARTNERSHIP, EVENTS, children=CHILDREN)
    ChildProjection(ledger, root, clock=lambda: AS_OF, max_batch=47).catch_up()
    return ledger, root


@pytest.mark.parametrize("workers", [1, 2])
def test_a_replay_equals_the_child_stage_that_followed_the_ledger(
    live: tuple[Ledger, RootKey], tmp_path: Path, workers: int
) -> None:
    ledger, root = live
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = replay(ledger, root, AS_OF, url, workers=workers)
    assert (result.events, result.children, result.failed) == (EVENTS, CHILDREN, 0)
    assert diff(url, ledger.url) == []


def test_the_shards_split_the_children_between_them_in_bounded_groups(live: tuple[Ledger, RootKey]) -> None:
    """Every child is evaluated by exactly one shard, and no group is larger than asked, however
    the pages of child ids fall (a size of 4 makes many pages, most with children of other shards)."""
    ledger, _ = live
    seen: list[str] = []
    for index in (1, 2, 3):
        groups = list(shard_children(ledger, Shard(index, 3), size=4))
        assert [len(group) for group in groups[:-1]] == [4] * (len(groups) - 1)  # full but the last
        assert 0 < len(groups[-1]) <= 4
        assert all(Shard(index, 3).owns(child) for group in groups for child in group)
        seen += [child for group in groups for child in group]
    assert len(seen) == len(set(seen)) == CHILDREN
    assert len(list(shard_children(ledger, Shard(1, 1), size=4))) == -(-CHILDREN // 4)
