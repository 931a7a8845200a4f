"""An operator's view of a running projector: /healthz, /readyz, Prometheus /metrics and JSON
log lines, scraped from the real `sgledger project` process over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.keystore import Keystore
from tests.consumers.kafka_helpers import ProjectorProcess, send_events, send_raw, story, wait_for_count
from transport.broker import free_port
from transport.kafka import KafkaSettings

pytestmark = pytest.mark.kafka


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_running_projector_serves_health_readiness_metrics_and_json_logs(
    kafka_settings: KafkaSettings, keystore: Keystore, tmp_path: Path
) -> None:
    events = story(keystore, children=3, incidents_per_child=2)
    send_events(kafka_settings, events)
    send_raw(kafka_settings, [(kafka_settings.topics.for_type("incident.reported"), b"C-0000", b"{not json")])
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    port = free_port()
    log = tmp_path / "projector.log"
    projector = ProjectorProcess(
        kafka_settings, url, keystore.directory, f"g-{uuid.uuid4().hex[:8]}", log, "--metrics-port", str(port)
    )
    try:
        wait_for_count(url, len(events), 60, projector)
        deadline = time.monotonic() + 30
        while True:  # the counters follow the batch's commit by a moment
            status, body = get(port, "/metrics")
            found = samples(body)
            if found.get(("sgledger_messages_total", (("outcome", "quarantined"), ("reason", "not-json")))):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert status == 200
        assert found[("sgledger_messages_total", (("outcome", "accepted"), ("reason", "")))] == len(events)
        raised = sum(v for (name, labels), v in found.items()
                     if name == "sgledger_flag_changes_total" and ("change", "raised") in labels)  # fmt: skip
        assert raised > 0
        lag = {labels: v for (name, labels), v in found.items() if name == "sgledger_consumer_lag"}
        assert len(lag) >= kafka_settings.partitions and all(v == 0 for v in lag.values())
        assert found[("sgledger_batch_seconds_count", ())] >= 1
        assert get(port, "/healthz") == (200, "ok\n")
        ready_status, ready_body = get(port, "/readyz")
        assert ready_status == 200 and "last batch" in ready_body
        assert get(port, "/nowhere")[0] == 404
    finally:
        projector.stop()
    assert projector.process.returncode == 0  # SIGTERM: the batch finishes, the process exits cleanly
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    batches = [line for line in lines if line.get("message", "").startswith("batch: ")]
    assert sum(b["accepted"] for b in batches) == len(events)
    assert sum(b["refused"].get("quarantined:not-json", 0) for b in batches) == 1
    children = {e["subject"] for e in events if e["subject"].startswith("C-")}
    assert not any(child in json.dumps(batches) for child in children)  # no child ids in logs
