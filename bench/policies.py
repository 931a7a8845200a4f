"""Flags evaluated per second: all sixteen rules over views of realistic size.

    python bench/policies.py [--seconds 3]

Builds synthetic children with 1, 50 and 500 events (registrations, people, GP and school links,
incidents, triages, notifications, referrals and closures, contacts, assessments, plans) and
times `policies.engine.evaluate` with every rule, as the projector does after each batch.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe
from policies.engine import evaluate
from policies.registry import ALL_POLICIES
from policies.view import ChildView, Event

T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
AGENCIES = (
    "police/avon-somerset",
    "csc/somerset",
    "gp/L85001",
    "phn/somerset",
    "school/100001",
    "marac/somerset",
)


def _event(n: int, event_type: str, source: str, data: dict[str, Any]) -> Event:
    at = T0 + timedelta(hours=7 * n)
    return Event(str(uuid.UUID(int=n)), event_type, source, "C-1", at, at, data)


def story(size: int) -> ChildView:
    """A child's history of ``size`` events in the mix real partnerships see."""
    base = [
        ("child.registered", "csc/somerset", {"dob": "2023-11-01", "mother": "P-m", "father": "P-f"}),
        ("person.linked", "csc/somerset", {"person": "P-f", "role": "father", "lives_with_child": False}),
        ("gp.registered", "gp/L85001", {"person": "C-1", "practice": "L85001"}),
        ("gp.registered", "gp/L85001", {"person": "P-f", "practice": "L85002"}),
        ("school.enrolled", "school/100001", {"school": "100001"}),
    ]
    cycle = [
        (
            "incident.reported",
            "police/avon-somerset",
            lambda n: {
                "incident_ref": f"INC-{n}",
                "children_present": True,
                "domestic_abuse": True,
                "parties": [
                    {"person": "P-m", "role": "victim"},
                    {"person": "P-f", "role": "alleged-perpetrator"},
                ],
            },
        ),
        (
            "incident.triaged",
            "police/avon-somerset",
            lambda n: {"incident_ref": f"INC-{n - 1}", "forum": "MASH", "outcome": "notify"},
        ),
        (
            "notification.sent",
            "police/avon-somerset",
            lambda n: {"to": "phn/somerset", "about": [f"INC-{n - 2}"]},
        ),
        (
            "contact.recorded",
            "phn/somerset",
            lambda n: {"person": "P-m", "practitioner": "HV-1", "mode": "text"},
        ),
        (
            "referral.made",
            "police/avon-somerset",
            lambda n: {"referral_ref": f"R-{n}", "to": "health", "reason": "DA"},
        ),
        (
            "referral.closed",
            "csc/somerset",
            lambda n: {
                "referral_ref": f"R-{n - 1}",
                "outcome": "nfa",
                "reason": "mother protective",
                "persons_contacted": ["P-m"],
                "worked_by": "W-1",
                "authorised_by": "W-1",
            },
        ),
        (
            "assessment.completed",
            "csc/somerset",
            lambda n: {"kind": "child-and-family", "persons_seen": ["P-m"]},
        ),
        (
            "safety-plan.recorded",
            "phn/somerset",
            lambda n: {"plan_ref": "SP-1", "terms": [{"person": "P-f", "contact": "none"}]},
        ),
        ("contact-arrangement.recorded", "csc/somerset", lambda n: {"person": "P-f", "overnight": True}),
        (
            "marac.plan.agreed",
            "marac/somerset",
            lambda n: {
                "plan_ref": f"M-{n}",
                "meeting_date": "2024-02-01",
                "persons": ["P-m", "P-f"],
                "actions": [{"agency": "police/avon-somerset", "action": "flag address"}],
            },
        ),
    ]
    events = [_event(n, t, s, d) for n, (t, s, d) in enumerate(base)][:size]
    n = len(events)
    while n < size:
        event_type, source, make = cycle[n % len(cycle)]
        events.append(_event(n, event_type, source, make(n)))
        n += 1
    return ChildView.build("C-1", events, dict.fromkeys(AGENCIES, T0 - timedelta(days=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"rules: {len(ALL_POLICIES)}")
    for size in (1, 50, 500):
        view = story(size)
        as_of = max(e.recordedtime for e in view.events) + timedelta(days=30)
        flags = len(evaluate(view, as_of, ALL_POLICIES).flags)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            evaluate(view, as_of, ALL_POLICIES)
            count += 1
        elapsed = time.perf_counter() - started
        per_eval = elapsed / count
        print(
            f"{size:4d} events/child: {count / elapsed:9.1f} child evaluations/s "
            f"({per_eval * 1000:7.2f} ms each, {flags} flags, {flags * count / elapsed:9.0f} flags/s)"
        )


if __name__ == "__main__":
    main()
