"""Local accounts and sign-in sessions of the web workspace, in the ledger's database.

Local accounts serve the single-machine default, where there is no identity provider: an
operator creates them with `sgledger users add` (the password from stdin, stored as an argon2id
hash). A partnership with an identity provider signs people in with OpenID Connect instead
(``web.oidc``); both end in the same server-side session.

Decisions (the issue leaves them open):
- Sessions are rows here, not signed cookies: the cookie carries only a random token (its SHA-256
  is stored), so signing out, disabling an account or an expiry ends the session on the server
  at once, and nothing about the person travels in the cookie.
- A session ends after ``idle`` without a request or ``absolute`` after sign-in, whichever first.
- After ``LOCK_AFTER`` consecutive failed passwords the account is locked for a minute, doubling
  with each further failure up to an hour (throttling an online guesser to a few tries an hour)
  rather than locked for good, which would let anyone lock a lead out of their flags.
- An unknown email costs the same argon2 verification as a wrong password, so the time of a
  refusal does not tell which addresses have accounts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Integer, String, Text, create_engine, delete, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ledger.store.ledger import normalise_url
from ledger.store.types import UTCTime
from producers.service import Actor
from web.roles import ROLES, WebRole

LOCK_AFTER = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(hours=1)
SEEN_RESOLUTION = timedelta(minutes=1)  # the idle clock restarts at most this often
NAMES_TTL_S = 60.0  # how long a looked-up name is reused (``Accounts.display_name``)
IdleClock = Literal["page", "restart", "leave"]  # what a session lookup does to it (``Accounts.session``)
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that refusal takes as long as a wrong
    password. Made on first use: an argon2 hash costs a noticeable moment, which every `sgledger`
    command would otherwise pay on import."""
    return _hasher.hash(secrets.token_urlsafe(16))


class AccountsBase(DeclarativeBase):
    """Its own metadata: the web tables are created by the web workspace, not by the projector."""


class UserRow(AccountsBase):
    __tablename__ = "web_users"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    agency: Mapped[str | None] = mapped_column(String(200), default=None)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCTime)


class SessionRow(AccountsBase):
    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor_id: Mapped[str] = mapped_column(String(400))
    display: Mapped[str] = mapped_column(String(254))  # what the header shows: an email
    role: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str | None] = mapped_column(String(200), default=None)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCTime)
    seen_at: Mapped[datetime] = mapped_column(UTCTime)
    glass: Mapped[str] = mapped_column(Text, default="[]")  # children opened by breaking the glass


