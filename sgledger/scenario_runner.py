"""Run a scenario file through the whole system (DESIGN.md, "Scenarios").

Agencies are registered (keys generated, root-signed registrations valid from just before the
story starts), the events are signed and published as those agencies in file order, the projector
catches up, and the flags open as of each requested time are recomputed from the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ledger.keystore import Keystore
from ledger.signing import key_id, public_key_text
from ledger.store.ledger import Ledger
from ledger.store.models import QuarantineEntry
from ledger.timeutil import format_time
from ledger.topics import Topics
from ledger.vocabulary import SERVICE_AGENCY
from policies.engine import Flag
from producers.sdk import Producer
from sgledger.pipeline import Pipeline
from sgledger.scenariofile import Scenario, check_expectation, registration_time
from sgledger.settings import Settings
from views.queries import child_view, flags_as_of

PARTNERSHIP = "partnership/scenario"


@dataclass
class ExpectationResult:
    as_of: datetime
    failures: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"as_of": format_time(self.as_of), "passed": not self.failures, "failures": self.failures}


@dataclass
class ScenarioResult:
    scenario: Scenario
    as_of: datetime
    flags: list[Flag]
    children: dict[str, dict[str, Any]]
    expectations: list[ExpectationResult] = field(default_factory=list)
    accepted: int = 0
    quarantined: int = 0

    @property
    def passed(self) -> bool:
        return all(not e.failures for e in self.expectations)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "as_of": format_time(self.as_of),
            "flags": [f.to_json() for f in self.flags],
            "children": self.children,
            "expectations": [e.to_json() for e in self.expectations],
            "passed": self.passed,
            "ingest": {"accepted": self.accepted, "quarantined": self.quarantined},
        }


def run_scenario(
    scenario: Scenario,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    progress: Callable[[str], None] = lambda _: None,
    while_up: Callable[[Pipeline], None] | None = None,
    shards: int = 0,
) -> ScenarioResult:
    """``while_up`` runs after the last event is projected, while the pipeline (and so an
    embedded broker and its topics) is still up: the demo's alerter reads the flags topic there.
    ``shards``: run the stages apart (``Pipeline``), as a deployment on both cores does."""
    settings.ensure_data_dir()
    keystore = Keystore(settings.keys_dir)
    if not keystore.has_root():
        keystore.init_root(PARTNERSHIP)
    root = keystore.root_info()
    topics = Topics(settings.topic_prefix)
    ledger = Ledger(settings.database_url)
    producers: dict[str, Producer] = {}

    def producer(agency: str) -> Producer:
        if agency not in producers:
            producers[agency] = Producer(agency, keystore, settings.outbox_url, topics=topics)
        return producers[agency]

    registered_at = registration_time(scenario)
    with Pipeline(settings, ledger, root.root_key(), progress=progress, shards=shards) as pipeline:
        # The service key too: reads of the story's children afterwards are signed with it.
        for agency in [SERVICE_AGENCY, *scenario.agencies]:
            key = (
                keystore.agency_private_key(agency)
                if keystore.has_agency(agency)
                else keystore.create_agency_key(agency)
            ).public_key()
            producer(root.partnership).publish(
                "agency.key.registered",
                agency,
                {
                    "agency": agency,
                    "kid": key_id(key),
                    "public_key": public_key_text(key),
                    "valid_from": format_time(registered_at),
                },
                time=registered_at,
                recorded=registered_at,
            )
        stats = pipeline.sync()
        progress(f"registered {len(scenario.agencies)} agencies; publishing {len(scenario.events)} events")
        for event in scenario.events:
            producer(event.agency).publish(
                event.type,
                event.child,
                event.data,
                time=event.at,
                recorded=event.recorded,
                event_id=event.id,
            )
        stats.add(pipeline.sync())
        if while_up is not None:
            while_up(pipeline)
    last = max(max(e.at, e.recorded) for e in scenario.events) if scenario.events else registered_at
    when = as_of or last + timedelta(seconds=1)
    root_key = root.root_key()
    result = ScenarioResult(
        scenario=scenario,
        as_of=when,
        flags=[f for f in flags_as_of(ledger, root_key, when) if f.is_open],
        children={},
        accepted=stats.accepted,
    )
    with ledger.read() as session:
        # What is still refused when the story ends: a message held for its predecessor and
        # released a batch later (events of one agency cross partitions) is not.
        result.quarantined = (
            session.scalar(
                select(func.count())
                .select_from(QuarantineEntry)
                .where(QuarantineEntry.status != "readmitted")
            )
            or 0
        )
        for child in sorted({e.child for e in scenario.events}):
            view = child_view(session, child)
            if view is not None:
                result.children[child] = view
    for expectation in scenario.expect:
        open_then = [f for f in flags_as_of(ledger, root_key, expectation.as_of) if f.is_open]
        result.expectations.append(
            ExpectationResult(expectation.as_of, check_expectation(expectation, open_then))
        )
    ledger.engine.dispose()
    return result
