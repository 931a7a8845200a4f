"""Gap-rule evaluation rate: every rule of the set, on synthetic children of realistic size.

    python bench/policies.py [--seconds 3] [--sizes 1,50,500] [--rules-at 10,100,500,1000] [--json]

The projector re-evaluates a child's flags each time one of its events arrives, so the cost that
matters is one ``engine.evaluate`` of every rule of the set over one child's whole view (cut to
``as_of``, corrections folded). Views are built from a deterministic story generator: the
registration facts, then repeated episodes (incident, triage, notifications, health visiting
contact, referral and closure, assessments, safety and MARAC plans, corrections) until the view
holds the requested number of events; 500 is a long, busy child protection history. Prints, per
size, child evaluations per second, rule evaluations per second and flags raised per second,
then each rule's share of the time at the largest size, and the machine it ran on.

Then, for each history length of ``--rules-at``, CPU milliseconds (``time.process_time``) of
one full ``evaluate`` of a child, of each rule alone, and of a *live* evaluation: the child's
next event arrives and ``policies.engine.Evaluator`` (what the projector uses) evaluates it
again, re-running only the rules whose inputs changed. Cost per event independent of the
child's history is issue 13's target: the live figure is the one to compare across lengths.
Not a test: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe
from policies.engine import Evaluator, evaluate
from policies.registry import ALL_POLICIES
from policies.view import ChildView, Event

POLICE, CSC, PHN, GP_CHILD, GP_FATHER, SCHOOL, MARAC, LEAVING_CARE = (
    "police/avon-somerset",
    "csc/somerset",
    "phn/somerset",
    "gp/L85001",
    "gp/L85002",
    "school/100001",
    "marac/somerset",
    "leaving-care/somerset",
)
AGENCIES = (POLICE, CSC, PHN, GP_CHILD, GP_FATHER, SCHOOL, MARAC, LEAVING_CARE)
START = datetime(2023, 1, 9, 9, 0, tzinfo=UTC)


def synthetic_view(child: str, size: int, seed: int) -> ChildView:
    """A child's view of exactly ``size`` events (a prefix of an endless, plausible story)."""
    story = _story(child, random.Random(seed))
    events = [next(story) for _ in range(size)]
    return ChildView.build(child, events, dict.fromkeys(AGENCIES, START - timedelta(days=365)))


def _story(child: str, rng: random.Random) -> Iterator[Event]:
    mother, father = f"{child}-m", f"{child}-f"
    counter = 0
    clock = START

    def event(type: str, source: str, data: dict[str, Any], after: timedelta = timedelta(hours=1)) -> Event:
        nonlocal counter, clock
        counter += 1
        clock += after
        return Event(f"{child}-{counter}", type, source, child, clock, clock, MappingProxyType(data))

    yield event("child.registered", CSC, {"dob": "2021-06-01", "mother": mother, "father": father})
    yield event("person.linked", CSC, {"person": mother, "role": "mother", "lives_with_child": True})
    yield event("person.linked", CSC, {"person": father, "role": "father", "lives_with_child": False})
    yield event("gp.registered", GP_CHILD, {"person": child, "practice": "L85001"})
    yield event("gp.registered", CSC, {"person": father, "practice": "L85002"})
    yield event("school.enrolled", SCHOOL, {"school": "100001"})
    yield event("person.status", CSC, {"person": mother, "care_leaver": True, "age": 22})
    episode = 0
    while True:
        episode += 1
        ref = f"INC-{episode}"
        victim, other = (mother, father) if rng.random() < 0.8 else (father, mother)
        incident = event(
            "incident.reported",
            POLICE,
            {
                "incident_ref": ref,
                "children_present": True,
                "domestic_abuse": rng.random() < 0.9,
                "parties": [{"person": victim, "role": "victim"}, {"person": other, "role": "perpetrator"}],
            },
            timedelta(days=rng.randint(3, 20)),
        )
        yield incident
        yield event("incident.triaged", POLICE, {"incident_ref": ref, "forum": "DAT", "outcome": "refer"})
        for to in (GP_CHILD, PHN, SCHOOL):
            if rng.random() < 0.7:
                yield event("notification.sent", POLICE, {"to": to, "about": [ref]})
        mode = rng.choice(("in-person", "phone", "text"))
        yield event("contact.recorded", PHN, {"person": mother, "practitioner": "HV-1", "mode": mode})
        referral = f"REF-{episode}"
        yield event("referral.made", POLICE, {"referral_ref": referral, "to": CSC, "reason": "DA"})
        closure = event(
            "referral.closed",
            CSC,
            {
                "referral_ref": referral,
                "outcome": "nfa",
                "reason": "protective parent",
                "persons_contacted": [mother],
                "worked_by": f"W-{episode % 3}",
                "authorised_by": f"TM-{episode % 2}",
            },
            timedelta(days=2),
        )
        yield closure
        if rng.random() < 0.3:
            fix = {"original": closure.id, "reason": "another authoriser", "authorised_by": "TM-9"}
            yield event("referral.corrected", CSC, fix)
        kind = rng.choice(("child-and-family", "DASH"))
        yield event("assessment.completed", CSC, {"kind": kind, "persons_seen": [mother]})
        terms = [{"person": father, "contact": "none"}]
        yield event("safety-plan.recorded", PHN, {"plan_ref": "SP-1", "terms": terms})
        yield event("contact-arrangement.recorded", CSC, {"person": father, "overnight": rng.random() < 0.5})
        if episode % 4 == 0:
            plan = f"MARAC-{episode}"
            yield event(
                "marac.plan.agreed",
                MARAC,
                {"plan_ref": plan, "meeting_date": "2023-01-01", "persons": [mother, father], "actions": []},
            )
            yield event("marac.plan.shared", MARAC, {"plan_ref": plan, "to": [POLICE, CSC]})