class PersonRow(AccountsBase):
    """Who an actor id is, in words: the name each person last signed in with. The signed events
    name people by actor id (``local:EMAIL``, ``oidc:ISSUER|SUBJECT``: stable, but a lead
    cannot read ``oidc:https://idp.example|8f3c...``), so the pages show this instead
    (``web.pages.person_name``). Kept when their sessions end; changed at their next sign-in."""

    __tablename__ = "web_people"

    actor_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    display: Mapped[str] = mapped_column(String(254))
    seen_at: Mapped[datetime] = mapped_column(UTCTime)


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why, in one line."""


class LoginRefused(Exception):
    """Sign-in refused; the message is safe to show (it never says whether the email exists)."""


@dataclass(frozen=True)
class SignedIn:
    """The person behind a valid session."""

    token: str
    actor: Actor
    display: str
    csrf: str
    glass: frozenset[str]
    expires_at: datetime  # the idle or the absolute limit, whichever comes first

    @property
    def role(self) -> WebRole:
        return cast(WebRole, self.actor.role)

    def seconds_left(self, now: datetime | None = None) -> int:
        """Whole seconds until the session ends if nothing is done (the pages' timeout warning)."""
        return max(0, int((self.expires_at - (now or _now())).total_seconds()))


def _now() -> datetime:
    return datetime.now(UTC)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 254:
        raise AccountError(f"not an email address: {email!r}")
    return email


class Accounts:
    """Users and sessions; one instance per process, thread-safe (a session per call)."""

    def __init__(
        self,
        database_url: str,
        *,
        idle: timedelta = timedelta(minutes=30),
        absolute: timedelta = timedelta(hours=8),
    ) -> None:
        self.engine = create_engine(normalise_url(database_url))
        AccountsBase.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.idle, self.absolute = idle, absolute
        self._names: dict[str, tuple[float, str | None]] = {}  # actor id -> (looked up at, name)

    def close(self) -> None:
        self.engine.dispose()

    # --- users -------------------------------------------------------------------------------

    def add_user(self, email: str, agency: str | None, role: WebRole, password: str) -> UserRow:
        email = normalise_email(email)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if role == "lead" and not agency:
            raise AccountError("a lead needs --agency: the agency whose children they see")
        if len(password) < 12:
            raise AccountError("password too short: use at least 12 characters")
        with self._sessions.begin() as s:
            if s.get(UserRow, email) is not None:
                raise AccountError(f"{email} already has an account")
            row = UserRow(
                email=email,
                agency=agency,
                role=role,
                password_hash=_hasher.hash(password),
                disabled=False,
                failed_logins=0,
                created_at=_now(),
            )
            s.add(row)
        return row

    def users(self) -> list[UserRow]:
        with self._sessions() as s:
            return list(s.scalars(select(UserRow).order_by(UserRow.email)))

    def disable(self, email: str) -> None:
        """Disable the account and end its sessions now."""
        email = normalise_email(email)
        with self._sessions.begin() as s:
            row = s.get(UserRow, email)
            if row is None:
                raise AccountError(f"no account {email}")
            row.disabled = True
            s.execute(delete(SessionRow).where(SessionRow.actor_id == local_actor_id(email)))

    def authenticate(self, email: str, password: str, now: datetime | None = None) -> Actor:
        now = now or _now()
        refused = LoginRefused("Enter a correct email address and password")
        try:
            email = normalise_email(email)
        except AccountError:
            raise refused from None
        with self._sessions.begin() as s:
            row = s.get(UserRow, email)
            if row is None or row.disabled:
                _verify(_dummy_hash(), password)
                raise refused
            if row.locked_until is not None and row.locked_until > now:
                raise LoginRefused(
                    "Too many failed attempts: this account is locked until "
                    f"{row.locked_until:%H:%M} UTC. Try again later or ask your administrator"
                )
            if _verify(row.password_hash, password):
                row.failed_logins, row.locked_until = 0, None
                if _hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = _hasher.hash(password)
                return Actor(local_actor_id(email), cast(WebRole, row.role), row.agency)
            # Counted in this transaction, which must commit: raising inside it would roll back.
            row.failed_logins += 1
            if row.failed_logins >= LOCK_AFTER:
                row.locked_until = now + min(FIRST_LOCK * 2 ** (row.failed_logins - LOCK_AFTER), LONGEST_LOCK)
        raise refused

    # --- sessions ----------------------------------------------------------------------------

    def start_session(self, actor: Actor, display: str) -> SignedIn:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        with self._sessions.begin() as s:
            s.add(
                SessionRow(
                    token_hash=_hash_token(token),
                    actor_id=actor.id,
                    display=display,
                    role=actor.role,
                    agency=actor.agency,
                    csrf=csrf,
                    created_at=now,
                    seen_at=now,
                    glass="[]",
                )
            )
            s.merge(PersonRow(actor_id=actor.id, display=display, seen_at=now))
        self._names.pop(actor.id, None)
        return SignedIn(token, actor, display, csrf, frozenset(), self._expiry(now, now))

    def session(
        self, token: str, now: datetime | None = None, *, idle_clock: IdleClock = "page"
    ) -> SignedIn | None:
        """The live session for ``token`` (its idle clock restarted), or None when there is none
        or it has expired (then it is deleted).

        Asked on every request, so the lookup is one statement outside a transaction (one round
        trip to the database instead of BEGIN, SELECT, COMMIT: under load each costs a few ms);
        the rare write (the idle clock, an expiry) takes a transaction of its own.

        ``idle_clock``: "page" restarts it at most once a ``SEEN_RESOLUTION``; "restart" restarts
        it now, whatever its age (the timeout warning's "Stay signed in", which must give the
        whole idle time back); "leave" does not touch it (the warning asking how long is left:
        that question must not itself keep a forgotten session alive).
        """
        now = now or _now()
        key = _hash_token(token)
        with self._reader.connect() as connection:
            row = connection.execute(select(SessionRow.__table__).where(SessionRow.token_hash == key)).first()
        if row is None:
            return None
        if now - row.seen_at > self.idle or now - row.created_at > self.absolute:
            with self._sessions.begin() as s:
                s.execute(delete(SessionRow).where(SessionRow.token_hash == key))
            return None
        seen = row.seen_at
        if idle_clock == "restart" or (idle_clock == "page" and now - seen > SEEN_RESOLUTION):
            with self._sessions.begin() as s:
                s.execute(update(SessionRow).where(SessionRow.token_hash == key).values(seen_at=now))
            seen = now
        actor = Actor(row.actor_id, cast(WebRole, row.role), row.agency)
        glass = frozenset(json.loads(row.glass))
        return SignedIn(token, actor, row.display, row.csrf, glass, self._expiry(seen, row.created_at))

    def _expiry(self, seen: datetime, created: datetime) -> datetime:
        return min(seen + self.idle, created + self.absolute)

    def display_name(self, actor_id: str) -> str | None:
        """The name ``actor_id`` last signed in with here, if it ever did; looked up at most
        once a ``NAMES_TTL`` per id (a page names a handful of people, every page load)."""
        now = time.monotonic()
        cached = self._names.get(actor_id)
        if cached is not None and now - cached[0] < NAMES_TTL_S:
            return cached[1]
        with self._reader.connect() as connection:
            name = connection.execute(
                select(PersonRow.display).where(PersonRow.actor_id == actor_id)
            ).scalar_one_or_none()
        self._names[actor_id] = (now, name)
        return name

    def end_session(self, token: str) -> None:
        with self._sessions.begin() as s:
            s.execute(delete(SessionRow).where(SessionRow.token_hash == _hash_token(token)))

    def grant_glass(self, token: str, child: str) -> None:
        """Remember, for this session only, that its holder broke the glass for ``child``."""
        with self._sessions.begin() as s:
            row = s.get(SessionRow, _hash_token(token))
            if row is not None:
                row.glass = json.dumps(sorted({*json.loads(row.glass), child}))


def local_actor_id(email: str) -> str:
    return f"local:{email}"


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
