"""Partnership routing file (TOML): SMTP server, agency leads, partnership leads, quiet rules.

Validated on load; every error names the file and the key. The SMTP password is never in the file:
``password_env`` names the environment variable that holds it.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("low", "medium", "high")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")  # fullmatch: "$" would allow a final newline
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")  # fullmatch


class ConfigError(ValueError):
    """The routing file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    sender: str = "sgledger@localhost"
    # PEM bundle of the CA(s) that signed the relay's certificate; when set it is the ONLY trust
    # anchor (the system store is not consulted). None: the system's default CAs.
    ca_file: str | None = None


def is_email(address: str) -> bool:
    """The same check the routing file's addresses get (one @, no spaces), for command lines."""
    return _EMAIL.fullmatch(address) is not None


def is_loopback(host: str) -> bool:
    """True for a host name or address that never leaves this machine.

    Used to allow SMTP login without STARTTLS to a local relay (a test server or a local MTA
    that forwards over TLS itself): a password sent over loopback cannot be read on the network.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


LOW_SEVERITY_MODES = ("also-immediate", "digest-only")


@dataclass(frozen=True)
class DigestConfig:
    """One recipient's daily digest of their open flags."""

    time: str  # "HH:MM", London local time
    # "digest-only": their low-severity flags come only in the digest (instead of at once);
    # "also-immediate": mailed at once as well (the default: a digest never delays anything)
    low_severity: str = "also-immediate"


