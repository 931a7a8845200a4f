"""Per-child view tables and the flags table (SQLAlchemy 2.0 typed declarative mapping).

They share the ledger's declarative base and database so the projector updates an accepted
event, the child's view and its flags in one transaction. The chronology is not copied: it is the
ledger index (``ledger_accepted``) read by subject.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.models import Base
from ledger.store.types import UTCTime


class ChildRow(Base):
    __tablename__ = "view_children"

    child: Mapped[str] = mapped_column(String(128), primary_key=True)
    dob: Mapped[str | None] = mapped_column(String(10), default=None)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    first_recorded: Mapped[datetime] = mapped_column(UTCTime)
    last_recorded: Mapped[datetime] = mapped_column(UTCTime)
    gp_practices: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, the child's own
    schools: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of URNs
    next_due: Mapped[datetime | None] = mapped_column(UTCTime, default=None, index=True)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCTime, default=None)
    # A random number set anew by every write of the child's view and flag rows
    # (views.projection.ChildRows): a process that remembers what it wrote under this stamp may
    # compare with that memory instead of reading the rows back, and reads them when it differs
    # (another process wrote the child). 0: never written since migration 0009.
    stamp: Mapped[int] = mapped_column(BigInteger, default=0)


class PersonRow(Base):
    """An adult (or sibling) around the child and what the agencies have said about them."""

    __tablename__ = "view_people"
    # "Which children name this person?" (households use person_links since 0007: docs/stages.md).
    __table_args__ = (Index("view_people_person", "person"),)

    child: Mapped[str] = mapped_column(String(128), primary_key=True)
    person: Mapped[str] = mapped_column(String(128), primary_key=True)
    roles: Mapped[str] = mapped_column(Text, default="[]")  # JSON: linked roles, party roles
    lives_with_child: Mapped[bool | None] = mapped_column(default=None)
    parental_responsibility: Mapped[bool | None] = mapped_column(default=None)
    care_leaver: Mapped[bool | None] = mapped_column(default=None)
    substance_misuse: Mapped[bool | None] = mapped_column(default=None)
    mental_health: Mapped[bool | None] = mapped_column(default=None)
    age: Mapped[int | None] = mapped_column(Integer, default=None)
    gp_practices: Mapped[str] = mapped_column(Text, default="[]")


class AgencyRow(Base):
    """Every agency involved with the child and since when it knew (policies' "aware of")."""

    __tablename__ = "view_agencies"

    child: Mapped[str] = mapped_column(String(128), primary_key=True)
    agency: Mapped[str] = mapped_column(String(200), primary_key=True)
    aware_since: Mapped[datetime] = mapped_column(UTCTime)
    via: Mapped[str] = mapped_column(String(16))  # "source" or "notified"


class FlagRow(Base):
    """A gap flag and where it is in its lifecycle (raised, acknowledged, resolved, dismissed)."""

    __tablename__ = "flags"
    __table_args__ = (Index("flags_child_status", "child", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    child: Mapped[str | None] = mapped_column(String(128), default=None)
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    due: Mapped[datetime] = mapped_column(UTCTime)
    payload: Mapped[str] = mapped_column(Text)  # Flag.to_json() as last evaluated
    raised_at: Mapped[datetime] = mapped_column(UTCTime)
    updated_at: Mapped[datetime] = mapped_column(UTCTime)
    changes: Mapped[int] = mapped_column(Integer, default=0)


class FlagChangeRow(Base):
    """Each lifecycle change, kept for history and as the outbox of the gap-flags topic.

    Written in the projector's transaction and published after it commits, so a crash between
    the two re-publishes (the alerter deduplicates on ``change_id``) and never loses a change.
    """

    __tablename__ = "flag_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[str] = mapped_column(String(36), unique=True)
    flag_id: Mapped[str] = mapped_column(String(36), index=True)
    change: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCTime)
    message: Mapped[str] = mapped_column(Text)  # the gap-flags message, JSON
    published: Mapped[bool] = mapped_column(default=False, index=True)


# The partnership's own row in ``flag_concerns``: designated leads answer for every flag. No agency
# id can be "*" (agency ids are ``kind/local-id``).
EVERY_AGENCY = "*"


class FlagConcernRow(Base):
    """Which flags an agency answers for, in the order My flags lists them: one row per (flag,
    agency it concerns), plus one for the partnership's designated leads (``EVERY_AGENCY``).

    Kept by ``views.flags.sync_flags`` in the same transaction as the flag rows. The agency list
    lives in the flag's JSON payload; matching it there (LIKE on every open flag, then a sort of
    all of them by due time) made My flags cost grow with the number of flags. The index answers
    "this agency's flags on this tab, soonest due first" as one ordered range: ``tab`` rather
    than ``status`` because the acknowledged tab is a fact of the payload, not of the status,
    and the resolved tab spans two statuses (an ``IN`` would break the index order).
    """

    __tablename__ = "flag_concerns"
    __table_args__ = (Index("flag_concerns_agency_tab_due", "agency", "tab", "due"),)

    flag_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency: Mapped[str] = mapped_column(String(200), primary_key=True)
    tab: Mapped[str] = mapped_column(String(12))  # views.my_flags.flag_tab: open, acknowledged, resolved
    status: Mapped[str] = mapped_column(String(12))
    due: Mapped[datetime] = mapped_column(UTCTime)
    severity: Mapped[str] = mapped_column(String(8))
    rule: Mapped[str] = mapped_column(String(64))


class PersonLinkRow(Base):
    """The household index: "this event names this person as a parent figure of this child".

    A child's household (``policies.household``) is every other child naming one of its parent
    figures. The index is written by intake in the transaction that accepts the event, so it is
    a function of the ledger alone: a child-projection shard can find the siblings of its
    children without reading the view rows another shard writes (and may not have written yet).
    Raw events, withdrawn ones included, as ``linked_persons`` counts them: a superset of the
    siblings at any as-of time, which the sibling rule narrows from the events themselves.
    """

    __tablename__ = "person_links"
    __table_args__ = (Index("person_links_child", "child"),)

    person: Mapped[str] = mapped_column(String(128), primary_key=True)
    child: Mapped[str] = mapped_column(String(128), primary_key=True)
