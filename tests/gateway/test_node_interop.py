"""Another language: Node.js signs and verifies from docs/signing.md and the test vectors alone,
and publishes through the gateway's signed-event endpoint into a real projector."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from consumers.projector.applier import Applier
from consumers.projector.runner import Projector
from ledger.envelope import ChainSigner
from ledger.keystore import Keystore
from ledger.signing import public_key_text
from ledger.store.ledger import Ledger
from sgledger import testvectors
from tests.consumers.kafka_helpers import send_events
from tests.gateway.conftest import AGENCY, new_token, start_gateway
from transport.kafka import KafkaSettings

REPO = Path(__file__).parents[2]
VECTORS = REPO / "docs" / "test-vectors" / "chain.json"


def test_the_committed_vectors_are_what_the_code_signs() -> None:
    committed = json.loads(VECTORS.read_text("utf-8"))
    assert committed == testvectors.vectors(), "regenerate: python -m sgledger.testvectors > " + str(VECTORS)


@pytest.fixture(scope="session")
def node_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """interop/node installed with `npm ci` (from its lock file) into a folder outside the repo."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    folder = tmp_path_factory.mktemp("node")
    for item in (REPO / "interop" / "node").iterdir():
        if item.is_file():
            shutil.copy(item, folder / item.name)
    installed = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    return folder


def test_node_signs_the_vectors_byte_for_byte_and_verifies_pythons(node_project: Path) -> None:
    result = subprocess.run(
        ["node", "check-vectors.mjs", str(VECTORS)],
        cwd=node_project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"events": 3, "failures": []}


@pytest.mark.kafka
def test_node_signed_events_pass_the_gateway_and_are_accepted(
    node_project: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "agency"
    data_dir.mkdir(mode=0o700)  # the services refuse a data directory open to others
    keystore = Keystore(data_dir / "keys")
    keystore.init_root("partnership/test")
    keystore.create_agency_key(AGENCY, testvectors.test_key())  # the agency's own system holds it too
    # The partnership registers the vector key for historical loads (its events are from 2024).
    root = ChainSigner("partnership/test", keystore.root_private_key())
    key = testvectors.test_key().public_key()
    registration = root.sign(
        "agency.key.registered",
        {
            "agency": AGENCY,
            "kid": testvectors.vectors()["key"]["kid"],
            "public_key": public_key_text(key),
            "valid_from": "2024-01-01T00:00:00+00:00",
        },
        subject=AGENCY,
        at=datetime.now(UTC),
    )
    send_events(kafka_settings, [registration])
    ledger_url = f"sqlite:///{tmp_path / 'partnership.sqlite'}"
    ledger = Ledger(ledger_url)
    gateway = start_gateway(
        data_dir,
        f"--bootstrap-servers={kafka_settings.bootstrap_servers}",
        f"--topic-prefix={kafka_settings.topic_prefix}",
        f"--partnership-database-url={ledger_url}",
        env={"SGLEDGER_KAFKA_PARTITIONS": str(kafka_settings.partitions)},
    )
    projector = Projector(Applier(ledger, keystore.root_info().root_key()), kafka_settings, group_id=None)
    try:
        token = new_token(data_dir, "node-records-system")
        published = subprocess.run(
            ["node", "publish.mjs", str(VECTORS), gateway.url],
            cwd=node_project, capture_output=True, text=True, timeout=60,
            env={**os.environ, "SGLEDGER_GATEWAY_TOKEN": token},
        )  # fmt: skip
        assert published.returncode == 0, published.stdout + published.stderr
        ids = [e["id"] for e in json.loads(published.stdout)["body"]["events"]]
        assert ids == [step["draft"]["id"] for step in testvectors.vectors()["chain"]]
        deadline = time.monotonic() + 60
        while ledger.count() < 4:  # the registration and the three events
            assert time.monotonic() < deadline, "events not accepted: " + gateway.log.read_text()[-2000:]
            projector.poll_once(timeout_ms=200)
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
            statuses = [http.get(f"/v1/events/{i}").json()["status"] for i in ids]
        assert statuses == ["accepted"] * 3
    finally:
        projector.close()
        gateway.stop()
        ledger.engine.dispose()
