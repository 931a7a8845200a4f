"""One sentence per event, in the words a safeguarding lead or a review author would write.

The chronology a review reads should say "Police recorded a domestic-abuse incident INC-2:
children present, DASH medium, reported by a neighbour", not a row of field names and Python
reprs. This module is pure (an event type, its source and its data in; a sentence out) so the
web workspace's timeline and the chronology export say the same thing in the same words.
Unknown types and fields still produce a sentence (type and source), never an error: the
vocabulary grows, and a page must not break on an event it was not written for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

AGENCY_KINDS: Mapping[str, str] = {
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


def agency_name(agency: str) -> str:
    """``gp/L85001`` -> "GP practice L85001"; ``police/avon-somerset`` -> "Police (avon-somerset)".

    GP practices and schools are known by their code (ODS code, URN), so the code is part of the
    name; other agencies are one per kind in a partnership and read better with the area aside.
    """
    kind, _, local = agency.partition("/")
    name = AGENCY_KINDS.get(kind)
    if name is None:
        return agency
    if not local:
        return name
    if kind in ("gp", "school"):
        return f"{name} {local}"
    return f"{name} ({local})"


def _kind_name(agency: str) -> str:
    return AGENCY_KINDS.get(agency.partition("/")[0], agency)


def _join(values: Sequence[str]) -> str:
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def _yes_no(value: Any, yes: str, no: str | None) -> str | None:
    if value is True:
        return yes
    if value is False:
        return no
    return None


def _details(*parts: str | None) -> str:
    shown = [p for p in parts if p]
    return (": " + ", ".join(shown)) if shown else ""


def _incident(d: Mapping[str, Any]) -> str:
    kind = "a domestic-abuse incident" if d.get("domestic_abuse") else "an incident"
    parties = [
        f"{p.get('person')} ({p.get('role')})" for p in d.get("parties") or [] if isinstance(p, Mapping)
    ]
    dash = d.get("dash_risk")
    return f"recorded {kind} {d.get('incident_ref', '')}".rstrip() + _details(
        _yes_no(d.get("children_present"), "children present", "no children present"),
        f"DASH {dash}" if dash and dash != "not-completed" else ("DASH not completed" if dash else None),
        f"BRAG {d['brag']}" if d.get("brag") and d.get("brag") != "none" else None,
        f"reported by {_article(d['reported_by'])}" if d.get("reported_by") else None,
        f"at {d['location']}" if d.get("location") else None,
        f"parties {_join(parties)}" if parties else None,
    )


def _article(who: str) -> str:
    """ "reported by a neighbour", "by the mother": a bare noun reads as a fragment."""
    if who in ("mother", "father", "victim", "child", "school", "grandmother", "grandfather"):
        return f"the {who}"
    if who[:1].isupper():
        return who
    return f"an {who}" if who[:1] in "aeiou" else f"a {who}"


def _destinations(value: Any) -> str:
    values = value if isinstance(value, list) else [value]
    return _join([agency_name(str(v)) if "/" in str(v) else f'"{v}" (no agency named)' for v in values])


def _triaged(d: Mapping[str, Any]) -> str:
    sent = d.get("referred_to") or []
    return f"triaged incident {d.get('incident_ref')} at {d.get('forum')}" + _details(
        f'outcome "{d.get("outcome")}"' if d.get("outcome") else None,
        f"referred to {_destinations(sent)}" if sent else None,
    )


def _referral(d: Mapping[str, Any]) -> str:
    return f"referred the child ({d.get('referral_ref')}) to {_destinations(d.get('to'))}" + _details(
        f'reason "{d["reason"]}"' if d.get("reason") else None,
        f"about {_join(d['incident_refs'])}" if d.get("incident_refs") else None,
    )


def _closed(d: Mapping[str, Any]) -> str:
    contacted = d.get("persons_contacted") or []
    step = d.get("step_down") if isinstance(d.get("step_down"), Mapping) else None
    return f"closed referral {d.get('referral_ref')} ({d.get('outcome')})" + _details(
        f'reason "{d["reason"]}"' if d.get("reason") else None,
        f"spoke to {_join(contacted)}" if contacted else "spoke to nobody",
        f"stepped down to {agency_name(str(step['to']))}" if step and step.get("to") else None,
        f"worked by {d.get('worked_by')}, authorised by {d.get('authorised_by')}"
        if d.get("worked_by")
        else None,
    )


def _notification(d: Mapping[str, Any]) -> str:
    about = d.get("about") or []
    return (
        f"told {agency_name(str(d.get('to')))}"
        + (f" about {_join(about)}" if about else "")
        + _details(
            f"by {d['channel']}" if d.get("channel") else None,
            f"lawful basis {d['lawful_basis']}" if d.get("lawful_basis") else None,
        )
    )


CONTACT_MODES: Mapping[str, str] = {
    "in-person": "met {person}",
    "phone": "spoke to {person} by phone",
    "video": "spoke to {person} by video call",
    "text": "sent {person} a text message",
    "letter": "wrote to {person}",
}


def _contact(d: Mapping[str, Any]) -> str:
    template = CONTACT_MODES.get(str(d.get("mode")), "had contact ({mode}) with {person}")
    return template.format(person=d.get("person"), mode=d.get("mode")) + _details(
        f"practitioner {d['practitioner']}" if d.get("practitioner") else None,
        f'purpose "{d["purpose"]}"' if d.get("purpose") else None,
    )


def _assessment(d: Mapping[str, Any]) -> str:
    seen = d.get("persons_seen") or []
    return f"completed a {d.get('kind')} assessment" + _details(
        f"saw {_join(seen)}" if seen else "saw nobody",
        f'outcome "{d["outcome"]}"' if d.get("outcome") else None,
    )


def _safety_plan(d: Mapping[str, Any]) -> str:
    terms = [
        f"{t.get('person')}: contact {t.get('contact')}"
        + (f" ({t['condition']})" if t.get("condition") else "")
        for t in d.get("terms") or []
        if isinstance(t, Mapping)
    ]
    return f"recorded safety plan {d.get('plan_ref')}" + _details(*terms)


def _arrangement(d: Mapping[str, Any]) -> str:
    return f"recorded contact arrangements with {d.get('person')}" + _details(
        _yes_no(d.get("overnight"), "overnight stays", "no overnight stays"),
        d.get("frequency"),
        f"supervised by {d['supervised_by']}" if d.get("supervised_by") else None,
    )


def _person_linked(d: Mapping[str, Any]) -> str:
    return f"recorded {d.get('person')} as the child's {d.get('role')}" + _details(
        _yes_no(d.get("lives_with_child"), "lives with the child", "does not live with the child"),
        _yes_no(d.get("parental_responsibility"), "has parental responsibility", None),
    )


def _person_status(d: Mapping[str, Any]) -> str:
    return f"recorded about {d.get('person')}" + _details(
        _yes_no(d.get("care_leaver"), "a care leaver", "not a care leaver"),
        _yes_no(d.get("substance_misuse"), "substance misuse", None),
        _yes_no(d.get("mental_health"), "mental health needs", None),
        f"aged {d['age']}" if d.get("age") is not None else None,
    )


def _marac_agreed(d: Mapping[str, Any]) -> str:
    actions = [
        f"{agency_name(str(a.get('agency')))} to {a.get('action')}"
        for a in d.get("actions") or []
        if isinstance(a, Mapping)
    ]
    return f"agreed MARAC plan {d.get('plan_ref')} on {d.get('meeting_date')}" + _details(*actions)


SUMMARIES: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "child.registered": lambda d: (
        "registered the child"
        + _details(
            f"born {d['dob']}" if d.get("dob") else None,
            f"mother {d['mother']}" if d.get("mother") else None,
            f"father {d['father']}" if d.get("father") else None,
        )
    ),
    "person.linked": _person_linked,
    "person.status": _person_status,
    "gp.registered": lambda d: (
        f"recorded {d.get('person')} as registered with GP practice {d.get('practice')}"
    ),
    "school.enrolled": lambda d: f"recorded the child as enrolled at school {d.get('school')}",
    "incident.reported": _incident,
    "incident.triaged": _triaged,
    "referral.made": _referral,
    "referral.closed": _closed,
    "contact.recorded": _contact,
    "assessment.completed": _assessment,
    "notification.sent": _notification,
    "notification.acknowledged": lambda d: f"acknowledged notification {d.get('notification')}",
    "marac.plan.agreed": _marac_agreed,
    "marac.plan.shared": lambda d: f"shared MARAC plan {d.get('plan_ref')} with {_destinations(d.get('to'))}",
    "safety-plan.recorded": _safety_plan,
    "contact-arrangement.recorded": _arrangement,
    "flag.acknowledged": lambda d: (
        f"{d.get('by')} acknowledged flag {str(d.get('flag', ''))[:8]}"
        + _details(f'"{d["reason"]}"' if d.get("reason") else None)
    ),
    "flag.dismissed": lambda d: (
        f"{d.get('by')} dismissed flag {str(d.get('flag', ''))[:8]}"
        + _details(f'"{d["reason"]}"' if d.get("reason") else None)
    ),
}


def summarise(event_type: str, source: str, data: Mapping[str, Any]) -> str:
    """ "Police recorded a domestic-abuse incident INC-2: children present, DASH medium, ...".

    Corrections and withdrawals name the event they change; an unknown type says what it is.
    """
    who = _kind_name(source)
    if event_type.startswith("flag."):
        return SUMMARIES[event_type](data)
    if event_type.endswith(".corrected") or event_type.endswith(".withdrawn"):
        verb = "corrected" if event_type.endswith(".corrected") else "withdrew"
        return f"{who} {verb} an earlier {event_type.rsplit('.', 1)[0]} event" + _details(
            f'reason "{data["reason"]}"' if data.get("reason") else None
        )
    describe = SUMMARIES.get(event_type)
    if describe is None:
        return f"{who} recorded {event_type}"
    try:
        return f"{who} {describe(data)}"
    except (AttributeError, KeyError, TypeError):
        # An event of a known type with an unexpected shape (it was valid under an older schema):
        # still one honest sentence rather than a broken page.
        return f"{who} recorded {event_type}"
