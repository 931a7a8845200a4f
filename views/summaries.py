"""One plain-language sentence per event: what a review author writes in a chronology.

Reviews are read by people, not parsers: "Police recorded a domestic-abuse incident INC-2: children
present, DASH medium, reported by a neighbour" instead of ``children_present: True; parties:
[{'person': ...}]``, and "Police told Health visiting", not "told phn/somerset": every agency an
event names is named as :func:`agency_name` names it. The chronology export and the web
workspace's child timeline both use :func:`summarise`, so a lead and a review author read the
same words for the same event.

Pure: a function of the event's type, source, subject and data (and, optionally, readable names
for event ids that other events refer to). An event type this module does not know (a newer
vocabulary) still gets a sentence built from its fields, never a Python repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from policies.calendar import LONDON

# The agency kinds of the vocabulary (the part of an agency id before the slash).
AGENCY_KINDS = {
    "police": "Police",
    "csc": "Children's social care",
    "phn": "Health visiting",
    "gp": "GP practice",
    "school": "School",
    "midwifery": "Midwifery",
    "amhs": "Adult mental health",
    "idva": "IDVA service",
    "housing": "Housing",
    "marac": "MARAC",
    "leaving-care": "Leaving care",
    "probation": "Probation",
    "partnership": "The partnership",
}
# A practice or a school is one place, named by its code; the others are services of an area.
_NAMED_BY_CODE = ("gp", "school")

# event id -> readable name, e.g. "incident INC-CH-2"; and a person's actor id -> their name
# (``local:EMAIL``, ``oidc:ISSUER|SUBJECT``: the web workspace knows who signed in as whom)
Names = Mapping[str, str]


def agency_name(agency: str) -> str:
    """ "Police", "GP practice L85001": how a review names an agency (its id stays in its column)."""
    kind, _, local = agency.partition("/")
    label = AGENCY_KINDS.get(kind)
    if label is None:
        return agency
    return f"{label} {local}" if kind in _NAMED_BY_CODE and local else label


def event_refs(data: Mapping[str, Any]) -> list[str]:
    """The agency references an event names itself by (incident_ref, referral_ref, plan_ref)."""
    return sorted({str(v) for k, v in data.items() if k.endswith("_ref") and isinstance(v, str) and v})


# Events that act on an earlier one are named by the act: "triage of incident INC-CH-2".
_ACTS = {"triaged": "triage", "closed": "closure", "shared": "sharing", "acknowledged": "acknowledgement"}


def event_name(event_type: str, data: Mapping[str, Any]) -> str:
    """How other sentences refer to this event: "incident INC-CH-2", "closure of referral REF-1"."""
    family, _, action = event_type.partition(".")
    refs = event_refs(data)
    if not refs:
        return f"the {event_type} event"
    noun = "plan" if family in ("marac", "safety-plan") else family.replace("-", " ")
    act = _ACTS.get(action.rpartition(".")[2])
    return f"{act} of {noun} {refs[0]}" if act else f"{noun} {refs[0]}"


def _words(value: str) -> str:
    return value.replace("-", " ")


def _list(items: Iterable[str]) -> str:
    return ", ".join(items)


def _person(person: str, subject: str | None) -> str:
    return "the child" if subject is not None and person == subject else str(person)


def _ref(value: Any, names: Names) -> str:
    text = str(value)
    return names.get(text, text)


def _incident_reported(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    kind = "a domestic-abuse incident" if d.get("domestic_abuse") else "an incident"
    facts = ["children present" if d.get("children_present") else "no children present"]
    if d.get("dash_risk"):
        facts.append("DASH not completed" if d["dash_risk"] == "not-completed" else f"DASH {d['dash_risk']}")
    if d.get("brag") and d["brag"] != "none":
        facts.append(f"BRAG {d['brag']}")
    if d.get("substances"):
        facts.append("substances involved" if d["substances"] is True else f"substances: {d['substances']}")
    if d.get("location"):
        facts.append(f"at {d['location']}")
    if d.get("reported_by"):
        facts.append(f"reported by {d['reported_by']}")
    text = f"{a} recorded {kind} {d.get('incident_ref', '')}".rstrip() + ": " + _list(facts)
    parties = [
        f"{_person(str(p.get('person')), s)} ({_words(str(p.get('role', 'party')))})"
        for p in d.get("parties") or []
        if isinstance(p, Mapping)
    ]
    return text + (f"; parties {_list(parties)}" if parties else "")


def _incident_triaged(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    """The outcome is the forum's own words and often names the referral already ("Referred to
    health"): the referral is added only when they do not say it, or a timeline read "Referred
    to health; referred to health"."""
    outcome = str(d.get("outcome"))
    text = f"{a} triaged incident {d.get('incident_ref')} at {d.get('forum')}: {outcome}"
    referred = d.get("referred_to") or []
    referral = f"referred to {_list(agency_name(str(r)) for r in referred)}" if referred else ""
    return text + (f"; {referral}" if referral and referral.lower() not in outcome.lower() else "")


