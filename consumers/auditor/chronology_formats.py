"""The chronology as a review author would hand it in: HTML for print (one self-contained file,
inline CSS, A4), PDF (that HTML through WeasyPrint), Markdown for working papers, CSV for a
spreadsheet.

Choices, each from how reviews are written and read:
- dates are London time, "Tue 10 Dec 2019 21:40" (reviews speak of local days, not UTC offsets);
  the recorded time is shown only where it differs from when the thing happened, so the usual
  case reads as one time column and a late recording stands out;
- each event is one plain-language sentence (``views.summaries``), not its fields;
- a flag is one span, "raised ... resolved/dismissed ... / still open", in its own section,
  instead of the rule ids of every open flag repeated on every row;
- governance (keys, who looked, flag decisions, the tree head) comes after the practice events;
- CSV keeps machine-readable RFC 3339 times beside the sentence, for sorting and filtering.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from html import escape

from consumers.auditor.chronology import Chronology, Entry, FlagPeriod
from views.summaries import agency_name, readable_duration, readable_time

FORMATS = ("html", "pdf", "csv", "md")
BINARY_FORMATS = ("pdf",)


class PdfUnavailable(RuntimeError):
    """WeasyPrint (or the Pango library it needs) is not installed; the message says how to fix it."""


def _t(value: datetime | None) -> str:
    return readable_time(value) if value else ""


def _when(entry: Entry) -> tuple[str, str]:
    """(happened, recorded-if-different) in readable London time."""
    happened, recorded = _t(entry.time), _t(entry.recordedtime)
    return happened, ("" if recorded == happened else recorded)


def _told(entry: Entry) -> str:
    """Agencies told of this event besides its source, and when."""
    return "; ".join(f"{k.agency} ({_t(k.since)})" for k in entry.known_by if k.via != "source")


def _span(flag: FlagPeriod) -> str:
    if flag.status == "open":
        return f"still open after {readable_duration(flag.open_for)}"
    when = _t(flag.closed)
    return f"{flag.closed_how}, {when} (open {readable_duration(flag.open_for)})"


def render(chronology: Chronology, fmt: str) -> bytes:
    """The chronology in ``fmt`` as bytes (UTF-8 for the text formats)."""
    if fmt == "md":
        return to_markdown(chronology).encode()
    if fmt == "html":
        return to_html(chronology).encode()
    if fmt == "csv":
        return to_csv(chronology).encode()
    if fmt == "pdf":
        return to_pdf(chronology)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


INTRO = (
    "Times are London time. Where an agency recorded an event later than it happened, the time it "
    "was recorded is shown beneath. Each event is summarised from the signed record; event ids "
    "identify it in the ledger (`sgledger audit prove ID`)."
)


def to_markdown(c: Chronology) -> str:
    lines = [f"# Multi-agency chronology: {c.child}", "", f"As of {_t(c.as_of)}. {INTRO}", ""]
    lines += ["## Events", "", "| when | agency | what happened | also told |", "|---|---|---|---|"]
    for e in c.entries:
        happened, recorded = _when(e)
        when = happened + (f" (recorded {recorded})" if recorded else "")
        lines.append(f"| {when} | {e.agency} | {_cell(e.summary)} | {_cell(_told(e)) or '-'} |")
    lines += ["", "## Agencies aware of the child", "", "| agency | since | how |", "|---|---|---|"]
    lines += [f"| {k.agency} | {_t(k.since)} | {k.via} |" for k in c.aware]
    lines += ["", "## Gap flags", "", "| flag | severity | what | raised | then |", "|---|---|---|---|---|"]
    lines += [
        f"| {f.id[:8]} | {f.severity} | {_cell(f.title)}: {_cell(f.detail)} | {_t(f.opened)} | "
        f"{_cell(_span(f))} |"
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
    lines += ["", "## The record itself", "", "| recorded | by | what |", "|---|---|---|"]
    lines += [f"| {_t(g.recordedtime)} | {g.agency} | {_cell(g.summary)} |" for g in c.governance]
    return "\n".join(lines) + "\n"


CSV_HEADER = [
    "section", "time", "recordedtime", "agency", "type", "event_id", "summary", "known_by", "open_flags",
]  # fmt: skip


def to_csv(c: Chronology) -> str:
    """One row per event: practice events, then the record's governance events."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for section, entries in (("practice", c.entries), ("governance", c.governance)):
        for e in entries:
            known = "; ".join(f"{k.agency} ({k.via} {k.since.isoformat()})" for k in e.known_by)
            writer.writerow(
                [section, e.time.isoformat(), e.recordedtime.isoformat(), e.agency, e.type, e.id,
                 e.summary, known, " ".join(e.open_flags)]
            )  # fmt: skip
    return out.getvalue()


