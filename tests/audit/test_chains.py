"""The audit's chain check: holes, links and equivocation in any arrival order, with memory
that does not grow by an entry per event."""

from __future__ import annotations

from consumers.auditor.chains import ChainChecker


def link(sequence: int, prevhash: str) -> dict[str, object]:
    return {"id": f"e-{sequence}", "source": "police/x", "sequence": sequence, "prevhash": prevhash}


def test_in_order_chain_is_clean_and_keeps_nothing_per_event() -> None:
    checker = ChainChecker()
    for n in range(1, 1001):
        checker.add(link(n, "" if n == 1 else f"d{n - 1}"), n, f"d{n}")
    assert checker.finish() == []
    chain = checker.chains["police/x"]
    assert (chain.contiguous, chain.beyond, len(chain.digests), chain.wanted) == (1000, set(), 1, {})


def test_a_second_event_at_a_place_is_found_before_and_after_the_contiguous_mark() -> None:
    checker = ChainChecker()
    checker.add(link(1, ""), 1, "d1")
    checker.add(link(3, "d2"), 2, "d3")  # beyond the mark: 2 not seen yet
    checker.add(link(3, "d2"), 3, "d3x")
    checker.add(link(2, "d1"), 4, "d2")
    checker.add(link(1, ""), 5, "d1x")  # within the mark
    kinds = [(f.check, f.position) for f in checker.finish()]
    assert kinds == [("equivocation", 3), ("equivocation", 5)]


def test_a_hole_that_stays_open_is_reported() -> None:
    checker = ChainChecker()
    checker.add(link(1, ""), 1, "d1")
    checker.add(link(3, "d2"), 2, "d3")
    findings = checker.finish()
    assert [(f.check, f.position) for f in findings] == [("chain", 2)]
    assert "sequence 2 is missing" in findings[0].detail