def measure(views: list[ChildView], seconds: float) -> tuple[float, float]:
    """(child evaluations per second, flags raised per second), each view as of its last event
    plus a day, so absence deadlines have passed and flags are raised, not merely pending."""
    as_of = [max((e.recordedtime for e in v.events), default=START) + timedelta(days=1) for v in views]
    evaluations = flags = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for view, when in zip(views, as_of, strict=True):
            flags += len(evaluate(view, when, ALL_POLICIES).flags)
            evaluations += 1
    elapsed = time.perf_counter() - start
    return evaluations / elapsed, flags / elapsed


def rule_shares(views: list[ChildView], repeats: int = 3) -> list[tuple[str, float]]:
    """Each rule's share of one evaluation's time (the view is pre-folded, as the engine would)."""
    cost: dict[str, float] = {}
    for view in views:
        when = max(e.recordedtime for e in view.events) + timedelta(days=1)
        known = view.known_at(when)
        known.effective()
        for policy in ALL_POLICIES:
            start = time.perf_counter()
            for _ in range(repeats):
                list(policy.findings(known, when))
            cost[policy.id] = cost.get(policy.id, 0.0) + time.perf_counter() - start
    total = sum(cost.values())
    return sorted(((rule, spent / total) for rule, spent in cost.items()), key=lambda item: -item[1])


def cpu_ms_by_history(length: int, children: int, next_events: int = 12) -> dict[str, Any]:
    """CPU ms of a full evaluation, of each rule, and of a live (incremental) evaluation after
    one new event, for children with ``length`` prior events (means over children and events)."""
    full = live = 0.0
    rules: dict[str, float] = {}
    runs = 0
    for n in range(children):
        child = f"C-h{length}-{n}"
        story = _story(child, random.Random(n))
        events = [next(story) for _ in range(length)]
        agencies = dict.fromkeys(AGENCIES, START - timedelta(days=365))
        evaluator = Evaluator()
        evaluator.evaluate(ChildView.build(child, events, agencies), events[-1].recordedtime, ALL_POLICIES)
        for _ in range(next_events):
            events.append(next(story))
            as_of = events[-1].recordedtime + timedelta(minutes=1)
            view = ChildView.build(child, events, agencies)  # a new view per batch, as the projector builds
            started = time.process_time()
            evaluator.evaluate(view, as_of, ALL_POLICIES)
            live += time.process_time() - started
            view = ChildView.build(child, events, agencies)
            started = time.process_time()
            evaluate(view, as_of, ALL_POLICIES)
            full += time.process_time() - started
            known = view.known_at(as_of)
            for policy in ALL_POLICIES:
                started = time.process_time()
                list(policy.findings(known, as_of))
                rules[policy.id] = rules.get(policy.id, 0.0) + time.process_time() - started
            runs += 1
    return {
        "prior_events": length,
        "evaluate_full_cpu_ms": round(1000 * full / runs, 3),
        "evaluate_live_cpu_ms": round(1000 * live / runs, 3),
        "rule_cpu_ms": {rule: round(1000 * spent / runs, 4) for rule, spent in rules.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per size")
    parser.add_argument("--sizes", default="1,50,500", help="events per child, comma-separated")
    parser.add_argument("--children", type=int, default=20, help="distinct synthetic children per size")
    parser.add_argument(
        "--rules-at", default="10,100,500,1000", help="history lengths for the per-rule and live CPU table"
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the per-rule table, as one JSON object"
    )
    args = parser.parse_args()
    lengths = [int(s) for s in args.rules_at.split(",") if s]
    if args.json:
        table = [cpu_ms_by_history(length, min(args.children, 5)) for length in lengths]
        print(json.dumps({"machine": describe(), "rules": len(ALL_POLICIES), "histories": table}, indent=2))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {describe()}")
    print(f"rules: {len(ALL_POLICIES)} (policies.registry.ALL_POLICIES), {args.seconds:g} s per size")
    print(f"{'events/child':>12} {'children/s':>12} {'rules/s':>12} {'flags/s':>12} {'flags/child':>12}")
    for size in sizes:
        views = [synthetic_view(f"C-{size}-{n}", size, seed=n) for n in range(args.children)]
        per_second, flags_per_second = measure(views, args.seconds)
        print(
            f"{size:>12} {per_second:>12,.0f} {per_second * len(ALL_POLICIES):>12,.0f} "
            f"{flags_per_second:>12,.0f} {flags_per_second / per_second:>12.1f}"
        )
    largest = max(sizes)
    print(f"share of evaluation time by rule at {largest} events per child:")
    views = [synthetic_view(f"C-share-{n}", largest, seed=n) for n in range(min(args.children, 5))]
    for rule, share in rule_shares(views):
        print(f"  {rule:<34} {share:6.1%}")
    if lengths:
        print_history_table([cpu_ms_by_history(length, min(args.children, 5)) for length in lengths])


def print_history_table(table: list[dict[str, Any]]) -> None:
    print(
        "CPU ms per evaluation of one child, by prior events "
        "(full: evaluate; live: Evaluator after one new event)"
    )
    print(f"{'':<44}" + "".join(f"{row['prior_events']:>10}" for row in table))
    for label, key in (
        ("evaluate, full", "evaluate_full_cpu_ms"),
        ("evaluate, live (incremental)", "evaluate_live_cpu_ms"),
    ):
        print(f"{label:<44}" + "".join(f"{row[key]:>10.2f}" for row in table))
    last = table[-1]["rule_cpu_ms"]
    for rule in sorted(last, key=lambda r: -last[r]):
        print(f"  {rule:<42}" + "".join(f"{row['rule_cpu_ms'][rule]:>10.3f}" for row in table))


if __name__ == "__main__":
    main()
