"""Keep a consumer-group join that finished between two polls (a kafka-python 3.0 defect).

kafka-python 3 runs JoinGroup + SyncGroup as a task on its IO thread and awaits it from
``consumer.poll``. When the poll's timeout runs out first, the task is left in flight so that the
next poll re-awaits it. But ``join_group_async`` starts a new join whenever the task ``is_done``,
so a join that *completed* while the application was busy between two polls is thrown away and a
fresh JoinGroup is sent (heartbeats stay disabled all the while). A broker holds a JoinGroup for
the rebalance (tansu: half the session timeout; Apache Kafka: until every member rejoins), so a
service whose loop does real work between short polls (the alerter sends mail, the projector
applies a batch) can discard every join and consume nothing for minutes: the intermittent
"the projector consumed nothing within 120 s" start-up and a rebalance test that mailed 3 of 12
changes. Seen on tansu and in kafka-python 3.0.12's source, still so on its main branch
(``if self._join_task is None or self._join_task.is_done``).

The fix finishes a successfully completed join exactly as ``join_group_async`` does after its
own await (same fields, same order), then returns; every other case (no task, a task in
flight, a task that failed, whose error the library's own handlers classify) goes to the
library unchanged.

A second face of the same defect: ``ConsumerCoordinator.poll`` awaits the join task only while
``need_rejoin()`` says so, and that can turn false while the task is still in flight. A pattern
subscription that joined with no topics (the projector against a broker that restarted empty)
sees the relay create them while that join is held; the leader's assignment then already
covers them, so the rebalance that follows is asked for only by the subscription's change,
which the JoinGroup's sending satisfies. A poll whose timeout ran out in that join left it for
good: the task finished on the IO thread and nobody took its assignment, the heartbeats stayed
disabled, and the projector consumed nothing (test_outages.py's broker restart, about one run
in six once reconnecting was quick). So a join task not yet taken counts as a rebalance under
way (``need_rejoin`` is true while one exists), as the Java client's ``rejoinNeededOrPending``
does.

Applied once, at import of :mod:`transport.kafka`, and only to the client series it was
written against: another series gets the library's own code and a warning, and
``tests/transport/test_group_join.py`` fails if either defect comes back.
"""

from __future__ import annotations

import logging
from typing import Any

import kafka
from kafka.coordinator.base import BaseCoordinator, MemberState
from kafka.coordinator.consumer import ConsumerCoordinator

log = logging.getLogger(__name__)

PATCHED_SERIES = "3.0."
_original_join_group_async = BaseCoordinator.join_group_async
_original_need_rejoin = ConsumerCoordinator.need_rejoin


def _need_rejoin_or_pending(self: Any) -> bool:
    """A join task not yet taken is a rebalance under way (see above)."""
    return self._join_task is not None or bool(_original_need_rejoin(self))


async def _join_group_keeping_completed(self: Any, timeout_ms: Any = None) -> bool:
    task = self._join_task
    if task is None or not task.is_done or task.exception is not None:
        return bool(await _original_join_group_async(self, timeout_ms=timeout_ms))
    # A join whose SyncGroup answered while nobody was polling: take its assignment.
    assignment_bytes = task.value
    self._join_task = None
    with self._lock:
        self.rejoining = False
        self.rejoin_needed = False
        self.state = MemberState.STABLE
        self._enable_heartbeat()
    await self._on_join_complete_async(
        self._generation.generation_id,
        self._generation.member_id,
        self._generation.protocol,
        assignment_bytes,
    )
    return True


def install() -> bool:
    """Patch ``BaseCoordinator.join_group_async`` and ``ConsumerCoordinator.need_rejoin`` for
    the kafka-python series this was written against; returns whether it did. Idempotent."""
    if BaseCoordinator.join_group_async is _join_group_keeping_completed:
        return True
    if not kafka.__version__.startswith(PATCHED_SERIES):
        log.warning(
            "kafka-python %s: the completed-join fix is for %sx only and is not applied; "
            "run tests/transport/test_group_join.py against this version",
            kafka.__version__, PATCHED_SERIES,
        )  # fmt: skip
        return False
    BaseCoordinator.join_group_async = _join_group_keeping_completed
    ConsumerCoordinator.need_rejoin = _need_rejoin_or_pending
    return True
