"""RFC 3339 timestamps: every time in an event carries its offset; naive times are refused."""

from __future__ import annotations

from datetime import UTC, datetime


class TimeFormatError(ValueError):
    """A timestamp that is not RFC 3339 with an explicit offset."""


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; the offset is mandatory because deadlines depend on it."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise TimeFormatError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeFormatError(f"timestamp has no UTC offset: {text!r}")
    return value


def format_time(value: datetime) -> str:
    """Render as RFC 3339; naive datetimes are a programming error, not input."""
    if value.tzinfo is None:
        raise TimeFormatError("refusing to format a naive datetime")
    return value.isoformat()


def utc_text(value: datetime) -> str:
    """The fixed-width UTC text a time is stored as in the service database (the ``UTCTime``
    column type of ``ledger.store.types`` writes exactly this). Here, without SQLAlchemy, so that
    a verification worker can make an event's stored times with its verdict
    (``ledger.stored.stored_times``)."""
    if value.tzinfo is None:
        raise TimeFormatError("naive datetime given to a UTC time column")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_utc_text(text: str) -> datetime:
    """``utc_text``'s inverse: a stored time back as an aware UTC datetime. ``fromisoformat``
    reads the fixed form (its "Z" gives tzinfo=UTC) ~35x faster than ``strptime``, which was a
    tenth of the projector's time loading flag rows; also for reads that take the stored text
    without the column type (``views.queries.child_view``'s one statement)."""
    return datetime.fromisoformat(text)


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
