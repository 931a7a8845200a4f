"""`sgledger serve`: the safeguarding leads' web workspace (web/), served by uvicorn."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from consumers.alerter.config import ConfigError, load_config
from ledger.keystore import KeystoreError
from producers.service import ServiceKeyMissing
from sgledger.cli.context import AppContext, UserError, listenable, pass_app
from sgledger.settings import Settings, shown


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--base-url",
    help="The address people use, e.g. https://ledger.partnership.example (links in emails, the "
    "OIDC redirect; https makes cookies Secure). Default: the routing file's web_base_url, else "
    "http://HOST:PORT.",
)
@click.option("--demo", is_flag=True, help="Serve the state `sgledger demo` left in DATA_DIR/demo.")
@click.option(
    "--config",
    "routing",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The alerter's routing file: its SMTP server and [partnership] leads receive break-glass emails.",
)
@click.option(
    "--oidc-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="OpenID Connect provider and claim mapping (see web/oidc.py); without it, local accounts only. "
    "The sign-in handshake cookie is signed with a key from SGLEDGER_WEB_SECRET (several machines "
    "share it) or else DATA_DIR/web-secret (made once, 0600), the same in every worker (web/handshake.py).",
)
@click.option(
    "--session-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Idle time that ends a session (sessions also end 8 hours after sign-in).",
)
@click.option("--partnership-name", default="Safeguarding partnership", show_default=True)
@pass_app
def serve(
    app: AppContext,
    host: str,
    port: int,
    base_url: str | None,
    demo: bool,
    routing: Path | None,
    oidc_config: Path | None,
    session_minutes: float,
    partnership_name: str,
) -> None:
    """Serve the web workspace: sign in, My flags, child records, break glass, audit.

    On the embedded default it keeps one embedded broker and projector running for its lifetime,
    delivering the access and decision events its pages sign; with --bootstrap-servers it relays
    them to Kafka (run `sgledger project` beside it). Needs the service key and root.pub.json,
    never root.key. Accounts: `sgledger users add`, or --oidc-config.
    """
    # Imported here, not with the command line: every `sgledger` command would pay for them.
    import uvicorn

    from sgledger.observe.asgi import add_health_routes
    from sgledger.observe.metrics import ServiceMetrics
    from web.app import create_app
    from web.handshake import SecretTooShort
    from web.oidc import OidcConfigError, load_oidc_config
    from web.services import WebConfig, WebServices

    listenable(host, port)
    settings = app.settings
    if demo:
        demo_dir = settings.data_dir / "demo"
        if not (demo_dir / "keys").is_dir():
            raise UserError(f"no demo state in {demo_dir}: run `sgledger demo` first")
        settings = Settings.resolve(
            demo_dir, bootstrap_servers=settings.bootstrap_servers, topic_prefix=settings.topic_prefix
        )
    try:
        routing_config = load_config(routing) if routing else None
        config = WebConfig(
            base_url=base_url or (routing_config.web_base_url if routing_config else f"http://{host}:{port}"),
            session_idle=timedelta(minutes=session_minutes),
            partnership_name=partnership_name,
            oidc=load_oidc_config(oidc_config) if oidc_config else None,
            routing=routing_config,
        )
        services = WebServices.open(settings, config)
    except (ConfigError, OidcConfigError, ServiceKeyMissing, KeystoreError) as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"serving {shown(settings.database_url)} on {config.base_url}", err=True)
    try:
        asgi = create_app(services)
    except SecretTooShort as exc:
        services.close()
        raise UserError(str(exc)) from exc
    add_health_routes(asgi, ServiceMetrics("web"), services.ready)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False)
