"""STARTTLS and SMTP login against a real aiosmtpd server that requires both.

The relay's certificate is self-signed (standing in for a partnership's private CA), so these tests
show that ``smtp.ca_file`` is what makes it trusted, that it is refused without it, and that a
refused login or certificate leaves mail pending (a configuration fault is fixed, then mail goes)
rather than failed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from consumers.alerter.config import PartnershipConfig
from consumers.alerter.sender import send_due
from consumers.alerter.sink import free_port
from consumers.alerter.store import AlertStore, OutgoingMail, Record
from tests.alerter.helpers import config, encode, flag_change

HOST = "127.0.0.1"  # in the certificate's SubjectAlternativeName (with DNS:localhost)
USER = "sgledger-alerts"
PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "SGLEDGER_TEST_SMTP_PASSWORD"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def self_signed(directory: Path, names: list[x509.GeneralName]) -> TlsFiles:
    """Write a self-signed server certificate for ``names`` (its SubjectAlternativeName) and its
    key: its own CA, as a private CA's relay certificate is to a client that trusts that CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sgledger test relay")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "relay.pem", directory / "relay.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


LOCAL_NAMES: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The relay's certificate: valid for localhost and 127.0.0.1."""
    return self_signed(tmp_path_factory.mktemp("tls"), LOCAL_NAMES)


@dataclass(frozen=True)
class Delivery:
    """One message as the server received it, with what it knew about the session then."""

    recipients: list[str]
    data: bytes
    tls: bool
    authenticated: bool
    login: bytes | None


@dataclass
class AuthRecordingHandler:
    """Keeps each message with its session's TLS and login state, and every login attempt."""

    received: list[Delivery] = field(default_factory=list)
    attempts: list[tuple[bytes, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd ``authenticator``: for the built-in PLAIN and LOGIN mechanisms ``auth_data`` is
        a LoginPassword of bytes. ``handled=False`` on failure lets the server answer 535."""
        assert isinstance(auth_data, LoginPassword)
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        with self._lock:
            self.attempts.append((auth_data.login, ok))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        delivery = Delivery(
            list(envelope.rcpt_tos), bytes(envelope.content or b""), session.ssl is not None,
            bool(session.authenticated), login,
        )  # fmt: skip
        with self._lock:
            self.received.append(delivery)
        return "250 Message accepted"


@dataclass
class TlsAuthServer:
    handler: AuthRecordingHandler
    port: int


@contextmanager
def running_server(files: TlsFiles) -> Iterator[TlsAuthServer]:
    """Refuses everything but EHLO/STARTTLS before TLS, and any mail before a login over TLS."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    handler = AuthRecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname=HOST,
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=handler.authenticate,
    )
    controller.start()
    try:
        yield TlsAuthServer(handler, port)
    finally:
        controller.stop()


@pytest.fixture
def tls_server(tls_files: TlsFiles) -> Iterator[TlsAuthServer]:
    with running_server(tls_files) as server:
        yield server


def tls_config(port: int, ca_file: Path | None) -> PartnershipConfig:
    smtp: dict[str, Any] = {
        "host": HOST, "port": port, "starttls": True, "username": USER, "password_env": PASSWORD_ENV,
        "from": "alerts@partnership.test",
    }  # fmt: skip
    if ca_file is not None:
        smtp["ca_file"] = str(ca_file)
    return config(smtp=smtp)


def env_password(cfg: PartnershipConfig) -> str | None:
    """As the alerter does: the password comes from the variable named by ``password_env``."""
    assert cfg.smtp.password_env is not None
    return os.environ.get(cfg.smtp.password_env)


def one_pending_mail(database_url: str, cfg: PartnershipConfig) -> AlertStore:
    """A store holding exactly one pending mail (a low-severity flag for one agency lead)."""
    store = AlertStore(database_url)
    change = flag_change(rule="other", severity="low", concerns=["la/children"])
    assert store.apply_batch([Record("t", 0, 0, encode(change))], cfg, NOW) == 1
    return store


def only_mail(store: AlertStore) -> OutgoingMail:
    [mail] = store.mail()
    return mail


def test_starttls_login_with_private_ca_sends(
    postgres_db: str, tls_server: TlsAuthServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    cfg = tls_config(tls_server.port, tls_files.cert)
    store = one_pending_mail(postgres_db, cfg)

    report = send_due(store, cfg.smtp, env_password(cfg), NOW)

    assert (report.sent, report.deferred, report.failed) == (1, 0, 0)
    mail = only_mail(store)
    assert mail.status == "sent" and mail.last_error is None
    [delivery] = tls_server.handler.received
    assert delivery.recipients == ["la-lead@la.test"]
    assert delivery.tls and delivery.authenticated and delivery.login == USER.encode()
    assert mail.message_id.encode() in delivery.data
    store.close()


def test_wrong_password_stays_pending_then_sends_once(
    postgres_db: str, tls_server: TlsAuthServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tls_config(tls_server.port, tls_files.cert)
    store = one_pending_mail(postgres_db, cfg)
    monkeypatch.setenv(PASSWORD_ENV, "wrong password")

    report = send_due(store, cfg.smtp, env_password(cfg), NOW)

    assert (report.sent, report.deferred, report.failed) == (0, 1, 0)
    mail = only_mail(store)
    assert mail.status == "pending"
    assert mail.last_error is not None and "535" in mail.last_error
    assert mail.next_attempt_at > NOW  # backoff, not retried in a tight loop
    assert tls_server.handler.attempts and not any(ok for _, ok in tls_server.handler.attempts)
    assert tls_server.handler.received == []

    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    later = NOW + timedelta(hours=2)
    assert send_due(store, cfg.smtp, env_password(cfg), later).sent == 1
    assert send_due(store, cfg.smtp, env_password(cfg), later + timedelta(hours=2)).sent == 0
    mail = only_mail(store)
    assert mail.status == "sent" and mail.last_error is None
    assert len(tls_server.handler.received) == 1
    store.close()


def test_self_signed_certificate_refused_without_ca_file(
    postgres_db: str, tls_server: TlsAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    cfg = tls_config(tls_server.port, None)  # the system CAs: they do not know this certificate
    store = one_pending_mail(postgres_db, cfg)

    report = send_due(store, cfg.smtp, env_password(cfg), NOW)

    assert (report.sent, report.deferred, report.failed) == (0, 1, 0)
    mail = only_mail(store)
    assert mail.status == "pending"
    assert mail.last_error is not None and "certificate verify failed" in mail.last_error
    # refused at the handshake: the password was never sent
    assert tls_server.handler.attempts == [] and tls_server.handler.received == []
    store.close()


def test_certificate_for_another_host_refused_even_with_its_ca_file(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host name checking stays on: trusting the CA does not make its certificate for another
    host good for this one (here the certificate does not name 127.0.0.1)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    files = self_signed(tmp_path / "other", [x509.DNSName("relay.partnership.test")])
    with running_server(files) as server:
        cfg = tls_config(server.port, files.cert)
        store = one_pending_mail(postgres_db, cfg)
        assert send_due(store, cfg.smtp, env_password(cfg), NOW).deferred == 1
        mail = only_mail(store)
        assert mail.status == "pending"
        assert mail.last_error is not None and "mismatch" in mail.last_error
        assert server.handler.attempts == [] and server.handler.received == []
        store.close()
