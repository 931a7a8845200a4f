"""Short flag ids, like git's abbreviated hashes: what people type, read out and put in links.

A flag id is a 36-character UUID (uuid5 of rule, child and evidence, so a replay gives the same
id). Nobody reads that aloud on a phone call between a police lead and a GP practice. The first
eight hex digits identify a flag among millions with rare collisions; where a prefix is shared,
the caller is told which flags it could mean instead of guessing.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from views.models import FlagRow

SHORT_LENGTH = 8
MIN_PREFIX = 4
_PREFIX = re.compile(r"[0-9a-f-]+")


class FlagIdError(LookupError):
    """No flag, or more than one, answers to the id given; the message says which."""


def short_flag_id(flag_id: str) -> str:
    return flag_id[:SHORT_LENGTH]


def resolve_flag_id(session: Session, given: str) -> str:
    """The full id of the one flag whose id starts with ``given`` (a full id works too)."""
    prefix = given.strip().lower()
    if len(prefix) < MIN_PREFIX or _PREFIX.fullmatch(prefix) is None:
        raise FlagIdError(
            f"{given!r} is not a flag id: give at least {MIN_PREFIX} of its hex digits (e.g. the "
            f"{SHORT_LENGTH} shown by `sgledger flags list`)"
        )
    found = list(session.scalars(select(FlagRow.id).where(FlagRow.id.startswith(prefix)).limit(6)))
    if not found:
        raise FlagIdError(f"no flag {given}")
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:5])
        raise FlagIdError(f"flag id {given} is ambiguous: it could be {shown}; give more digits")
    return found[0]
