"""One line for an operator about a failure, most often the database's: the server's or driver's
own first line (a wrong password, a missing database, a refused connection each need a different
fix), without SQLAlchemy's wrapping, statement, parameters (which may carry a child's id) and link."""

from __future__ import annotations


def error_line(error: BaseException) -> str:
    """``OperationalError: connection failed: ... password authentication failed for user "x"``."""
    reason = getattr(error, "orig", None) or error
    lines = str(reason).strip().splitlines()
    return f"{type(error).__name__}: {lines[0].replace('  ', ' ')}" if lines else type(error).__name__
