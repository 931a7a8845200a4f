"""What the templates show, shaped from the read-side views (pure: no database, no HTTP).

Times are shown in London time, the way a lead reads them, with the zone the clock showed then
("Tue 10 Dec 2019 21:40 GMT", "Wed 1 Jul 2020 13:00 BST"): a bare "00:00" left a lead to guess
whether a due time was UTC or local. The machine form stays in ``datetime`` attributes of
``<time>`` elements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment

from ledger.timeutil import TimeFormatError, parse_time
from policies.engine import Flag
from views.summaries import agency_name, readable_time, summarise

LONDON = ZoneInfo("Europe/London")
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# GOV.UK tag colours: a low flag was yellow like a medium one, so the colour said less than the word.
SEVERITY_TAG = {"high": "govuk-tag--red", "medium": "govuk-tag--yellow", "low": "govuk-tag--grey"}


def flag_order(flag: Mapping[str, Any]) -> tuple[str, int, str]:
    """Soonest due first, then the most severe."""
    return (flag["due"], SEVERITY_ORDER.get(flag["severity"], 9), flag["rule"])


AS_OF_YEARS = range(1900, 3000)


def parse_as_of(text: str) -> datetime:
    """A date (``2019-12-10``, what an ``<input type=date>`` sends) means the end of that day in
    London: "what did the partnership know on this date". A full RFC 3339 time is taken as is.

    Only years in ``AS_OF_YEARS``: at the ends of ``datetime``'s range (9999-12-31, or year 1
    with an offset) the next day or the move to London or UTC time overflows, which was a 500."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        if "T" not in text:
            raise TimeFormatError(
                f"Enter the date as year-month-day, for example 2019-12-10 (not {text[:40]!r})"
            ) from None
        moment = parse_time(text)
        _check_year(moment.year, text)
        return moment
    _check_year(day.year, text)
    return datetime.combine(day + timedelta(days=1), time(), LONDON) - timedelta(microseconds=1)


def _check_year(year: int, text: str) -> None:
    if year not in AS_OF_YEARS:
        raise TimeFormatError(
            f"Enter a date from {AS_OF_YEARS[0]} to {AS_OF_YEARS[-1]}, for example 2019-12-10 "
            f"(not {text[:40]!r})"
        )


def when(value: datetime | str | None) -> str:
    """``readable_time`` and its zone (GMT or BST) for templates, which also hand it the views'
    RFC 3339 strings."""
    if value is None:
        return ""
    moment = parse_time(value) if isinstance(value, str) else value
    return f"{readable_time(moment)} {moment.astimezone(LONDON):%Z}"


def iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.astimezone(UTC).isoformat()


def age(dob: str | None, on: datetime) -> str:
    """ "1 year 3 months", "7 months", "12 days": how practitioners say a young child's age."""
    if not dob:
        return "not known"
    born = date.fromisoformat(dob)
    today = on.astimezone(LONDON).date()
    if today < born:
        return "not yet born"
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    if months == 0:
        days = (today - born).days
        return f"{days} day{'s' * (days != 1)}"
    years, months = divmod(months, 12)
    parts = ([f"{years} year{'s' * (years != 1)}"] if years else []) + (
        [f"{months} month{'s' * (months != 1)}"] if months else []
    )
    return " ".join(parts)


def view_as_of(view: dict[str, Any], flags: Sequence[Flag], as_of: datetime) -> dict[str, Any]:
    """The child view cut at ``as_of``: the chronology and agencies as recorded by then and the
    flags open then (recomputed from the ledger). People, GP and school stay as known now."""
    return {
        **view,
        "chronology": [e for e in view["chronology"] if parse_time(e["recordedtime"]) <= as_of],
        "agencies": [a for a in view["agencies"] if parse_time(a["aware_since"]) <= as_of],
        "open_flags": sorted((f.to_json() for f in flags if f.is_open), key=flag_order),
    }


