"""Access auditing: every look at a child's record becomes a signed ``access.recorded`` event.

Safeguarding records are sensitive; a partnership must be able to say who looked at a child's
record, when and why. Writing the access into the ledger (rather than a log file) gives it the
same guarantees as everything else: signed (by the partnership's service key), append-only,
verified by `audit verify`, and listed with `audit access CHILD`. On the command line "who" is
the operating-system account the command runs as (``os:<account>``), never a setting.
"""

from __future__ import annotations

from producers.service import Actor
from sgledger.cli.context import AppContext
from sgledger.cli.publishing import deliver_stored, service_producer


def record_access(app: AppContext, action: str, target: str, reason: str | None) -> None:
    """Publish that the command-line user did ``action`` on ``target`` and why."""
    event = service_producer(app).record_access(Actor.operating_system_user(), action, target, reason)
    deliver_stored(app, event)
