"""`sgledger gateway`: the agency-side HTTP service, its API tokens and its OpenAPI document."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from sgledger.cli.context import AppContext, UserError, console, listenable, pass_app, print_json

if TYPE_CHECKING:
    from producers.gateway.tokens import TokenStore

# The service's own modules (FastAPI, uvicorn, SQLAlchemy, Kafka) are imported inside the
# commands that need them, so `sgledger --help` does not pay for them.


@click.group()
def gateway() -> None:
    """The agency gateway: agency systems publish over HTTP (docs/gateway.md).

    `gateway run` serves one agency with that agency's key; `gateway token` manages the bearer
    tokens its callers use; `gateway openapi` prints the API description.
    """


@gateway.command("run")
@click.option(
    "--agency", required=True, help="The agency this gateway signs for (its key must be in the key store)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8750, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--partnership-database-url",
    envvar="SGLEDGER_PARTNERSHIP_DATABASE_URL",
    help="The partnership's ledger database (read-only use): GET /v1/events/ID then says accepted, held "
    "or quarantined. Without it, the furthest it can say is sent.",
)
@click.option(
    "--max-batch-events", default=10_000, show_default=True, type=int, help="Events per batch request."
)
@click.option(
    "--max-batch-bytes",
    default=64 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Bytes per batch request.",
)
@click.option(
    "--outbox-busy-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a request waits for the outbox's write lock before answering 503 (retry).",
)
@click.option(
    "--draft-worker/--no-draft-worker",
    default=True,
    show_default=True,
    help="Check batch drafts in a second process while this one signs (about twice the batch rate "
    "on two cores; --no-draft-worker for a single core).",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate."
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Private key of --tls-cert.")
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Require client certificates signed by this CA (mutual TLS, on top of the bearer token).",
)
@pass_app
def run(
    app: AppContext,
    agency: str,
    host: str,
    port: int,
    partnership_database_url: str | None,
    max_batch_events: int,
    max_batch_bytes: int,
    outbox_busy_timeout: float,
    draft_worker: bool,
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
) -> None:
    """Serve the gateway for AGENCY until Ctrl-C or SIGTERM.

    With --bootstrap-servers the relay runs in this process and delivers the outbox to Kafka
    (queued events wait while Kafka is down). Without it events stay queued in the outbox for
    the next command that delivers (the embedded broker lives only as long as one command).
    """
    import ssl

    import uvicorn

    from ledger.keystore import KeystoreError
    from producers.gateway.app import create_app
    from producers.gateway.service import Gateway, GatewayConfig
    from sgledger.cli.publishing import no_key
    from sgledger.observe.asgi import add_health_routes
    from sgledger.observe.metrics import ServiceMetrics
    from transport.kafka import KafkaSettings

    if bool(tls_cert) != bool(tls_key) or (client_ca and not tls_cert):
        raise UserError("--tls-cert and --tls-key go together, and --client-ca needs them")
    listenable(host, port)
    settings = app.settings
    settings.ensure_data_dir()
    config = GatewayConfig(
        agency=agency, keys_dir=settings.keys_dir, outbox_url=settings.outbox_url,
        topic_prefix=settings.topic_prefix, ledger_url=partnership_database_url,
        max_batch_events=max_batch_events, max_batch_bytes=max_batch_bytes,
        busy_timeout_s=outbox_busy_timeout, draft_worker=draft_worker,
    )  # fmt: skip
    try:
        service = Gateway(config)
    except KeystoreError as exc:
        raise no_key(app, agency, exc) from exc  # the gateway signs with the agency's key
    kafka = (
        None
        if settings.embedded
        else KafkaSettings.from_env(
            bootstrap_servers=settings.bootstrap_servers, topic_prefix=settings.topic_prefix
        )
    )
    scheme = "https" if tls_cert else "http"
    where = f"relaying to {kafka.bootstrap_servers}" if kafka else "queueing only (no --bootstrap-servers)"
    console.print(f"gateway for {agency} on {scheme}://{host}:{port}, {where}")
    asgi = create_app(service, kafka)
    add_health_routes(asgi, ServiceMetrics("gateway"), service.ready)
    uvicorn.run(
        asgi, host=host, port=port, log_level="warning",
        ssl_certfile=tls_cert, ssl_keyfile=tls_key, ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
    )  # fmt: skip


@gateway.command("openapi")
def openapi() -> None:
    """Print the gateway's OpenAPI document (committed as docs/openapi.json)."""
    from producers.gateway.app import openapi_document

    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


@gateway.group()
def token() -> None:
    """Bearer tokens, one per calling system; stored hashed in the outbox database."""


def _tokens(app: AppContext) -> TokenStore:
    from producers.gateway.tokens import TokenStore

    app.settings.ensure_data_dir()
    return TokenStore(app.settings.outbox_url)


@token.command("create", short_help="Create a token for SYSTEM; it is printed once.")
@click.argument("system")
@click.option(
    "--days", default=90, show_default=True, type=click.IntRange(min=1), help="Days until it expires."
)
@click.option("--json", "as_json", is_flag=True, help="Print {id, system, token, expires_at}.")
@pass_app
def create(app: AppContext, system: str, days: int, as_json: bool) -> None:
    """Create a token for SYSTEM (e.g. "mosaic-case-management"); printed once, never stored."""
    try:
        secret, row = _tokens(app).create(system, timedelta(days=days))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        print_json(
            {"id": row.id, "system": system, "token": secret, "expires_at": row.expires_at.isoformat()}
        )
        return
    console.print(f"token {row.id} for {system}, expires {row.expires_at:%Y-%m-%d %H:%M} UTC:")
    click.echo(secret)
    console.print("it is shown only now; give it to the system as `Authorization: Bearer <token>`")


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Tokens (never their secrets): id, system, created, expires, revoked."""
    from producers.gateway.tokens import as_utc

    rows = [
        {
            "id": r.id,
            "system": r.system,
            "created_at": as_utc(r.created_at).isoformat(),
            "expires_at": as_utc(r.expires_at).isoformat(),
            "revoked_at": as_utc(r.revoked_at).isoformat() if r.revoked_at else None,
        }
        for r in _tokens(app).list()
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else f"expires {r['expires_at']}"
        console.print(f"{r['id']}  {r['system']}  created {r['created_at']}  {state}")


@token.command("revoke")
@click.argument("token_id")
@pass_app
def revoke(app: AppContext, token_id: str) -> None:
    """Revoke TOKEN_ID at once: its next request is refused (401)."""
    try:
        row = _tokens(app).revoke(token_id)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from exc
    console.print(f"token {row.id} ({row.system}) revoked")
