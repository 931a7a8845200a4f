"""The multi-agency chronology of the Child Charlie story: who knew of each incident and when,
which flags were open, notifications; rendered as Markdown, one self-contained HTML file, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from consumers.auditor.chronology import Chronology, build_chronology
from consumers.auditor.chronology_formats import CSV_HEADER, render
from ledger.timeutil import parse_time
from tests.audit.conftest import Story

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


def test_markdown(chronology: Chronology) -> None:
    text = render(chronology, "md")
    assert text.startswith(f"# Multi-agency chronology: {CHILD}")
    assert "| police/avon-somerset | incident.reported |" in text
    assert "phn/somerset (notified, 2019-12-11T10:00:00" in text
    assert "not acknowledged" in text
    for section in ("## Events", "## Agencies aware of the child", "## Flags", "## Notifications"):
        assert section in text


def test_html_is_one_self_contained_printable_file(chronology: Chronology) -> None:
    text = render(chronology, "html")
    assert text.startswith("<!DOCTYPE html>")
    assert "<style>" in text and "@media print" in text
    for external in ("<link", "<script", "src=", "http://", "https://", "@import"):
        assert external not in text
    assert "INC-CH-2" in text and "phn/somerset" in text


def test_csv_has_one_row_per_event(chronology: Chronology) -> None:
    rows = list(csv.reader(io.StringIO(render(chronology, "csv"))))
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + len(chronology.entries)
    by_id = {row[4]: row for row in rows[1:]}
    second = [e for e in chronology.entries if e.type == "incident.reported"][1]
    assert "phn/somerset (notified" in by_id[second.id][6]
