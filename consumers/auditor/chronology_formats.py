"""The chronology as Markdown (for a review's working papers), CSV (one row per event, for a
spreadsheet) and HTML: one self-contained file, inline CSS and no external assets, so it opens
and prints anywhere, including offline on a reviewer's laptop."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from html import escape

from consumers.auditor.chronology import Chronology, Entry
from ledger.timeutil import format_time

FORMATS = ("md", "html", "csv")


def _t(value: datetime | None) -> str:
    return format_time(value) if value else ""


def _duration(value: timedelta) -> str:
    hours = int(value.total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h"


def _known(entry: Entry) -> str:
    return "; ".join(f"{k.agency} ({k.via}, {_t(k.since)})" for k in entry.known_by)


def render(chronology: Chronology, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(chronology)
    if fmt == "html":
        return to_html(chronology)
    if fmt == "csv":
        return to_csv(chronology)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(c: Chronology) -> str:
    lines = [
        f"# Multi-agency chronology: {c.child}",
        "",
        f"As of {_t(c.as_of)}. Times are when things happened; recorded is when the agency recorded them.",
        "",
        "## Events",
        "",
        "| time | recorded | agency | event | details | known by (how, since) | flags open when recorded |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_t(e.time)} | {_t(e.recordedtime)} | {e.agency} | {e.type} | {_cell(e.summary)} | "
        f"{_cell(_known(e))} | {', '.join(e.open_flags) or '-'} |"
        for e in c.entries
    ]
    lines += ["", "## Agencies aware of the child", "", "| agency | since | how |", "|---|---|---|"]
    lines += [f"| {k.agency} | {_t(k.since)} | {k.via} |" for k in c.aware]
    lines += [
        "",
        "## Flags",
        "",
        "| rule | severity | open from | closed | status | open for |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.rule} | {f.severity} | {_t(f.opened)} | {_t(f.closed) or '-'} | {f.status} "
        f"| {_duration(f.open_for)} |"
        for f in c.flags
    ]
    lines += [
        "",
        "## Notifications",
        "",
        "| sent | from | to | about | acknowledged |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_t(n.sent)} | {n.sender} | {n.to} | {', '.join(n.about)} "
        f"| {_t(n.acknowledged) or 'not acknowledged'} |"
        for n in c.notifications
    ]
    return "\n".join(lines) + "\n"


CSV_HEADER = ["time", "recordedtime", "agency", "type", "event_id", "details", "known_by", "open_flags"]


def to_csv(c: Chronology) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for e in c.entries:
        writer.writerow(
            [
                _t(e.time),
                _t(e.recordedtime),
                e.agency,
                e.type,
                e.id,
                e.summary,
                _known(e),
                " ".join(e.open_flags),
            ]
        )
    return out.getvalue()


STYLE = """
body { font: 11pt/1.4 system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; }
th, td { border: 1px solid #999; padding: 3px 5px; vertical-align: top; text-align: left; }
th { background: #eee; } .flag { color: #a00; font-weight: 600; }
tr { page-break-inside: avoid; }
@media print { body { margin: 0; } @page { size: A4 landscape; margin: 12mm; } }
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(c: Chronology) -> str:
    header = [
        "time",
        "recorded",
        "agency",
        "event",
        "details",
        "known by (how, since)",
        "flags open when recorded",
    ]
    events = _table(
        header,
        [
            [
                *(
                    escape(v)
                    for v in (_t(e.time), _t(e.recordedtime), e.agency, e.type, e.summary, _known(e))
                ),
                f'<span class="flag">{escape(", ".join(e.open_flags))}</span>' if e.open_flags else "-",
            ]
            for e in c.entries
        ],
    )
    aware = _table(
        ["agency", "since", "how"], [[escape(k.agency), escape(_t(k.since)), k.via] for k in c.aware]
    )
    flags = _table(
        ["rule", "title", "severity", "open from", "closed", "status", "open for"],
        [
            [
                escape(f.rule),
                escape(f.title),
                escape(f.severity),
                escape(_t(f.opened)),
                escape(_t(f.closed)),
                escape(f.status),
                _duration(f.open_for),
            ]
            for f in c.flags
        ],
    )
    notes = _table(
        ["sent", "from", "to", "about", "acknowledged"],
        [
            [
                escape(_t(n.sent)),
                escape(n.sender),
                escape(n.to),
                escape(", ".join(n.about)),
                escape(_t(n.acknowledged)) or "not acknowledged",
            ]
            for n in c.notifications
        ],
    )
    title = f"Multi-agency chronology: {escape(c.child)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>As of {escape(_t(c.as_of))}. Times are when things happened; recorded is when the agency "
        f"recorded them.</p><h2>Events</h2>{events}<h2>Agencies aware of the child</h2>{aware}"
        f"<h2>Flags</h2>{flags}<h2>Notifications</h2>{notes}</body></html>\n"
    )