def roles_text(roles: Sequence[str]) -> str:
    """ "father; in incidents: perpetrator, victim": the view keeps a person's roles in incidents
    as ``party:<role>`` beside their linked roles; the prefix is the view's, not a lead's word."""
    linked = [r.replace("-", " ") for r in roles if not r.startswith("party:")]
    parties = [r.removeprefix("party:").replace("-", " ") for r in roles if r.startswith("party:")]
    return "; ".join(
        part for part in (", ".join(linked), "in incidents: " + ", ".join(parties) if parties else "") if part
    )


def child_page(
    view: Mapping[str, Any], as_of: datetime | None, person: Callable[[str], str]
) -> dict[str, Any]:
    """The child page's content; ``person`` names the people the timeline's events name."""
    on = as_of or datetime.now(UTC)
    people = people_in((e["data"] for e in view["chronology"]), person)
    timeline = [
        {
            **e,
            "summary": summarise(e["type"], e["source"], e["data"], subject=view["child"], names=people),
            "late": parse_time(e["recordedtime"]) - parse_time(e["time"]) > timedelta(hours=24),
        }
        for e in view["chronology"]
    ]
    return {
        **view,
        "age": age(view["dob"], on),
        "people": [{**p, "roles_text": roles_text(p["roles"])} for p in view["people"]],
        "timeline": timeline,
        # Evidence links name the event as the timeline does: who recorded it and when.
        "events": {e["id"]: f"{agency_name(e['source'])}, {when(e['time'])}" for e in view["chronology"]},
    }


# What the workspace writes as an access event's action (web.app), as the audit pages say it.
_ACTIONS = {
    "web child": "Opened the record",
    "web flag": "Opened flag",
    "web chronology": "Downloaded the chronology as",
    "break glass": "Opened the record outside their agency's relationship (break glass)",
    "web audit child": "Looked at who has looked at the record",
}
_AS_OF = "web child as of "


def action_text(action: str) -> str:
    """ "Opened the record as it stood on 10 Dec 2019", not "web child as of 2019-12-10T23:59:
    59.999999+00:00". An action the command line wrote ("child show") keeps its own words."""
    if action.startswith(_AS_OF):
        try:
            day = parse_time(action.removeprefix(_AS_OF)).astimezone(LONDON)
        except (TimeFormatError, OverflowError):  # recorded before parse_as_of bounded the year
            return action
        return f"Opened the record as it stood on {day.day} {day:%b %Y}"
    for prefix, label in _ACTIONS.items():
        if action == prefix:
            return label
        if action.startswith(prefix + " "):
            rest = action.removeprefix(prefix + " ")
            return f"{label} {rest.upper() if prefix == 'web chronology' else rest}"
    return action


def person_name(actor_id: str, known: str | None) -> str:
    """A person named in a signed event, in words: the name they last signed in with here
    (``known``), else what the id itself says: a local account's email, a command-line user's
    login; an id from nowhere else is shown as it is (an auditor can still trace it)."""
    if known:
        return known
    if actor_id.startswith("local:"):
        return actor_id.removeprefix("local:")
    if actor_id.startswith("os:"):
        return f"{actor_id.removeprefix('os:')} (command line)"
    return actor_id


def person_namer(display_name: Callable[[str], str | None]) -> Callable[[str], str]:
    """``person_name`` with the accounts' names (``Accounts.display_name``): the pages' one way
    to name a person, as a filter (``| person``) and in the timeline's sentences."""
    return lambda actor_id: person_name(actor_id, display_name(actor_id))


def people_in(datas: Iterable[Mapping[str, Any]], person: Callable[[str], str]) -> dict[str, str]:
    """The names of the people events' data name (who looked, who decided), for ``summarise``."""
    ids = {str(d[k]) for d in datas for k in ("who", "by") if isinstance(d.get(k), str)}
    return {actor_id: person(actor_id) for actor_id in ids}


def install_filters(env: Environment, person: Callable[[str], str]) -> None:
    env.filters.update(
        when=when, iso=iso, agency=agency_name, action=action_text, person=lambda a: person(str(a))
    )
    env.globals.update(severity_tag=SEVERITY_TAG)
