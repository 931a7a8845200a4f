"""policies.household: which children's events a view carries. A superset of the siblings is
harmless; a sibling missing would silence sibling-not-considered, so candidates come from raw
events (a later-withdrawn link still makes a candidate)."""

from __future__ import annotations

from policies.household import households, linked_persons
from tests.policies.helpers import ev, withdraw

CSC = "csc/somerset"


def test_linked_persons_are_parent_figures_named_by_any_event_even_withdrawn() -> None:
    parents = {"dob": "2020-01-01", "mother": "M-1", "father": "F-1"}
    registered = ev("child.registered", parents, "2020-01-02T10:00:00Z", source=CSC)
    partner = ev(
        "person.linked", {"person": "P-1", "role": "parent's-partner"}, "2020-02-01T10:00:00Z", source=CSC
    )
    gran = ev("person.linked", {"person": "G-1", "role": "grandparent"}, "2020-02-01T10:00:00Z", source=CSC)
    assert linked_persons([registered, partner, gran, withdraw(partner, "2020-03-01T10:00:00Z")]) == {
        "M-1", "F-1", "P-1",
    }  # fmt: skip


def test_households_pair_children_through_a_shared_person_only() -> None:
    a = ev(
        "person.linked", {"person": "M-1", "role": "mother"}, "2020-01-02T10:00:00Z", source=CSC, child="C-1"
    )
    b = ev(
        "person.linked", {"person": "M-1", "role": "mother"}, "2020-01-02T10:00:00Z", source=CSC, child="C-2"
    )
    c = ev(
        "person.linked", {"person": "F-9", "role": "father"}, "2020-01-02T10:00:00Z", source=CSC, child="C-3"
    )
    found = households({"C-1": [a], "C-2": [b], "C-3": [c]})
    assert found == {"C-1": {"C-2": (b,)}, "C-2": {"C-1": (a,)}, "C-3": {}}