@dataclass(frozen=True)
class PartnershipConfig:
    smtp: SmtpConfig
    # Where the partnership's web workspace is (`sgledger serve`): each email links to the flag's
    # page, {web_base_url}/flags/{short id}, where the lead signs in to see the child.
    web_base_url: str
    # Gets every flag change that nobody else would (no lead routed for any agency it concerns,
    # no partnership lead for its severity or rule): a flag is never silently dropped.
    fallback: str
    agency_leads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    leads_by_severity: dict[str, tuple[str, ...]] = field(default_factory=dict)
    leads_by_rule: dict[str, tuple[str, ...]] = field(default_factory=dict)
    quiet_rules: frozenset[str] = frozenset()
    digests: dict[str, DigestConfig] = field(default_factory=dict)  # by recipient address
    escalate_after_working_hours: int = 4


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def table(self, data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        return value

    def string(self, data: dict[str, Any], key: str, path: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(path, "must be a non-empty string")
        return value

    def addresses(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, "must be a list of email addresses")
        for address in value:
            if not _EMAIL.fullmatch(address):
                raise self.fail(path, f"{address!r} is not an email address")
        return tuple(value)

    def unknown(self, data: dict[str, Any], allowed: set[str], path: str) -> None:
        extra = sorted(set(data) - allowed)
        if extra:
            where = f"{path}." if path else ""
            expected = ", ".join(sorted(allowed))
            raise self.fail(f"{where}{extra[0]}", f"unknown key (expected one of {expected})")


def parse_config(
    data: dict[str, Any], source: str = "<config>", base_dir: Path | None = None
) -> PartnershipConfig:
    """Validate ``data`` (a parsed routing file). ``base_dir``: the directory a relative
    ``smtp.ca_file`` is taken from (the routing file's own directory, so that the file and its CA
    bundle can be deployed together); None means the current directory."""
    c = _Checker(source)
    c.unknown(
        data,
        {"smtp", "web_base_url", "agencies", "partnership", "quiet_rules", "digests",
         "escalate_after_working_hours", "view_link"},
        "",
    )  # fmt: skip
    if "smtp" not in data:
        raise c.fail("smtp", "missing table")
    smtp_data = c.table(data, "smtp", "smtp")
    c.unknown(smtp_data, {"host", "port", "starttls", "username", "password_env", "from", "ca_file"}, "smtp")
    host = c.string(smtp_data, "host", "smtp.host")
    if host is None:
        raise c.fail("smtp.host", "missing")
    port = smtp_data.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise c.fail("smtp.port", "must be a whole number 1-65535")
    starttls = smtp_data.get("starttls", False)
    if not isinstance(starttls, bool):
        raise c.fail("smtp.starttls", "must be true or false")
    username = c.string(smtp_data, "username", "smtp.username")
    password_env = c.string(smtp_data, "password_env", "smtp.password_env")
    if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        raise c.fail("smtp.password_env", "must be the NAME of an environment variable, not a password")
    if username is not None and password_env is None:
        raise c.fail("smtp.password_env", "required when smtp.username is set")
    if username is not None and not starttls and not is_loopback(host):
        # Without STARTTLS, AUTH sends the password over the network in clear text (base64 is not
        # encryption): anyone on the path could read it and then send mail as the partnership.
        # A loopback relay is exempt, since nothing leaves the machine.
        raise c.fail(
            "smtp.username",
            "login without smtp.starttls = true would send the password in clear text "
            "(only allowed for a loopback host: 127.0.0.1, ::1, localhost)",
        )
    ca_file = _ca_file(c, smtp_data, starttls, base_dir)
    sender = c.string(smtp_data, "from", "smtp.from", "sgledger@localhost") or "sgledger@localhost"
    c.addresses([sender], "smtp.from")

    agencies = c.table(data, "agencies", "agencies")
    agency_leads: dict[str, tuple[str, ...]] = {}
    for agency, body in agencies.items():
        path = f'agencies."{agency}"'
        if not isinstance(body, dict):
            raise c.fail(path, "must be a table")
        c.unknown(body, {"leads"}, path)
        if "leads" not in body:
            raise c.fail(f"{path}.leads", "missing")
        agency_leads[agency] = c.addresses(body["leads"], f"{path}.leads")

    partnership = c.table(data, "partnership", "partnership")
    c.unknown(partnership, {"leads_by_severity", "leads_by_rule", "fallback"}, "partnership")

    by_severity: dict[str, tuple[str, ...]] = {}
    for sev, leads in c.table(partnership, "leads_by_severity", "partnership.leads_by_severity").items():
        if sev not in SEVERITIES:
            known = ", ".join(SEVERITIES)
            raise c.fail(f"partnership.leads_by_severity.{sev}", f"unknown severity (use {known})")
        by_severity[sev] = c.addresses(leads, f"partnership.leads_by_severity.{sev}")
    by_rule = {
        rule: c.addresses(leads, f"partnership.leads_by_rule.{rule}")
        for rule, leads in c.table(partnership, "leads_by_rule", "partnership.leads_by_rule").items()
    }

    quiet = data.get("quiet_rules", [])
    if not isinstance(quiet, list) or not all(isinstance(r, str) for r in quiet):
        raise c.fail("quiet_rules", "must be a list of rule ids")
    digests = {
        recipient: _digest(c, recipient, body)
        for recipient, body in c.table(data, "digests", "digests").items()
    }
    hours = data.get("escalate_after_working_hours", 4)
    if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
        raise c.fail("escalate_after_working_hours", "must be a whole number of hours >= 1")
    if "view_link" in data:
        raise c.fail("view_link", "replaced by web_base_url: emails link to {web_base_url}/flags/{flag id}")
    web_base_url = c.string(data, "web_base_url", "web_base_url")
    if web_base_url is None:
        raise c.fail(
            "web_base_url", 'missing (the web workspace\'s address, e.g. "https://sgledger.example")'
        )
    if _URL.fullmatch(web_base_url) is None:
        raise c.fail("web_base_url", "must be an http:// or https:// address without a query or fragment")
    if "fallback" not in partnership:
        raise c.fail(
            "partnership.fallback",
            "missing: the address that gets flag changes no lead is routed for (never silently dropped)",
        )
    fallback = c.addresses([partnership["fallback"]], "partnership.fallback")[0]

    return PartnershipConfig(
        smtp=SmtpConfig(host, port, starttls, username, password_env, sender, ca_file),
        web_base_url=web_base_url.rstrip("/"),
        fallback=fallback,
        agency_leads=agency_leads,
        leads_by_severity=by_severity,
        leads_by_rule=by_rule,
        quiet_rules=frozenset(quiet),
        digests=digests,
        escalate_after_working_hours=hours,
    )


def _digest(c: _Checker, recipient: str, body: Any) -> DigestConfig:
    path = f'digests."{recipient}"'
    c.addresses([recipient], path)
    if not isinstance(body, dict):
        raise c.fail(path, "must be a table")
    c.unknown(body, {"time", "low_severity"}, path)
    time = body.get("time")
    if not isinstance(time, str) or not _HHMM.fullmatch(time):
        raise c.fail(f"{path}.time", 'must be "HH:MM" (24-hour, London time)')
    mode = body.get("low_severity", "also-immediate")
    if mode not in LOW_SEVERITY_MODES:
        raise c.fail(f"{path}.low_severity", f"must be one of {', '.join(LOW_SEVERITY_MODES)}")
    return DigestConfig(time, mode)


def _ca_file(c: _Checker, smtp_data: dict[str, Any], starttls: bool, base_dir: Path | None) -> str | None:
    """Check ``smtp.ca_file`` now, so that a missing or unreadable bundle is a config error on
    start rather than every mail deferred later with a TLS error. Returns an absolute path."""
    value = c.string(smtp_data, "ca_file", "smtp.ca_file")
    if value is None:
        return None
    if not starttls:
        # the CA bundle is only used to verify the STARTTLS handshake: without it the setting
        # would silently do nothing, and the operator probably meant to turn TLS on
        raise c.fail("smtp.ca_file", "only used with smtp.starttls = true")
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise c.fail("smtp.ca_file", f"{path}: no such file")
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise c.fail("smtp.ca_file", f"{path}: not a readable PEM CA bundle ({exc})") from exc
    return str(path.resolve())


def load_config(path: str | Path) -> PartnershipConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
    return parse_config(data, str(p), base_dir=p.parent)
