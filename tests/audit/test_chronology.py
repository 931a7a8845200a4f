"""The multi-agency chronology of the Child Charlie story: who knew of each incident and when,
which flags were open, notifications; rendered as Markdown, one self-contained HTML file, CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from consumers.auditor.chronology import Chronology, build_chronology
from consumers.auditor.chronology_formats import CSV_HEADER, render, to_html
from ledger.timeutil import parse_time
from tests.audit.conftest import Story
from views.queries import flags_as_of

CHILD = "C-CH-1"


@pytest.fixture(scope="module")
def chronology(charlie: Story) -> Chronology:
    return build_chronology(charlie.ledger, charlie.root, CHILD, parse_time("2020-01-10T12:00:00+00:00"))


def test_only_events_recorded_by_the_as_of_time_in_time_order(chronology: Chronology) -> None:
    assert len(chronology.entries) == 20
    assert chronology.entries[0].type == "child.registered"
    assert chronology.entries[-1].type == "notification.sent"
    times = [e.time for e in chronology.entries]
    assert times == sorted(times)


def test_who_knew_of_each_incident_and_when(chronology: Chronology) -> None:
    incidents = [e for e in chronology.entries if e.type == "incident.reported"]
    first, second = incidents[0], incidents[1]
    assert [(k.agency, k.via) for k in first.known_by] == [("police/avon-somerset", "source")]
    assert [(k.agency, k.via) for k in second.known_by] == [
        ("police/avon-somerset", "source"),
        ("phn/somerset", "notified"),
    ]
    assert second.known_by[1].since == parse_time("2019-12-11T10:00:00+00:00")
    assert {k.agency for k in chronology.aware} >= {"police/avon-somerset", "phn/somerset", "gp/L85001"}


def test_flags_open_at_each_point_and_for_how_long(chronology: Chronology) -> None:
    assert not chronology.entries[0].open_flags
    assert any(e.open_flags for e in chronology.entries)
    assert chronology.flags
    for period in chronology.flags:
        end = period.closed or chronology.as_of
        assert period.open_for == max(end - period.opened, timedelta(0))


def test_notifications_and_their_acknowledgement(chronology: Chronology) -> None:
    assert [(n.to, n.about, n.acknowledged) for n in chronology.notifications] == [
        ("phn/somerset", ("INC-CH-2",), None),
        ("phn/somerset", ("INC-CH-3",), None),
        ("phn/somerset", ("INC-CH-4",), None),
    ]


def test_each_entrys_open_flags_are_exactly_what_an_evaluation_at_its_recorded_time_shows(
    charlie: Story, chronology: Chronology
) -> None:
    """The spans from one evaluation give the same answer as evaluating at every recorded time
    (what this module did before: quadratic in the child's history)."""
    for entry in chronology.entries:
        exact = sorted(
            f.rule
            for f in flags_as_of(charlie.ledger, charlie.root, entry.recordedtime, child=CHILD)
            if f.is_open
        )
        assert entry.open_flags == exact, entry.summary


def test_flags_are_spans_resolved_naming_what_resolved_them(chronology: Chronology) -> None:
    resolved = [f for f in chronology.flags if f.status == "resolved"]
    assert resolved
    for flag in resolved:
        assert flag.closed is not None and flag.closed >= flag.opened
        # what resolved it, in words: "resolved: Police triaged incident INC-CH-2 at DAT: ..."
        assert flag.closed_how.startswith("resolved: ")
        assert flag.closed_how.removeprefix("resolved: ") in {e.summary for e in chronology.entries}
    text = render(chronology, "html").decode()
    assert "still open after" in text and "resolved: " in text


def test_governance_events_are_apart_from_practice_events(chronology: Chronology) -> None:
    practice = {e.type for e in chronology.entries}
    governance = {e.type for e in chronology.governance}
    assert not practice & {"agency.key.registered", "access.recorded", "ledger.tree-head"}
    assert "agency.key.registered" in governance
    registered = {e.summary.split(" of ")[-1].split(",")[0] for e in chronology.governance}
    assert {e.agency for e in chronology.entries} <= registered  # every involved agency's key


def test_markdown(chronology: Chronology) -> None:
    text = render(chronology, "md").decode()
    assert text.startswith(f"# Multi-agency chronology: {CHILD}")
    assert (
        "| Mon 9 Dec 2019 18:00 | police/avon-somerset | Police recorded a domestic-abuse incident INC-CH-2"
        in text
    )
    assert "phn/somerset (Wed 11 Dec 2019 10:00)" in text
    assert "not acknowledged" in text
    for section in ("## Events", "## Agencies aware of the child", "## Gap flags", "## Notifications",
                    "## The record itself"):  # fmt: skip
        assert section in text


def test_html_reads_like_a_review_not_like_python(chronology: Chronology) -> None:
    text = render(chronology, "html").decode()
    assert text.startswith("<!DOCTYPE html>")
    assert "<style>" in text and "size: A4" in text
    for external in ("<link", "<script", "src=", "http://", "https://", "@import"):
        assert external not in text
    for python in ("[{", "{'", "': ", "True", "False", "None"):
        assert python not in text, python
    assert "Sat 21 Dec 2019 22:40" in text  # London time, a reader's date
    assert "+00:00" not in text.split("The record itself")[0]
    assert "children present, DASH medium, reported by mother" in text
    # one time column: the recorded time appears only where it differs
    late = [e for e in chronology.entries if e.recordedtime.replace(second=0) != e.time.replace(second=0)]
    assert text.count("class='recorded'") == len(late)


def test_recorded_time_is_shown_only_where_it_differs(chronology: Chronology) -> None:
    entry = chronology.entries[0]
    late = replace(chronology, entries=[replace(entry, recordedtime=entry.time + timedelta(hours=26))])
    text = render(late, "html").decode()
    assert "recorded Sat 9 Nov 2019 16:00" in text


def test_csv_has_one_row_per_event(chronology: Chronology) -> None:
    rows = list(csv.reader(io.StringIO(render(chronology, "csv").decode())))
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + len(chronology.entries) + len(chronology.governance)
    assert {r[0] for r in rows[1:]} == {"practice", "governance"}
    by_id = {row[5]: row for row in rows[1:]}
    second = [e for e in chronology.entries if e.type == "incident.reported"][1]
    assert parse_time(by_id[second.id][1]) == second.time  # machine-readable times
    assert "phn/somerset (notified" in by_id[second.id][7]
    assert by_id[second.id][6].startswith("Police recorded a domestic-abuse incident INC-CH-2")


def test_pdf_is_an_a4_document(chronology: Chronology) -> None:
    pdf = render(chronology, "pdf")
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 10_000
    from weasyprint import HTML

    pages = HTML(string=to_html(chronology)).render().pages
    assert len(pages) > 1
    assert (round(pages[0].width * 25.4 / 96), round(pages[0].height * 25.4 / 96)) == (210, 297)  # A4, mm


def test_flags_are_evaluated_once_however_long_the_history(
    charlie: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linear, not quadratic: one policy evaluation per chronology, not one per event."""
    import views.queries

    calls: list[object] = []
    real = views.queries.evaluate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(views.queries, "evaluate", counting)
    built = build_chronology(charlie.ledger, charlie.root, CHILD, parse_time("2020-03-01T12:00:00+00:00"))
    assert len(built.entries) > 20
    assert len(calls) == 1
