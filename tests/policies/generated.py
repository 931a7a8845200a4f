"""Random but reproducible child histories that give every rule work: the input of differential
tests (two ways of evaluating must agree on all of them).

Small pools of people, references and agencies make answers meet their anchors (a notification
names an incident that exists, a closure closes a referral that was made), and corrections,
withdrawals (valid and invalid), back-dated events, recording delays, acknowledgements and
dismissals of the flags an evaluation raised are mixed in, so that a shortcut which holds only
for tidy histories fails here.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from policies.view import Event

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
AGENCIES = (
    "police/avon-somerset",
    "csc/somerset",
    "phn/somerset",
    "gp/L85001",
    "gp/L85002",
    "school/100001",
    "school/100002",
    "marac/somerset",
    "leaving-care/somerset",
    "housing/somerset",
)
REGISTERED = AGENCIES[:-1]  # housing is not registered: a referral to it is vague
NAMESPACE = uuid.UUID("d1f0c3a4-6b2e-4f7a-8c9d-0e1f2a3b4c5d")


class Story:
    """One child's history, event by event (``next(story)``), from a seed."""

    def __init__(self, child: str, seed: int, siblings: tuple[str, ...] = ()) -> None:
        self.child, self.rng = child, random.Random(seed)
        self.people = [f"{child}-m", f"{child}-f", f"{child}-p", "P-shared"]
        self.clock = START
        self.count = 0
        self.made: list[Event] = []
        self.siblings = siblings

    def __iter__(self) -> Iterator[Event]:
        return self

    def _pick(self, *values: Any) -> Any:
        return self.rng.choice(values)

    def _event(self, type: str, source: str, data: dict[str, Any]) -> Event:
        rng = self.rng
        self.count += 1
        self.clock += timedelta(hours=rng.choice((1, 5, 20, 30, 70, 200)))
        recorded = self.clock + timedelta(hours=rng.choice((0, 0, 0, 2, 30, 100)))
        when = self.clock - timedelta(days=rng.choice((0, 0, 0, 0, 1, 9, 40)))  # back-dated
        event = Event(
            str(uuid.uuid5(NAMESPACE, f"{self.child}|{self.count}")),
            type,
            source,
            self.child,
            when,
            recorded,
            MappingProxyType(data),
        )
        self.made.append(event)
        return event

    def _ref(self, prefix: str) -> str:
        return f"{prefix}-{self.rng.randint(1, 6)}"

    def _earlier(self, *types: str) -> Event | None:
        found = [e for e in self.made if e.type in types]
        return self.rng.choice(found) if found else None

    def __next__(self) -> Event:  # one branch per event type, read as a table
        rng, pick, people = self.rng, self._pick, self.people
        police, csc, phn = AGENCIES[0], AGENCIES[1], AGENCIES[2]
        if self.count == 0:
            return self._event(
                "child.registered",
                csc,
                {
                    "dob": pick("2023-11-01", "2019-03-04", "2005-01-01"),
                    "mother": people[0],
                    "father": people[1],
                },
            )
        kind = rng.randrange(30)
        person = pick(*people, self.child)
        if kind == 0:
            return self._event(
                "person.linked",
                pick(csc, phn, police),
                {
                    "person": pick(*people),
                    "role": pick("mother", "father", "step-parent", "parent's-partner", "grandparent"),
                    "lives_with_child": pick(True, False, True),
                },
            )
        if kind == 1:
            data: dict[str, Any] = {"person": pick(*people)}
            for name, values in (
                ("care_leaver", (True, False)),
                ("substance_misuse", (True, False)),
                ("age", (19, 23, 24, 26)),
                ("dob", ("2001-05-05", "1990-01-01")),
            ):
                if rng.random() < 0.5:
                    data[name] = pick(*values)
            return self._event("person.status", pick(csc, phn, "leaving-care/somerset"), data)
        if kind == 2:
            practice = pick("L85001", "L85002")
            return self._event(
                "gp.registered", pick(f"gp/{practice}", csc, csc), {"person": person, "practice": practice}
            )
        if kind == 3:
            return self._event(
                pick("school.enrolled", "school.left"),
                pick("school/100001", csc),
                {"school": pick("100001", "100002")},
            )
        if kind in (4, 5, 6):
            victim, other = rng.sample(people[:3], 2)
            role = pick("perpetrator", "alleged-perpetrator", "counter-allegation", "victim")
            data = {
                "incident_ref": self._ref("INC"),
                "children_present": pick(True, False, True),
                "domestic_abuse": pick(True, True, False),
                "parties": [{"person": victim, "role": "victim"}, {"person": other, "role": role}],
            }
            if rng.random() < 0.3:
                data["dash_risk"] = pick("standard", "high")
            if rng.random() < 0.2:
                data["dash_score"] = rng.randint(10, 18)
            return self._event("incident.reported", police, data)
        if kind == 7:
            return self._event(
                "incident.triaged",
                pick(police, csc),
                {
                    "incident_ref": self._ref("INC"),
                    "forum": "DAT",
                    "outcome": "refer",
                    "referred_to": [pick("health", csc, "gp/L85001", "phn/somerset")],
                },
            )
        if kind in (8, 9):
            return self._event(
                "referral.made",
                pick(police, phn, csc),
                {
                    "referral_ref": self._ref("REF"),
                    "to": pick(csc, "health", "marac/somerset", "housing/somerset", phn),
                    "reason": "concern",
                    "incident_refs": [self._ref("INC")],
                },
            )
        if kind == 10:
            return self._event("referral.acknowledged", pick(csc, phn), {"referral_ref": self._ref("REF")})
        if kind in (11, 12):
            data = {
                "referral_ref": self._ref("REF"),
                "outcome": pick("nfa", "step-down", "escalated"),
                "reason": "done",
                "persons_contacted": rng.sample(people, rng.randint(0, 2)),
                "worked_by": pick("W-1", "W-2", "TM-1"),
                "authorised_by": pick("TM-1", "TM-2", "W-1"),
            }
            if rng.random() < 0.5:
                data["step_down"] = {
                    "to": pick(phn, "health", "school/100001"),
                    "plan": pick("", "weekly visits"),
                    "actions": pick([], ["visit"]),
                }
            if rng.random() < 0.3:
                data["not_contacted_reasons"] = {pick(*people): "risk"}
            return self._event("referral.closed", pick(csc, phn), data)
        if kind in (13, 14):
            return self._event(
                "contact.recorded",
                pick(phn, csc, "school/100001"),
                {
                    "person": person,
                    "practitioner": "HV-1",
                    "mode": pick("in-person", "phone", "text", "video"),
                },
            )
        if kind == 15:
            return self._event(
                "assessment.started",
                csc,
                {"kind": pick("child-and-family", "DASH"), "assessment_ref": pick(None, self._ref("A"))},
            )
        if kind == 16:
            data = {
                "kind": pick("child-and-family", "DASH", "FHNA"),
                "persons_seen": rng.sample(people, rng.randint(0, 3)),
            }
            if rng.random() < 0.5:
                data["assessment_ref"] = self._ref("A")
            if rng.random() < 0.2:
                data["not_seen_reasons"] = {pick(*people): "refused"}
            return self._event("assessment.completed", pick(csc, phn), data)
        if kind in (17, 18, 19):
            about = [self._ref("INC")]
            earlier = self._earlier("incident.reported")
            if earlier is not None and rng.random() < 0.5:
                about = [earlier.id]
            data = {"to": pick(*AGENCIES), "about": about, "channel": "email"}
            if rng.random() < 0.7:
                data["lawful_basis"] = "UK GDPR 6(1)(e)"
            return self._event("notification.sent", pick(police, csc), data)
        if kind == 20:
            note = self._earlier("notification.sent")
            if note is not None:
                source = str(note.data["to"]) if rng.random() < 0.8 else police
                return self._event("notification.acknowledged", source, {"notification": note.id})
            return self._event("notification.acknowledged", police, {"notification": "nothing"})
        if kind == 21:
            return self._event(
                "marac.plan.agreed",
                "marac/somerset",
                {
                    "plan_ref": self._ref("MP"),
                    "meeting_date": "2024-01-01",
                    "persons": rng.sample(people, 2),
                    "actions": [],
                },
            )
        if kind == 22:
            return self._event(
                "marac.plan.shared",
                "marac/somerset",
                {"plan_ref": self._ref("MP"), "to": rng.sample(AGENCIES, 3)},
            )
        if kind == 23:
            terms = [
                {"person": pick(*people), "contact": pick("none", "daytime-only", "supervised")}
                for _ in range(rng.randint(1, 2))
            ]
            return self._event(
                "safety-plan.recorded", pick(phn, csc), {"plan_ref": self._ref("SP"), "terms": terms}
            )
        if kind == 24:
            return self._event(
                "contact-arrangement.recorded", csc, {"person": pick(*people), "overnight": pick(True, False)}
            )
        if kind == 25:
            return self._event(
                "strategy-discussion.held",
                csc,
                {"discussion_ref": self._ref("SD"), "decision": pick("initial-conference", "nfa")},
            )
        if kind == 26:
            data = {"kind": pick("initial", "review")}
            if rng.random() < 0.7:
                data["discussion_ref"] = self._ref("SD")
            return self._event("conference.held", csc, data)
        if kind == 27:
            return self._event("marac.referral.made", police, {"referral_ref": self._ref("MR")})
        return self._amendment()

    def _amendment(self) -> Event:
        rng = self.rng
        original = self._earlier(
            "referral.made",
            "referral.closed",
            "notification.sent",
            "incident.reported",
            "incident.triaged",
            "assessment.completed",
            "person.linked",
        )
        if original is None:
            return self._event(
                "contact.recorded",
                AGENCIES[2],
                {"person": self.people[0], "practitioner": "x", "mode": "phone"},
            )
        family = original.type.rsplit(".", 1)[0]
        source = original.source if rng.random() < 0.9 else AGENCIES[5]  # sometimes not the source
        if rng.random() < 0.3:
            return self._event(f"{family}.withdrawn", source, {"original": original.id, "reason": "error"})
        fields: dict[str, Any] = {"original": original.id, "reason": "fix"}
        if original.type == "referral.closed":
            name, value = rng.choice(
                (
                    ("authorised_by", "TM-9"),
                    ("persons_contacted", [self.people[1]]),
                    ("step_down", {"to": AGENCIES[2], "plan": "p", "actions": ["a"]}),
                )
            )
            fields[name] = value
        elif original.type == "referral.made":
            fields["to"] = rng.choice((AGENCIES[1], "health"))
        elif original.type == "notification.sent":
            fields["lawful_basis"] = rng.choice(("", "UK GDPR 6(1)(e)"))
        elif original.type == "incident.triaged":
            fields["referred_to"] = [rng.choice((AGENCIES[1], "health"))]
        elif original.type == "assessment.completed":
            fields["persons_seen"] = list(self.people[:2])
        elif original.type == "person.linked":
            fields["lives_with_child"] = rng.choice((True, False))
        else:
            fields["dash_risk"] = rng.choice(("standard", "high"))
        return self._event(f"{family}.corrected", source, fields)


def history(child: str, size: int, seed: int) -> list[Event]:
    """The first ``size`` events of the child's story from ``seed``."""
    story = Story(child, seed)
    return [next(story) for _ in range(size)]


def registered_agencies() -> dict[str, datetime]:
    return dict.fromkeys(REGISTERED, START - timedelta(days=400))
