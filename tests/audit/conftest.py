"""A seed scenario (CSPR Child Charlie) run once end to end through the embedded pipeline; the
replay, diff, chronology and CLI tests read its ledger."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.keyregistry import RootKey
from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from sgledger.scenario_runner import run_scenario
from sgledger.scenariofile import Scenario, load_scenario
from sgledger.settings import Settings

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "cspr-child-charlie.json"


@dataclass(frozen=True)
class Story:
    scenario: Scenario
    settings: Settings
    ledger: Ledger
    root: RootKey


@pytest.fixture(scope="session")
def charlie(tmp_path_factory: pytest.TempPathFactory) -> Story:
    settings = Settings.resolve(data_dir=tmp_path_factory.mktemp("charlie"))
    scenario = load_scenario(SCENARIO)
    result = run_scenario(scenario, settings)
    assert result.passed, [e.failures for e in result.expectations]
    root = Keystore(settings.keys_dir).root_info().root_key()
    return Story(scenario, settings, Ledger(settings.database_url), root)
