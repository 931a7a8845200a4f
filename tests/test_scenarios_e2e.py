"""Every scenario through the whole system: signed, published to the real broker, projected,
and its expectations checked against flags recomputed from the ledger."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from consumers.auditor.diff import diff
from policies.registry import ALL_POLICIES
from sgledger.scenario_runner import run_scenario
from sgledger.scenariofile import load_scenario
from sgledger.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([*(ROOT / "scenarios").glob("*.json"), *(ROOT.parent / "shared" / "scenarios").glob("*.json")])

pytestmark = pytest.mark.kafka


def test_there_is_a_scenario_per_rule_and_per_seed_review() -> None:
    names = {path.stem for path in FILES}
    assert {p.id for p in ALL_POLICIES} <= names
    assert {"cspr-child-charlie", "cspr-family-a"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_scenario_end_to_end(path: Path, kafka_bootstrap: str, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    settings = Settings.resolve(
        tmp_path, bootstrap_servers=kafka_bootstrap, topic_prefix=f"s{uuid.uuid4().hex[:10]}"
    )
    result = run_scenario(scenario, settings)
    assert result.quarantined == 0, "every scenario event should verify and be accepted"
    assert result.expectations, "a scenario without expectations proves nothing"
    failures = [f"{e.as_of.isoformat()}: {f}" for e in result.expectations for f in e.failures]
    assert not failures, "\n".join(failures)


def test_a_seed_review_with_the_stages_apart_gives_the_views_of_one_process(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The layout for both cores (intake, then two child-projection shards: docs/stages.md)
    passes the scenario's expectations and leaves the same views and flags as the default."""
    scenario = load_scenario(ROOT / "scenarios" / "cspr-child-charlie.json")
    results, urls = [], []
    for shards in (0, 2):
        settings = Settings.resolve(
            tmp_path / f"shards-{shards}",
            bootstrap_servers=kafka_bootstrap,
            topic_prefix=f"s{uuid.uuid4().hex[:10]}",
        )
        results.append(run_scenario(scenario, settings, shards=shards))
        urls.append(settings.database_url)
    for result in results:
        assert result.passed, [f for e in result.expectations for f in e.failures]
    # Each run makes its own keys (so its own signatures and digests): compare what is derived.
    assert [d for d in diff(urls[0], urls[1]) if d["table"] != "ledger_accepted"] == []