def _referral_made(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    to = agency_name(str(d.get("to")))
    text = f"{a} referred the child to {to} (referral {d.get('referral_ref')}): {d.get('reason')}"
    incidents = d.get("incident_refs") or []
    return text + (f"; about incidents {_list(str(i) for i in incidents)}" if incidents else "")


_OUTCOMES = {"nfa": "no further action", "step-down": "stepped down", "escalated": "escalated",
             "transferred": "transferred"}  # fmt: skip


def _referral_closed(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    outcome = _OUTCOMES.get(str(d.get("outcome")), str(d.get("outcome")))
    parts = [f"{a} closed referral {d.get('referral_ref')} ({outcome}): {d.get('reason')}"]
    contacted = [_person(str(p), s) for p in d.get("persons_contacted") or []]
    parts.append(f"contacted {_list(contacted)}" if contacted else "nobody contacted")
    not_contacted = d.get("not_contacted_reasons") or {}
    if isinstance(not_contacted, Mapping) and not_contacted:
        parts.append(
            "not contacted " + _list(f"{_person(str(p), s)} ({r})" for p, r in sorted(not_contacted.items()))
        )
    step = d.get("step_down")
    if isinstance(step, Mapping) and step:
        parts.append(f"stepped down to {step.get('to') or 'no named agency'}")
    worked, authorised = d.get("worked_by"), d.get("authorised_by")
    if worked == authorised:
        parts.append(f"worked and authorised by {worked}")
    else:
        parts.append(f"worked by {worked}, authorised by {authorised}")
    return "; ".join(parts)


def _contact(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    mode = {"in-person": "an in-person", "phone": "a phone", "video": "a video", "text": "a text",
            "letter": "a letter"}.get(str(d.get("mode")), f"a {d.get('mode')}")  # fmt: skip
    text = f"{a} recorded {mode} contact with {_person(str(d.get('person')), s)} by {d.get('practitioner')}"
    return text + (f": {d['purpose']}" if d.get("purpose") else "")


def _assessment(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    kind = {"child-and-family": "a child and family", "FHNA": "a family health needs (FHNA)",
            "DASH": "a DASH risk", "other": "an"}.get(str(d.get("kind")), f"a {d.get('kind')}")  # fmt: skip
    seen = [_person(str(p), s) for p in d.get("persons_seen") or []]
    parts = [f"{a} completed {kind} assessment", f"seen {_list(seen)}" if seen else "nobody seen"]
    not_seen = d.get("not_seen_reasons") or {}
    if isinstance(not_seen, Mapping) and not_seen:
        parts.append("not seen " + _list(f"{_person(str(p), s)} ({r})" for p, r in sorted(not_seen.items())))
    if d.get("outcome"):
        parts.append(f"outcome: {d['outcome']}")
    return parts[0] + ": " + "; ".join(parts[1:])


def _notification_sent(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    about = _list(_ref(x, n) for x in d.get("about") or [])
    text = f"{a} told {agency_name(str(d.get('to')))} about {about or 'the child'}"
    extra = [f"by {d['channel']}" if d.get("channel") else "", d.get("purpose") or ""]
    extra = [e for e in extra if e]
    return text + (f" ({'; '.join(extra)})" if extra else "")


def _notification_acknowledged(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    return f"{a} acknowledged {_ref(d.get('notification'), n)}"


def _marac_agreed(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    persons = _list(_person(str(p), s) for p in d.get("persons") or [])
    actions = [x for x in d.get("actions") or [] if isinstance(x, Mapping)]
    listed = "; ".join(f"{agency_name(str(x.get('agency')))}: {x.get('action')}" for x in actions)
    return (
        f"{a} agreed plan {d.get('plan_ref')} at the meeting of {d.get('meeting_date')}"
        f" for {persons or 'the family'}: {len(actions)} action(s)" + (f" ({listed})" if listed else "")
    )


def _marac_shared(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    return f"{a} shared plan {d.get('plan_ref')} with {_list(agency_name(str(t)) for t in d.get('to') or [])}"


_CONTACT_TERMS = {
    "none": "no contact",
    "supervised": "supervised contact only",
    "daytime-only": "daytime contact only",
    "overnight-allowed": "overnight stays allowed",
}


def _safety_plan(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    terms = []
    for term in d.get("terms") or []:
        if not isinstance(term, Mapping):
            continue
        what = _CONTACT_TERMS.get(str(term.get("contact")), str(term.get("contact") or "terms"))
        condition = f" ({term['condition']})" if term.get("condition") else ""
        terms.append(f"{_person(str(term.get('person')), s)}: {what}{condition}")
    return f"{a} recorded safety plan {d.get('plan_ref')}" + (f": {'; '.join(terms)}" if terms else "")


def _contact_arrangement(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    facts = ["including overnight stays" if d.get("overnight") else "no overnight stays"]
    if d.get("frequency"):
        facts.append(str(d["frequency"]))
    if d.get("supervised_by"):
        facts.append(f"supervised by {d['supervised_by']}")
    return f"{a} recorded contact arrangements with {_person(str(d.get('person')), s)}: {_list(facts)}"


def _child_registered(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    facts = [f"born {d.get('dob')}"]
    sex = {"F": "female", "M": "male", "X": "sex X", "U": "sex unknown"}.get(str(d.get("sex")))
    if sex:
        facts.append(sex)
    for role in ("mother", "father"):
        if d.get(role):
            facts.append(f"{role} {d[role]}")
    if d.get("address_area"):
        facts.append(f"area {d['address_area']}")
    return f"{a} registered the child: {_list(facts)}"


def _person_linked(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    text = f"{a} linked {d.get('person')} to the child as {_words(str(d.get('role')))}"
    facts = []
    if d.get("lives_with_child") is not None:
        facts.append("living with the child" if d["lives_with_child"] else "not living with the child")
    if d.get("parental_responsibility") is not None:
        facts.append(
            "with parental responsibility" if d["parental_responsibility"] else "no parental responsibility"
        )
    return text + (f" ({_list(facts)})" if facts else "")


def _person_status(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    labels = {"care_leaver": "care leaver", "substance_misuse": "substance misuse",
              "mental_health": "mental health needs"}  # fmt: skip
    facts = [(label if d[key] else f"not {label}") for key, label in labels.items() if d.get(key) is not None]
    if d.get("age") is not None:
        facts.insert(0, f"age {d['age']}")
    return f"{a} recorded about {_person(str(d.get('person')), s)}: {_list(facts) or 'no details'}"


def _gp_registered(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    who = _person(str(d.get("person")), s)
    return f"{a} recorded {who} registered with GP practice {d.get('practice')}"


def _school_enrolled(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    return f"{a} recorded the child enrolled at school {d.get('school')}"


def _access(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    who = str(d.get("who"))
    text = f"{n.get(who, who)} looked at the record ({d.get('action')})"
    return text + (f": {d['reason']}" if d.get("reason") else ", no reason given")


def _flag_decision(verb: str) -> Callable[[str, Mapping[str, Any], str | None, Names], str]:
    def summary(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
        flag, by = str(d.get("flag", "")), str(d.get("by"))
        text = f"{n.get(by, by)} {verb} flag {n.get(flag, flag[:8])}"
        return text + (f": {d['reason']}" if d.get("reason") else "")

    return summary


def _key_registered(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    since = f", valid from {d['valid_from']}" if d.get("valid_from") else ""
    return f"{a} registered signing key {d.get('kid')} of {d.get('agency')}{since}"


def _key_revoked(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    return f"{a} revoked signing key {d.get('kid')} of {d.get('agency')}: {d.get('reason')}"


def _tree_head(a: str, d: Mapping[str, Any], s: str | None, n: Names) -> str:
    return f"{a} published a tree head over the first {d.get('tree_size')} events"


_SUMMARIES: dict[str, Callable[[str, Mapping[str, Any], str | None, Names], str]] = {
    "child.registered": _child_registered,
    "person.linked": _person_linked,
    "person.status": _person_status,
    "gp.registered": _gp_registered,
    "school.enrolled": _school_enrolled,
    "incident.reported": _incident_reported,
    "incident.triaged": _incident_triaged,
    "referral.made": _referral_made,
    "referral.closed": _referral_closed,
    "contact.recorded": _contact,
    "assessment.completed": _assessment,
    "notification.sent": _notification_sent,
    "notification.acknowledged": _notification_acknowledged,
    "marac.plan.agreed": _marac_agreed,
    "marac.plan.shared": _marac_shared,
    "safety-plan.recorded": _safety_plan,
    "contact-arrangement.recorded": _contact_arrangement,
    "access.recorded": _access,
    "flag.acknowledged": _flag_decision("acknowledged"),
    "flag.dismissed": _flag_decision("dismissed"),
    "agency.key.registered": _key_registered,
    "agency.key.revoked": _key_revoked,
    "ledger.tree-head": _tree_head,
}


def _plain(value: Any) -> str:
    """Any JSON value as words: lists joined, objects as "key value" pairs, no brackets or quotes."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return "; ".join(f"{_words(str(k))} {_plain(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _generic(a: str, event_type: str, d: Mapping[str, Any]) -> str:
    given = sorted((k, v) for k, v in d.items() if v not in (None, "", [], {}))
    facts = "; ".join(f"{_words(k)}: {_plain(v)}" for k, v in given)
    return f"{a} recorded {event_type}" + (f": {facts}" if facts else "")


def summarise(
    event_type: str,
    source: str,
    data: Mapping[str, Any],
    *,
    subject: str | None = None,
    names: Names | None = None,
) -> str:
    """The sentence for one event. ``subject``: the child, called "the child" where it appears as
    a person; ``names``: readable names for event ids other events refer to (notifications,
    corrections, acknowledgements), e.g. from :func:`event_name`, and for the people who looked
    or decided (actor ids; without one, the id is shown)."""
    a = agency_name(source)
    n = names or {}
    action = event_type.rpartition(".")[2]
    if action in ("corrected", "withdrawn"):
        original = _ref(data.get("original"), n)
        verb = "corrected" if action == "corrected" else "withdrew"
        return f"{a} {verb} {original}: {data.get('reason')}"
    summary = _SUMMARIES.get(event_type)
    if summary is None:
        return _generic(a, event_type, data)
    return summary(a, data, subject, n)


def readable_time(value: datetime) -> str:
    """ "Tue 10 Dec 2019 21:40", London time: how a review or a lead's page writes a moment."""
    local = value.astimezone(LONDON)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def readable_duration(value: timedelta) -> str:
    """ "3 hours", "12 days": how long a flag stayed open, to the precision a reader needs."""
    hours = int(value.total_seconds() // 3600)
    if hours < 48:
        return "under an hour" if hours < 1 else f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours // 24} days"
