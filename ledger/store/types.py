"""Column types shared by every table of the service database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ledger.timeutil import from_utc_text, utc_text


class UTCTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as fixed-width UTC ISO text.

    SQLite has no timezone-aware type; fixed-width UTC text sorts chronologically on every
    backend and round-trips exactly, so a replay on SQLite and one on PostgreSQL agree byte for
    byte.
    """

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        return None if value is None else utc_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_utc_text(value)