STYLE = """
@page { size: A4; margin: 16mm 12mm 16mm 12mm;
  @top-left { content: string(title); font: 8pt system-ui, sans-serif; color: #555; }
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font: 8pt system-ui, sans-serif;
                  color: #555; } }
html { font: 10pt/1.4 "DejaVu Sans", system-ui, sans-serif; color: #0b0c0c; }
body { margin: 0 auto; max-width: 60em; padding: 1.5em; }
h1 { font-size: 1.6em; margin: 0 0 .3em; string-set: title content(); }
h2 { font-size: 1.2em; margin: 1.6em 0 .4em; border-bottom: 2px solid #0b0c0c; padding-bottom: .15em;
     break-after: avoid; }
p.intro { color: #505a5f; margin: 0 0 1em; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; }
thead { display: table-header-group; }
th, td { border-bottom: 1px solid #b1b4b6; padding: 4px 6px; vertical-align: top; text-align: left; }
th { border-bottom: 2px solid #0b0c0c; }
tr { break-inside: avoid; }
td.when { white-space: nowrap; width: 9.5em; }
td.agency { width: 9em; }
.recorded, .id { display: block; color: #505a5f; font-size: .85em; }
.id { font-family: "DejaVu Sans Mono", monospace; }
.sev { display: block; }
.sev-high { color: #d4351c; font-weight: 700; }
.sev-medium { color: #b35c00; font-weight: 700; }
.open { color: #d4351c; font-weight: 700; }
@media print { body { padding: 0; max-width: none; } }
"""


def _table(header: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: str, cls: str = "", raw: bool = False) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{text if raw else escape(text)}</td>"


def _agency_cell(agency: str) -> str:
    return _td(f"{escape(agency_name(agency))}<span class='id'>{escape(agency)}</span>", "agency", raw=True)


def _when_cell(entry: Entry) -> str:
    happened, recorded = _when(entry)
    late = f"<span class='recorded'>recorded {escape(recorded)}</span>" if recorded else ""
    return _td(escape(happened) + late, "when", raw=True)


def to_html(c: Chronology) -> str:
    events = _table(
        ["When", "Agency", "What happened", "Also told"],
        [
            [
                _when_cell(e),
                _agency_cell(e.agency),
                _td(f"{escape(e.summary)}<span class='id'>{escape(e.id)}</span>", raw=True),
                _td(_told(e)),
            ]
            for e in c.entries
        ],
        "No events about this child were recorded by this time.",
    )
    aware = _table(
        ["Agency", "Aware since", "How"],
        [
            [
                _agency_cell(k.agency),
                _td(_t(k.since), "when"),
                _td("recorded an event" if k.via == "source" else "was told"),
            ]
            for k in c.aware
        ],
        "No agency.",
    )
    flags = _table(
        ["Flag", "What", "Raised", "Then"],
        [
            [
                _td(
                    f"{escape(f.id[:8])}<span class='sev sev-{escape(f.severity)}'>"
                    f"{escape(f.severity)}</span>",
                    raw=True,
                ),
                _td(f"<b>{escape(f.title)}</b><br>{escape(f.detail)}", raw=True),
                _td(_t(f.opened), "when"),
                _td(_span(f), "open" if f.status == "open" else ""),
            ]
            for f in c.flags
        ],
        "No gap flag was raised by this time.",
    )
    notes = _table(
        ["Sent", "From", "To", "About", "Acknowledged"],
        [
            [
                _td(_t(n.sent), "when"),
                _agency_cell(n.sender),
                _agency_cell(n.to),
                _td(", ".join(n.about)),
                _td(_t(n.acknowledged) or "not acknowledged", "" if n.acknowledged else "open"),
            ]
            for n in c.notifications
        ],
        "No notification was sent.",
    )
    record = _table(
        ["Recorded", "By", "What"],
        [[_td(_t(g.recordedtime), "when"), _agency_cell(g.agency), _td(g.summary)] for g in c.governance],
        "Nothing recorded about the record itself.",
    )
    title = f"Multi-agency chronology: {escape(c.child)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body><main><h1>{title}</h1>"
        f'<p class="intro">As of {escape(_t(c.as_of))}. {escape(INTRO)}</p>'
        f"<h2>Events</h2>{events}<h2>Gap flags</h2>{flags}<h2>Agencies aware of the child</h2>{aware}"
        f"<h2>Notifications</h2>{notes}<h2>The record itself</h2>{record}</main></body></html>\n"
    )


def to_pdf(c: Chronology) -> bytes:
    """The HTML, laid out on A4 by WeasyPrint (page numbers and the title on every page)."""
    try:
        from weasyprint import HTML  # imported here: it loads Pango, which only PDFs need
    except (ImportError, OSError) as exc:
        raise PdfUnavailable(
            f"PDF needs WeasyPrint and Pango ({exc}): pip install 'safeguarding-ledger[pdf]' and "
            "apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 (or export --format html and print it)"
        ) from exc
    pdf = HTML(string=to_html(c)).write_pdf()
    assert isinstance(pdf, bytes)  # write_pdf returns bytes when given no target
    return pdf
