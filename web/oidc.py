"""OpenID Connect sign-in (Authlib) for partnerships that have an identity provider.

The provider says who the person is; the partnership's configuration says what that means here:
which claim carries the agency and which the role, and how the provider's role names map onto
``lead``, ``designated-lead`` and ``auditor``. A person whose claims map to no role, or a lead
whose token names no agency, is refused with a page saying which claim was missing, not given
a guessed role. The actor id is ``oidc:<issuer>|<sub>`` (the subject is stable; an email may be
reused), and the email, when the provider gives one, is only what the header shows.

Configuration (``sgledger serve --oidc-config FILE``)::

    issuer = "https://login.partnership.example"   # discovery: ISSUER/.well-known/openid-configuration
    client_id = "sgledger"
    client_secret_env = "SGLEDGER_OIDC_CLIENT_SECRET"   # the secret itself never in the file
    agency_claim = "agency"                          # default "agency"
    role_claim = "role"                              # default "role"
    label = "Sign in with Somerset partnership account"
    [roles]                                          # provider value -> role here
    "safeguarding-lead" = "lead"
    "dsl" = "designated-lead"
    "auditor" = "auditor"
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from producers.service import Actor
from web.roles import ROLES, WebRole

_AGENCY = re.compile(r"[a-z][a-z-]*/[A-Za-z0-9._-]+")


class OidcConfigError(ValueError):
    """The OIDC configuration file is wrong; the message names the key."""


class ClaimsRefused(Exception):
    """The provider's token does not give what this partnership needs; safe to show."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    roles: Mapping[str, WebRole] = field(default_factory=dict)
    agency_claim: str = "agency"
    role_claim: str = "role"
    label: str = "Sign in with your partnership account"
    scope: str = "openid email profile"

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def actor(self, claims: Mapping[str, Any]) -> tuple[Actor, str]:
        """The Actor and display name for a verified ID token's ``claims``."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ClaimsRefused("the identity provider gave no subject ('sub') for you")
        raw_role = claims.get(self.role_claim)
        values = raw_role if isinstance(raw_role, list) else [raw_role]
        mapped = [self.roles[v] for v in values if isinstance(v, str) and v in self.roles]
        if not mapped:
            raise ClaimsRefused(
                f"your account has no role this service knows (claim '{self.role_claim}'); "
                "ask your administrator"
            )
        # Several roles: the widest wins (a designated lead who is also a lead sees every child).
        role: WebRole = "designated-lead" if "designated-lead" in mapped else mapped[0]
        agency = claims.get(self.agency_claim)
        if agency is not None and (not isinstance(agency, str) or not _AGENCY.fullmatch(agency)):
            raise ClaimsRefused(f"claim '{self.agency_claim}' is not an agency id (kind/local-id)")
        if role == "lead" and agency is None:
            raise ClaimsRefused(f"a lead needs an agency: claim '{self.agency_claim}' is missing")
        display = claims.get("email") if isinstance(claims.get("email"), str) else subject
        return Actor(f"oidc:{self.issuer}|{subject}", role, agency), cast(str, display)


def load_oidc_config(path: str | Path) -> OidcConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OidcConfigError(f"{p}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OidcConfigError(f"{p}: not valid TOML ({exc})") from exc
    allowed = {
        "issuer",
        "client_id",
        "client_secret_env",
        "agency_claim",
        "role_claim",
        "label",
        "scope",
        "roles",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise OidcConfigError(f"{p}: unknown key(s) {', '.join(unknown)}")
    for key in ("issuer", "client_id", "client_secret_env"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise OidcConfigError(f"{p}: '{key}' is required (a string)")
    if not data["issuer"].startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise OidcConfigError(f"{p}: 'issuer' must be https (plain http only on loopback)")
    secret = os.environ.get(data["client_secret_env"])
    if not secret:
        raise OidcConfigError(f"{p}: the environment variable {data['client_secret_env']} is not set")
    roles = data.get("roles", {})
    if not isinstance(roles, dict) or not roles:
        raise OidcConfigError(f"{p}: [roles] must map the provider's role values to {', '.join(ROLES)}")
    for value, role in roles.items():
        if role not in ROLES:
            raise OidcConfigError(f"{p}: roles.{value} = {role!r}: must be one of {', '.join(ROLES)}")
    optional = {k: data[k] for k in ("agency_claim", "role_claim", "label", "scope") if k in data}
    return OidcConfig(data["issuer"], data["client_id"], secret, roles=roles, **optional)
