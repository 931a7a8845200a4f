"""Who may call the gateway: per-system bearer tokens, stored hashed, with an expiry.

Each agency system (the records system, the case management system, a nightly loader) gets its
own token so one can be revoked without stopping the others, and so the idempotency keys of two
systems never collide. Tokens are 256 random bits, so a plain SHA-256 of the token is enough to
store (a slow password hash protects guessable secrets; these are not guessable) and lets every
request be checked with one indexed lookup. The tables live in the outbox database: the
idempotency record must commit in the same transaction as the events it names.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Engine, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ledger.store.private import private_sqlite
from producers.outbox import sqlite_file_settings

TOKEN_PREFIX = "sgw_"


class GatewayBase(DeclarativeBase):
    pass


class TokenRow(GatewayBase):
    __tablename__ = "gateway_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # shown in lists and logs
    system: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the token
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class IdempotencyRow(GatewayBase):
    """``Idempotency-Key`` of one system -> hash of the request it came with -> the events
    that request created (committed with them, so a retry after any failure finds either both
    or neither)."""

    __tablename__ = "gateway_idempotency"

    system: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    event_ids: Mapped[str] = mapped_column(Text)  # JSON array, in request order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Caller:
    """An authenticated system."""

    token_id: str
    system: str


class AuthError(Exception):
    """Why a request is not authenticated (one line, safe to show the caller)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def as_utc(value: datetime) -> datetime:
    """A stored time as UTC: SQLite returns naive datetimes for timezone-aware columns (they
    were stored as UTC), and a naive time written out reads as local time to a client."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class TokenStore:
    """Tokens and idempotency records in the outbox database (``url``).

    Its own engine, with SQLite's ordinary deferred transactions: the outbox's engine begins
    every transaction with the write lock (so two publishers never read the same chain head),
    and checking a token on every request must not queue behind, or fail on, a writer."""

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        # The outbox's file, which this may be first to make (``gateway token create`` before
        # the gateway's first start): private, or the outbox would refuse to open it after.
        private_sqlite(url)
        self.engine: Engine = (
            create_engine(url, connect_args={"timeout": busy_timeout_s})
            if url.startswith("sqlite")
            else create_engine(url, pool_pre_ping=True)
        )
        if url.startswith("sqlite"):  # the file's settings, as the outbox sets them
            event.listen(
                self.engine,
                "connect",
                lambda dbapi_connection, _record: sqlite_file_settings(dbapi_connection),
            )
        GatewayBase.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def create(self, system: str, valid_for: timedelta, now: datetime | None = None) -> tuple[str, TokenRow]:
        """A new token for ``system``: the secret is returned once and never stored."""
        if not system.strip():
            raise ValueError("the system name must not be empty")
        created = now or datetime.now(UTC)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            id="tok-" + secrets.token_hex(4),
            system=system,
            digest=digest(token),
            created_at=created,
            expires_at=created + valid_for,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return token, row

    def list(self) -> list[TokenRow]:
        with self._sessions() as session:
            return list(session.scalars(select(TokenRow).order_by(TokenRow.created_at)))

    def revoke(self, token_id: str) -> TokenRow:
        with self._sessions.begin() as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                raise KeyError(f"no gateway token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return row

    def authenticate(self, authorization: str | None, now: datetime | None = None) -> Caller:
        """The caller named by an ``Authorization: Bearer ...`` header, or AuthError."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                "send `Authorization: Bearer <token>` (create one with `sgledger gateway token create`)"
            )
        token = token.strip()
        wanted = digest(token)
        with self._sessions() as session:
            row = session.scalar(select(TokenRow).where(TokenRow.digest == wanted))
        if row is None or not hmac.compare_digest(row.digest, wanted):
            raise AuthError("the bearer token is not known to this gateway")
        when = now or datetime.now(UTC)
        if row.revoked_at is not None:
            raise AuthError(
                f"token {row.id} ({row.system}) was revoked at {as_utc(row.revoked_at).isoformat()}"
            )
        if as_utc(row.expires_at) <= when:
            raise AuthError(f"token {row.id} ({row.system}) expired at {as_utc(row.expires_at).isoformat()}")
        return Caller(row.id, row.system)

    def remembered(self, system: str, key: str) -> IdempotencyRow | None:
        with self._sessions() as session:
            return session.get(IdempotencyRow, (system, key))

    @staticmethod
    def remember(session: Session, row: IdempotencyRow) -> None:
        """Within the outbox transaction that stores the events the row names."""
        session.add(row)
