"""Mutual TLS: with --client-ca, a caller needs a certificate from that CA as well as a token."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.gateway.conftest import draft, new_token, start_gateway


def issue(
    folder: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``name`` signed by ``ca`` (self-signed CA when None), written as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if ca is not None:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
    cert = builder.sign(ca[1] if ca else key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


def test_a_client_certificate_from_the_agency_ca_is_required(data_dir: Path, tmp_path: Path) -> None:
    ca = issue(tmp_path, "agency-ca", None, server=False)
    issue(tmp_path, "gateway", ca, server=True)
    issue(tmp_path, "records-system", ca, server=False)
    other_ca = issue(tmp_path, "other-ca", None, server=False)
    issue(tmp_path, "intruder", other_ca, server=False)

    def client(cert: str | None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(tmp_path / "agency-ca.pem"))
        if cert:
            context.load_cert_chain(tmp_path / f"{cert}.pem", tmp_path / f"{cert}.key")
        return httpx.Client(verify=context, timeout=10)

    def ready(url: str) -> bool:
        with client("records-system") as http:
            return http.get(f"{url}/openapi.json").status_code == 200

    gateway = start_gateway(
        data_dir,
        f"--tls-cert={tmp_path / 'gateway.pem'}",
        f"--tls-key={tmp_path / 'gateway.key'}",
        f"--client-ca={tmp_path / 'agency-ca.pem'}",
        ready=ready,
    )
    token = {"Authorization": f"Bearer {new_token(data_dir)}"}
    try:
        with client("records-system") as http:
            accepted = http.post(f"{gateway.url}/v1/events", json=draft(), headers=token)
            assert accepted.status_code == 202, accepted.text
            assert http.post(f"{gateway.url}/v1/events", json=draft()).status_code == 401  # still a token
        for cert in (None, "intruder"):
            with (
                client(cert) as http,
                pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
            ):
                http.post(f"{gateway.url}/v1/events", json=draft(), headers=token)
    finally:
        gateway.stop()
    assert gateway.outbox_rows() == 1
