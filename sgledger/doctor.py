"""`sgledger doctor`: check a deployment the way an operator would, and say what to fix.

Each check is independent and reports ok, warn or fail with one sentence and, where something is
wrong, the fix. A failing check never stops the others: an operator with a broken broker still
wants to hear that the database is fine. Nothing here writes: the checks only read (topic
descriptions, the database's schema, the key store's files, an SMTP greeting).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from consumers.alerter.config import ConfigError, load_config
from consumers.alerter.sender import open_smtp
from consumers.alerter.store import AlertBase
from ledger.keystore import Keystore
from ledger.private_files import NotPrivate
from ledger.signing import key_id
from ledger.store import schema
from ledger.store.errors import error_line
from ledger.store.ledger import DatabaseUrlError, Ledger
from ledger.store.models import AcceptedEvent
from ledger.vocabulary import SERVICE_AGENCY, did_you_mean
from transport.kafka import BrokerUnavailable, KafkaSettings, admin_client

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def check_keys(keys_dir: Path) -> Iterator[Check]:
    store = Keystore(keys_dir)
    if not (keys_dir / Keystore.ROOT_PUBLIC_FILE).exists():
        yield Check("keys", "fail", f"no root public key in {keys_dir}", "run `sgledger keys init` (once)")
        return
    partnership = store.root_info().partnership
    yield Check("keys", "ok", f"root public key of {partnership}")
    if store.has_agency(SERVICE_AGENCY):
        yield Check("service key", "ok", f"{SERVICE_AGENCY} signs reads, flag decisions and tree heads")
    else:
        yield Check(
            "service key", "fail", f"no {SERVICE_AGENCY} key: reads and flag decisions cannot be recorded",
            f"where the root key is: `sgledger agency add {SERVICE_AGENCY}`, then copy its key here",
        )  # fmt: skip
    if store.has_root():
        yield Check(
            "root key offline", "warn", "the root PRIVATE key is on this machine",
            "move root.key offline: only key registration and revocation need it",
        )  # fmt: skip


def check_service_registration(keys_dir: Path, url: str) -> Iterator[Check]:
    """Is the service key on this machine the one the ledger holds registered and valid now?
    Why: a key made here and never registered (``keys init --no-service-key`` and a copied key
    store, a key made again) signs every read and flag decision the projector then
    quarantines, and the key file alone looked fine. Nothing to say when the key store or the
    database failed its own checks (reported there), or before the ledger holds any event."""
    store = Keystore(keys_dir)
    if not (keys_dir / Keystore.ROOT_PUBLIC_FILE).exists() or not store.has_agency(SERVICE_AGENCY):
        return
    try:
        ledger = Ledger(url)
    except (DatabaseUrlError, NotPrivate, schema.SchemaOutdated, SQLAlchemyError):
        return
    try:
        with ledger.read() as session:
            registry = ledger.key_registry(session, store.root_info().root_key())
            empty = session.scalar(select(AcceptedEvent.position).limit(1)) is None  # not a count
    except SQLAlchemyError:
        return
    finally:
        ledger.engine.dispose()
    kid = key_id(store.agency_private_key(SERVICE_AGENCY).public_key())
    record = registry.get(kid)
    registered = record is not None and record.agency == SERVICE_AGENCY  # not another agency's key
    if registered and record is not None and record.valid_at(datetime.now(UTC)):
        yield Check("service key registered", "ok", f"key {kid} is registered and valid")
    elif empty:
        yield Check("service key registered", "warn", "the ledger holds no event yet",
                    "start the projector: it records the key's registration from Kafka")  # fmt: skip
    else:
        why = "is revoked or not yet valid" if registered else f"is not in the ledger as {SERVICE_AGENCY}'s"
        yield Check(
            "service key registered", "fail", f"key {kid} {why}: the projector quarantines what it signs",
            f"where the root key is: `sgledger agency add {SERVICE_AGENCY}`, then copy its key here",
        )  # fmt: skip


def check_database(url: str) -> Iterator[Check]:
    try:
        ledger = Ledger(url, check_schema=False)
    except DatabaseUrlError as exc:
        yield Check("database", "fail", exc.detail, exc.fix)
        return
    except NotPrivate as exc:
        yield Check("database", "fail", f"{exc.path} is open to other local users (mode {exc.mode:04o})",
                    f"`{exc.fix}`, and check who may have read it")  # fmt: skip
        return
    try:
        with ledger.engine.connect() as connection:
            found, wanted = schema.current_revision(connection), schema.head_revision()
            # The alerter creates its tables when it first runs; before that they are not missing.
            alerter_ran = bool(set(AlertBase.metadata.tables) & set(inspect(connection).get_table_names()))
            shared = [AlertBase.metadata] if alerter_ran else []
            differences = schema.drift(connection, [*ledger.metadata(), *shared]) if found else []
    except SQLAlchemyError as exc:
        yield Check("database", "fail", f"cannot read {ledger.engine.url!r}: {error_line(exc)}",
                    "check --database-url (user, password, database) and that the server runs")  # fmt: skip
        return
    finally:
        ledger.engine.dispose()
    if found is None:
        yield Check("database", "warn", "empty: the first service to start creates the schema")
    elif found != wanted:
        yield Check("database schema", "fail", f"at revision {found}; this release needs {wanted}",
                    "stop the services and run `sgledger db upgrade`")  # fmt: skip
    elif differences:
        yield Check(
            "database schema", "fail", f"differs from revision {found}: {', '.join(differences[:6])}",
            "someone altered the tables by hand: restore them, or rebuild with `sgledger audit replay`",
        )  # fmt: skip
    else:
        yield Check("database schema", "ok", f"revision {found}, as this release needs")


def check_variables(environ: Mapping[str, str]) -> Iterator[Check]:
    """A misspelt ``SGLEDGER_KAFKA_*`` variable is read by nothing: the setting silently keeps
    its default (e.g. topics made with one replica instead of three)."""
    known = {*KafkaSettings.variables().values(), "SGLEDGER_KAFKA_LIBS"}  # LIBS: tests' broker jars
    unknown = sorted(n for n in environ if n.startswith("SGLEDGER_KAFKA_") and n not in known)
    if unknown:
        names = ", ".join(f"{n}{did_you_mean(n, known)}" for n in unknown)
        yield Check("settings", "fail", f"no such setting: {names}",
                    "rename or remove it (settings: transport/kafka.py KafkaSettings)")  # fmt: skip


def check_kafka(settings: KafkaSettings) -> Iterator[Check]:
    try:
        with admin_client(settings) as admin:
            cluster = admin.describe_cluster()
            brokers = len(cluster.get("brokers", []))
            yield Check("broker", "ok", f"{settings.bootstrap_servers}: cluster {cluster['cluster_id']}, "
                        f"{brokers} broker(s)")  # fmt: skip
            wanted = settings.topics.all()
            existing = set(admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                yield Check("topics", "fail", f"missing: {', '.join(missing)}",
                            "run `sgledger topics ensure` (or deploy/topics.sh)")  # fmt: skip
            described = admin.describe_topics([t for t in wanted if t in existing])
            legacy = [t for t in settings.topics.legacy_events() if t in existing]
            if legacy:  # the first layout's, before issue 13: still read, no longer written
                yield Check("family topics", "warn", f"still present: {', '.join(legacy)}",
                            "delete them once the projector has drained them and every relay is "
                            "upgraded (docs/envelope.md, Upgrading from the family topics)")  # fmt: skip
    except BrokerUnavailable as exc:
        yield Check("broker", "fail", str(exc), "start the broker or fix --bootstrap-servers")
        return
    wrong = [f"{t['name']} has {len(t['partitions'])}"
             for t in described if len(t["partitions"]) != settings.partitions]  # fmt: skip
    if wrong:
        yield Check(
            "partitions", "fail", f"every topic needs {settings.partitions} partitions: {', '.join(wrong)}",
            "set SGLEDGER_KAFKA_PARTITIONS to the cluster's count, or recreate the topics",
        )  # fmt: skip
    elif described:
        yield Check("partitions", "ok", f"{len(described)} topics, {settings.partitions} partitions each")
    replicas = {
        t["name"]: min((len(p["replica_nodes"]) for p in t["partitions"]), default=0) for t in described
    }
    thin = [f"{name} ({n})" for name, n in replicas.items() if n < settings.replication_factor]
    lagging = sorted({t["name"] for t in described for p in t["partitions"]
                      if len(p["isr_nodes"]) < len(p["replica_nodes"])})  # fmt: skip
    if thin:
        yield Check(
            "replication", "fail",
            f"fewer replicas than SGLEDGER_KAFKA_REPLICATION_FACTOR={settings.replication_factor}: "
            + ", ".join(thin), "reassign partitions or lower the configured factor",
        )  # fmt: skip
    elif lagging:
        yield Check("replication", "warn", f"under-replicated (out of sync): {', '.join(lagging)}",
                    "check the brokers: one is down or behind")  # fmt: skip
    elif described:
        yield Check("replication", "ok", f"{settings.replication_factor}+ replica(s) per partition, in sync")


def check_smtp(routing_file: Path, password: Callable[[str], str | None]) -> Iterator[Check]:
    try:
        config = load_config(routing_file)
    except ConfigError as exc:
        yield Check("routing", "fail", str(exc), f"fix {routing_file}")
        return
    yield Check("routing", "ok", f"{routing_file}")
    smtp_config = config.smtp
    secret = password(smtp_config.password_env) if smtp_config.password_env else None
    try:
        smtp = open_smtp(smtp_config, secret)
    except (OSError, smtplib.SMTPException) as exc:
        yield Check("smtp", "fail", f"{smtp_config.host}:{smtp_config.port}: {type(exc).__name__}: {exc}",
                    "check the relay, its certificate (ca_file) and the login")  # fmt: skip
        return
    try:
        smtp.noop()
    finally:
        smtp.quit()
    yield Check("smtp", "ok", f"{smtp_config.host}:{smtp_config.port} accepts a session")
