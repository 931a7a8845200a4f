"""One line for an operator about a failure, most often the database's: the server's or driver's
own first line (a wrong password, a missing database, a refused connection each need a different
fix), without SQLAlchemy's wrapping, statement, parameters (which may carry a child's id) and link."""

from __future__ import annotations

from eventsourcing import persistence
from sqlalchemy import exc

# The database unreachable, restarting or refusing sessions, as SQLAlchemy raises it and as the
# eventsourcing recorder re-raises it (its own classes of the same names).
OUTAGES = (exc.OperationalError, exc.InterfaceError, persistence.OperationalError, persistence.InterfaceError)


def error_line(error: BaseException) -> str:
    """``OperationalError: connection failed: ... password authentication failed for user "x"``."""
    reason = getattr(error, "orig", None) or getattr(error.__cause__, "orig", None) or error
    lines = str(reason).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].replace('  ', ' ')}" if lines else type(error).__name__


def database_outage(error: BaseException) -> bool:
    """The database unreachable, restarting or refusing sessions: expected on a bad day and
    retried, so logged as ``error_line`` alone; any other failure is a fault, logged with its
    traceback."""
    return isinstance(error, OUTAGES)
