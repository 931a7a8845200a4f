"""Short flag ids: a unique prefix names one flag; a short, shared or unknown one says why not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ledger.store.ledger import Ledger
from views.flag_ids import FlagIdError, resolve_flag_id, short_flag_id
from views.models import FlagRow

NOW = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
IDS = ("3f2a9c10-0000-5000-8000-000000000001", "3f2a9c11-0000-5000-8000-000000000002",
       "7b00e4aa-0000-5000-8000-000000000003")  # fmt: skip


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with ledger.session() as s:
        for flag_id in IDS:
            s.add(FlagRow(id=flag_id, rule="gp-not-notified", version=1, child="C-1", severity="high",
                          status="open", due=NOW, payload="{}", raised_at=NOW, updated_at=NOW))  # fmt: skip
    with ledger.read() as s:
        yield s


def test_a_unique_prefix_or_the_full_id_names_the_flag(session: Session) -> None:
    assert short_flag_id(IDS[2]) == "7b00e4aa"
    assert resolve_flag_id(session, "7b00e4aa") == IDS[2]
    assert resolve_flag_id(session, " 7B00 ") == IDS[2]
    assert resolve_flag_id(session, IDS[0]) == IDS[0]
    assert resolve_flag_id(session, "3f2a9c10") == IDS[0]


@pytest.mark.parametrize(
    ("given", "message"),
    [("3f2a9c1", "ambiguous: it could be 3f2a9c10-"), ("0000aaaa", "no flag 0000aaaa"),
     ("3f2", "at least 4"), ("3f2a%", "not a flag id"), ("7b00e4aa\n'; DROP", "not a flag id")],
)  # fmt: skip
def test_short_shared_unknown_or_hostile_ids_are_refused_with_the_reason(
    session: Session, given: str, message: str
) -> None:
    with pytest.raises(FlagIdError, match=message.replace("%", "")):
        resolve_flag_id(session, given)
