"""`sgledger doctor` against a healthy deployment and against each misconfiguration it must name:
a missing topic, a wrong partition count, an old database schema, a missing service key, the
root private key left on the server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka.admin import NewTopic
from sqlalchemy import make_url

from ledger.keystore import Keystore
from ledger.store.ledger import Ledger
from ledger.store.schema import BASELINE, head_revision
from ledger.vocabulary import SERVICE_AGENCY
from sgledger.cli import cli
from transport.kafka import KafkaSettings, admin_client, ensure_topics

OLD_SCHEMA = Path(__file__).parent / "fixtures" / "schema-0.1.0.sqlite.sql"


def doctor(data: Path, kafka: KafkaSettings | None, *extra: str) -> tuple[int, dict[str, dict[str, str]]]:
    broker = []
    if kafka is not None:
        broker = ["--bootstrap-servers", kafka.bootstrap_servers, "--topic-prefix", kafka.topic_prefix]
    result = CliRunner().invoke(cli, ["--data-dir", str(data), *broker, "doctor", "--json", *extra])
    assert result.output.startswith("["), (result.output, result.exception)
    checks = json.loads(result.output)
    return result.exit_code, {c["name"]: c for c in checks}


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """Keys (root public key, service key, no root private key on the server) and a database."""
    store = Keystore(tmp_path / "keys")
    store.init_root("partnership/test")
    store.create_agency_key(SERVICE_AGENCY)
    (tmp_path / "keys" / "root.key").unlink()  # moved offline, as the README asks
    Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    return tmp_path


@pytest.mark.kafka
def test_a_healthy_deployment_passes_every_check(deployment: Path, kafka_settings: KafkaSettings) -> None:
    code, checks = doctor(deployment, kafka_settings)
    assert code == 1 and checks["topics"]["status"] == "fail"  # a new cluster: no topics yet
    ensure_topics(kafka_settings, kafka_settings.topics.all())  # what `sgledger topics ensure` does
    code, checks = doctor(deployment, kafka_settings)
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == {
        "keys": "ok", "service key": "ok", "database schema": "ok", "broker": "ok",
        "partitions": "ok", "replication": "ok",
        "service key registered": "warn",  # nothing projected yet: the registration is still in Kafka
    }  # fmt: skip


@pytest.mark.kafka
def test_family_topics_left_from_the_first_layout_are_a_warning(
    deployment: Path, kafka_settings: KafkaSettings
) -> None:
    """After the upgrade to the intake topic (issue 13) the family topics are still read until
    drained; the operator is told to delete them then, without failing the deployment."""
    ensure_topics(kafka_settings, [*kafka_settings.topics.all(), f"{kafka_settings.topic_prefix}.incident"])
    code, checks = doctor(deployment, kafka_settings)
    assert code == 0, checks
    assert checks["family topics"]["status"] == "warn"
    assert checks["family topics"]["detail"] == f"still present: {kafka_settings.topic_prefix}.incident"


@pytest.mark.kafka
def test_a_missing_topic_and_a_wrong_partition_count_are_named(
    deployment: Path, kafka_settings: KafkaSettings
) -> None:
    topics = kafka_settings.topics.all()
    wrong, absent = topics[0], topics[1]
    with admin_client(kafka_settings) as admin:
        admin.create_topics([NewTopic(wrong, kafka_settings.partitions - 3, 1)])
    ensure_topics(kafka_settings, topics[2:])
    code, checks = doctor(deployment, kafka_settings)
    assert code == 1
    assert checks["topics"]["status"] == "fail" and absent in checks["topics"]["detail"]
    assert checks["partitions"]["status"] == "fail"
    assert f"{wrong} has {kafka_settings.partitions - 3}" in checks["partitions"]["detail"]
    assert "SGLEDGER_KAFKA_PARTITIONS" in checks["partitions"]["fix"]


def test_altered_tables_a_missing_service_key_and_a_root_key_on_the_server(deployment: Path) -> None:
    with sqlite3.connect(deployment / "ledger.sqlite") as db:
        db.execute("DROP TABLE flag_changes")
        db.execute("DROP INDEX ix_view_children_next_due")
        db.execute("ALTER TABLE view_children DROP COLUMN next_due")
    (deployment / "keys" / "agencies" / f"{SERVICE_AGENCY.replace('/', '~')}.key").unlink()
    (deployment / "keys" / "root.key").write_text("stand-in: only its presence is checked")
    code, checks = doctor(deployment, None)
    assert code == 1
    schema = checks["database schema"]
    assert schema["status"] == "fail"
    assert "add_table flag_changes" in schema["detail"] and "view_children next_due" in schema["detail"]
    assert checks["service key"]["status"] == "fail" and "agency add" in checks["service key"]["fix"]
    assert checks["root key offline"]["status"] == "warn"


def test_a_database_from_the_previous_release_is_named_with_the_upgrade_to_run(tmp_path: Path) -> None:
    database = tmp_path / "ledger.sqlite"
    with sqlite3.connect(database) as db:
        db.executescript(OLD_SCHEMA.read_text())
    database.chmod(0o644)  # as a careless backup restore leaves it: others could read it
    _code, checks = doctor(tmp_path, None)
    assert checks["database"]["status"] == "fail"
    assert checks["database"]["fix"].startswith(f"`chmod 600 {database}`")
    database.chmod(0o600)
    _code, checks = doctor(tmp_path, None)
    assert head_revision() != BASELINE  # this release changed the schema (0002: BIGINT sequences)
    assert checks["database schema"]["status"] == "fail"
    wanted = head_revision()
    assert checks["database schema"]["detail"] == f"at revision {BASELINE}; this release needs {wanted}"
    assert "sgledger db upgrade" in checks["database schema"]["fix"]


def test_an_unreachable_broker_fails_with_the_fix(deployment: Path) -> None:
    dead = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix=f"t{uuid.uuid4().hex[:8]}")
    code, checks = doctor(deployment, dead)
    assert code == 1 and checks["broker"]["status"] == "fail"


@pytest.mark.postgres
def test_a_database_it_cannot_open_is_named_with_the_servers_reason(
    deployment: Path, postgres_server: str
) -> None:
    """'cannot read ...: OperationalError' was all an operator got, whether the password was
    wrong, the database missing or the server down: each needs a different fix."""
    server = make_url(postgres_server)
    wrong_password = server.set(username="sgledger_doctor_nobody", password="wrong")
    missing_database = server.set(database=f"sgledger_missing_{uuid.uuid4().hex[:8]}")
    details = {}
    for url in (wrong_password, missing_database):
        url_text = url.render_as_string(hide_password=False)
        args = ["--data-dir", str(deployment), "--database-url", url_text, "doctor", "--json"]
        result = CliRunner().invoke(cli, args)
        checks = {c["name"]: c for c in json.loads(result.output)}
        assert result.exit_code == 1 and checks["database"]["status"] == "fail"
        assert "wrong" not in checks["database"]["detail"]  # the password itself is never shown
        details[url.database] = checks["database"]["detail"]
    assert 'password authentication failed for user "sgledger_doctor_nobody"' in details[server.database]
    assert f'database "{missing_database.database}" does not exist' in details[missing_database.database]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_database_url_without_this_releases_driver_is_a_failed_check_with_the_form_to_use(
    deployment: Path, scheme: str
) -> None:
    """`postgres://` (as many hosting panels print it) stopped doctor itself with "Can't load
    plugin: sqlalchemy.dialects:postgres", and `postgresql://` (SQLAlchemy's default driver,
    psycopg2, not installed) with "No module named 'psycopg2'"; the services said the same."""
    url = f"{scheme}://sgledger:secret@127.0.0.1:5432/sgledger"
    args = ["--data-dir", str(deployment), "--database-url", url]
    result = CliRunner().invoke(cli, [*args, "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert result.exit_code == 1 and checks["database"]["status"] == "fail"
    assert "postgresql+psycopg://" in checks["database"]["fix"]
    assert "secret" not in result.output
    refused = subprocess.run(
        [sys.executable, "-m", "sgledger", *args, "child", "list"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "secret" not in refused.stderr
    assert "postgresql+psycopg://" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_misspelt_kafka_setting_is_named_with_the_one_it_resembles(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SGLEDGER_KAFKA_REPLICATION_FACTR=3 was read by nothing: topics were made with one replica
    and every check passed."""
    monkeypatch.setenv("SGLEDGER_KAFKA_REPLICATION_FACTR", "3")
    dead = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix=f"t{uuid.uuid4().hex[:8]}")
    code, checks = doctor(deployment, dead)
    assert code == 1 and checks["settings"]["status"] == "fail"
    assert (
        "SGLEDGER_KAFKA_REPLICATION_FACTR (did you mean 'SGLEDGER_KAFKA_REPLICATION_FACTOR'?)"
        in (checks["settings"]["detail"])
    )


def test_a_service_key_the_ledger_has_not_registered_fails_with_the_fix(tmp_path: Path) -> None:
    """The key file alone looked fine; a key made here and never registered signs reads and
    flag decisions that the projector quarantines. `keys init` on the embedded default
    registers it (ok); a service key made again afterwards is not the registered one (fail)."""
    from tests.test_cli import sgledger

    sgledger(tmp_path, "keys", "init", "--partnership", "partnership/somerset")
    code, checks = doctor(tmp_path, None)
    assert checks["service key registered"]["status"] == "ok", checks
    key_file = tmp_path / "keys" / "agencies" / f"{SERVICE_AGENCY.replace('/', '~')}.key"
    key_file.unlink()
    Keystore(tmp_path / "keys").create_agency_key(SERVICE_AGENCY)  # another key, never registered
    code, checks = doctor(tmp_path, None)
    assert code == 1
    registered = checks["service key registered"]
    assert registered["status"] == "fail" and "is not in the ledger" in registered["detail"]
    assert registered["fix"].startswith(f"where the root key is: `sgledger agency add {SERVICE_AGENCY}`")
