"""Plain-language event summaries: one sentence per event type, never a Python repr."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from views.summaries import agency_name, event_name, readable_duration, readable_time, summarise

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_the_incident_sentence_of_the_issue() -> None:
    data = {
        "incident_ref": "INC-2", "children_present": True, "domestic_abuse": True, "dash_risk": "medium",
        "reported_by": "a neighbour",
        "parties": [{"person": "P-m", "role": "victim"}, {"person": "P-f", "role": "alleged-perpetrator"}],
    }  # fmt: skip
    assert summarise("incident.reported", "police/avon-somerset", data) == (
        "Police recorded a domestic-abuse incident INC-2: children present, DASH medium, reported by a "
        "neighbour; parties P-m (victim), P-f (alleged perpetrator)"
    )


@pytest.mark.parametrize(
    ("event_type", "source", "data", "expected"),
    [
        ("child.registered", "midwifery/somerset", {"dob": "2019-11-08", "sex": "M", "father": "P-f"},
         "Midwifery registered the child: born 2019-11-08, male, father P-f"),
        ("person.linked", "phn/somerset", {"person": "P-f", "role": "father", "lives_with_child": False},
         "Health visiting linked P-f to the child as father (not living with the child)"),
        ("person.status", "leaving-care/somerset", {"person": "P-m", "care_leaver": True, "age": 19},
         "Leaving care recorded about P-m: age 19, care leaver"),
        ("gp.registered", "gp/L85001", {"person": "C-1", "practice": "L85001"},
         "GP practice L85001 recorded the child registered with GP practice L85001"),
        ("school.enrolled", "school/123456", {"school": "123456"},
         "School 123456 recorded the child enrolled at school 123456"),
        ("incident.triaged", "police/x", {"incident_ref": "INC-1", "forum": "DAT", "outcome": "refer",
                                          "referred_to": ["csc/x"]},
         "Police triaged incident INC-1 at DAT: refer; referred to Children's social care"),
        ("incident.triaged", "police/x", {"incident_ref": "INC-2", "forum": "DAT",
                                          "outcome": "Referred to health", "referred_to": ["health"]},
         "Police triaged incident INC-2 at DAT: Referred to health"),  # said once, not twice
        ("referral.made", "police/x", {"referral_ref": "R-1", "to": "csc/x", "reason": "risk"},
         "Police referred the child to Children's social care (referral R-1): risk"),
        ("referral.closed", "csc/x", {"referral_ref": "R-1", "outcome": "nfa", "reason": "ok",
                                      "persons_contacted": ["P-m"],
                                      "not_contacted_reasons": {"P-f": "no number"},
                                      "worked_by": "W-1", "authorised_by": "W-1"},
         "Children's social care closed referral R-1 (no further action): ok; contacted P-m; not contacted "
         "P-f (no number); worked and authorised by W-1"),
        ("contact.recorded", "phn/x", {"person": "P-m", "practitioner": "HV-1", "mode": "in-person"},
         "Health visiting recorded an in-person contact with P-m by HV-1"),
        ("assessment.completed", "csc/x", {"kind": "child-and-family", "persons_seen": ["P-m", "C-1"]},
         "Children's social care completed a child and family assessment: seen P-m, the child"),
        ("notification.sent", "police/x", {"to": "gp/L1", "about": ["e-1"], "channel": "secure email"},
         "Police told GP practice L1 about incident INC-9 (by secure email)"),
        ("notification.acknowledged", "gp/L1", {"notification": "e-1"},
         "GP practice L1 acknowledged incident INC-9"),
        ("marac.plan.agreed", "marac/x", {"plan_ref": "MP-1", "meeting_date": "2020-01-05",
                                          "persons": ["P-m"],
                                          "actions": [{"agency": "gp/L1", "action": "review"}]},
         "MARAC agreed plan MP-1 at the meeting of 2020-01-05 for P-m: 1 action(s) (GP practice L1: review)"),
        ("marac.plan.shared", "marac/x", {"plan_ref": "MP-1", "to": ["gp/L1", "school/9"]},
         "MARAC shared plan MP-1 with GP practice L1, School 9"),
        ("safety-plan.recorded", "csc/x",
         {"plan_ref": "SP-1", "terms": [{"person": "P-f", "contact": "none"}]},
         "Children's social care recorded safety plan SP-1: P-f: no contact"),
        ("contact-arrangement.recorded", "csc/x", {"person": "P-f", "overnight": True, "frequency": "weekly"},
         "Children's social care recorded contact arrangements with P-f: including overnight stays, weekly"),
        ("incident.corrected", "police/x", {"original": "e-1", "reason": "wrong date"},
         "Police corrected incident INC-9: wrong date"),
        ("referral.withdrawn", "police/x", {"original": "e-2", "reason": "sent in error"},
         "Police withdrew e-2: sent in error"),
        ("access.recorded", "partnership/service", {"who": "os:amy", "action": "child show"},
         "os:amy looked at the record (child show), no reason given"),
        ("flag.dismissed", "partnership/service", {"flag": "0123456789ab", "by": "os:amy", "reason": "dup"},
         "os:amy dismissed flag 01234567: dup"),
        ("agency.key.revoked", "partnership/x", {"agency": "gp/L1", "kid": "k1", "reason": "lost"},
         "The partnership revoked signing key k1 of gp/L1: lost"),
        ("ledger.tree-head", "partnership/service", {"tree_size": 40, "root_hash": "ab"},
         "The partnership published a tree head over the first 40 events"),
    ],
)  # fmt: skip
def test_one_sentence_per_event_type(
    event_type: str, source: str, data: dict[str, Any], expected: str
) -> None:
    names = {"e-1": event_name("incident.reported", {"incident_ref": "INC-9"})}
    assert summarise(event_type, source, data, subject="C-1", names=names) == expected


def test_an_unknown_type_reads_as_words_not_as_a_repr() -> None:
    text = summarise("housing.visit", "housing/x", {"rooms": [{"kind": "bed", "n": 2}], "ok": True})
    assert text == "Housing recorded housing.visit: ok: yes; rooms: kind bed; n 2"


def test_every_event_of_every_scenario_has_a_sentence_without_python_reprs() -> None:
    seen = set()
    for path in sorted(SCENARIOS.glob("*.json")):
        for step in json.loads(path.read_text()).get("events", []):
            if not isinstance(step, dict) or "type" not in step:
                continue
            text = summarise(
                step["type"], step.get("agency") or step.get("source", "x/y"), step.get("data", {})
            )
            seen.add(step["type"])
            for repr_mark in ("[{", "{'", "['", "True", "False", "None"):
                assert repr_mark not in text, (path.name, text)
    assert len(seen) >= 10


def test_names_of_events_that_others_refer_to() -> None:
    assert event_name("incident.triaged", {"incident_ref": "INC-2"}) == "triage of incident INC-2"
    assert event_name("marac.plan.shared", {"plan_ref": "MP-1"}) == "sharing of plan MP-1"
    assert event_name("contact.recorded", {"person": "P"}) == "the contact.recorded event"
    assert agency_name("gp/L85001") == "GP practice L85001"
    assert agency_name("unknown-kind/x") == "unknown-kind/x"


def test_readable_times_are_london_time() -> None:
    assert readable_time(datetime(2019, 12, 10, 21, 40, tzinfo=UTC)) == "Tue 10 Dec 2019 21:40"
    assert readable_time(datetime(2020, 6, 1, 8, 5, tzinfo=UTC)) == "Mon 1 Jun 2020 09:05"  # BST
    assert readable_duration(timedelta(hours=5)) == "5 hours"
    assert readable_duration(timedelta(days=9, hours=3)) == "9 days"


def test_people_are_named_when_the_caller_knows_them() -> None:
    """The signed events name people by actor id; a caller that knows their names (the web
    workspace) passes them, and without one the id is shown."""
    oidc = "oidc:https://idp.example|8f3c2a"
    decided = {"flag": "0123456789ab", "by": oidc, "reason": "called"}
    assert summarise("flag.acknowledged", "partnership/service", decided, names={oidc: "amy@gp.example"}) == (
        "amy@gp.example acknowledged flag 01234567: called"
    )
    assert summarise("flag.acknowledged", "partnership/service", decided).startswith(f"{oidc} acknowledged")
    looked = {"who": oidc, "action": "web child"}
    assert summarise("access.recorded", "partnership/service", looked, names={oidc: "amy@gp.example"}) == (
        "amy@gp.example looked at the record (web child), no reason given"
    )
