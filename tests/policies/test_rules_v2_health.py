"""Issue 14 rules about health visiting, GP practices, schools and notifications:
health-assessment-not-updated, notification-not-acknowledged,
under-five-not-notified-to-health-visiting, share-without-lawful-basis, father-not-identified.
Each fires, stays quiet when the work is done in time, and late work resolves it."""

from __future__ import annotations

from policies.father_not_identified import FatherNotIdentified
from policies.health_assessment_not_updated import HealthAssessmentNotUpdated
from policies.notification_not_acknowledged import NotificationNotAcknowledged
from policies.share_without_lawful_basis import ShareWithoutLawfulBasis
from policies.under_five_not_notified_to_health_visiting import UnderFiveNotNotifiedToHealthVisiting
from policies.view import Event
from tests.policies.helpers import correct, ev, flags, t, view
from tests.policies.ordering import assert_order_independent

POLICE, CSC, PHN, GP, SCHOOL = (
    "police/avon-somerset", "csc/somerset", "phn/somerset", "gp/L85001", "school/100001",
)  # fmt: skip
MONDAY = "2024-03-04T10:00:00Z"
LATER = "2024-12-31T00:00:00Z"


def incident(at: str = MONDAY, *, domestic_abuse: bool = True) -> Event:
    data = {
        "incident_ref": "INC-1",
        "children_present": True,
        "domestic_abuse": domestic_abuse,
        "parties": [],
    }
    return ev("incident.reported", data, at, source=POLICE)


def notify(to: str, at: str = MONDAY, **extra: str) -> Event:
    return ev("notification.sent", {"to": to, "about": ["INC-1"], **extra}, at, source=POLICE)


def fhna(at: str, source: str = PHN) -> Event:
    return ev("assessment.completed", {"kind": "FHNA", "persons_seen": ["M-1"]}, at, source=source)


def registered(dob: str, **parents: str) -> Event:
    return ev("child.registered", {"dob": dob, **parents}, "2020-01-01T10:00:00Z", source="midwifery/nbt")


def test_health_assessment_not_updated_after_ten_working_days_then_resolved() -> None:
    events = [incident(), notify(PHN)]
    assert flags(HealthAssessmentNotUpdated(), view(*events), "2024-03-18T23:59:59Z") == []
    (flag,) = flags(HealthAssessmentNotUpdated(), view(*events), "2024-03-19T00:00:00Z")
    assert (flag.concerns, flag.evidence) == ((PHN,), (events[1].id,))
    late = fhna("2024-03-20T10:00:00Z")
    assert [f.status for f in flags(HealthAssessmentNotUpdated(), view(*events, late), LATER)] == ["resolved"]


def test_health_assessment_updated_in_time_by_the_notified_team_is_quiet() -> None:
    events = [incident(), notify(PHN)]
    assert flags(HealthAssessmentNotUpdated(), view(*events, fhna("2024-03-18T12:00:00Z")), LATER) == []
    assert (
        len(flags(HealthAssessmentNotUpdated(), view(*events, fhna("2024-03-18T12:00:00Z", CSC)), LATER)) == 1
    )
    assert len(flags(HealthAssessmentNotUpdated(), view(*events, fhna("2024-03-01T12:00:00Z")), LATER)) == 1
    assert flags(HealthAssessmentNotUpdated(), view(incident(), notify(GP)), LATER) == []
    assert flags(HealthAssessmentNotUpdated(), view(notify(PHN)), LATER) == []  # about no incident


def ack(notification: Event, at: str, source: str | None = None) -> Event:
    to = source or str(notification.data["to"])
    return ev("notification.acknowledged", {"notification": notification.id}, at, source=to)


def test_notification_not_acknowledged_after_two_working_days() -> None:
    n = notify(GP)
    assert flags(NotificationNotAcknowledged(), view(n), "2024-03-06T23:59:59Z") == []
    (flag,) = flags(NotificationNotAcknowledged(), view(n), "2024-03-07T00:00:00Z")
    assert flag.concerns == tuple(sorted((GP, POLICE)))
    late = ack(n, "2024-03-08T09:00:00Z")
    assert [f.status for f in flags(NotificationNotAcknowledged(), view(n, late), LATER)] == ["resolved"]


def test_acknowledged_in_time_by_the_recipient_or_sent_elsewhere_is_quiet() -> None:
    for to in (GP, SCHOOL, PHN):
        n = notify(to)
        assert flags(NotificationNotAcknowledged(), view(n, ack(n, "2024-03-06T12:00:00Z")), LATER) == []
    n = notify(GP)
    assert (
        len(flags(NotificationNotAcknowledged(), view(n, ack(n, "2024-03-06T12:00:00Z", source=CSC)), LATER))
        == 1
    )
    assert flags(NotificationNotAcknowledged(), view(notify(CSC)), LATER) == []


def test_under_five_not_notified_to_health_visiting() -> None:
    events = [registered("2019-03-05"), incident()]  # four on the day of the incident
    assert flags(UnderFiveNotNotifiedToHealthVisiting(), view(*events), "2024-03-05T23:59:59Z") == []
    (flag,) = flags(UnderFiveNotNotifiedToHealthVisiting(), view(*events), "2024-03-06T00:00:00Z")
    assert (flag.concerns, flag.due) == ((POLICE,), t("2024-03-06T00:00:00Z"))
    late = notify(PHN, "2024-03-07T09:00:00Z")
    assert [f.status for f in flags(UnderFiveNotNotifiedToHealthVisiting(), view(*events, late), LATER)] == [
        "resolved"
    ]


def test_five_or_older_unknown_age_told_in_time_or_not_domestic_abuse_is_quiet() -> None:
    rule = UnderFiveNotNotifiedToHealthVisiting()
    assert flags(rule, view(registered("2019-03-04"), incident()), LATER) == []  # fifth birthday
    assert flags(rule, view(incident()), LATER) == []
    assert (
        flags(rule, view(registered("2023-01-01"), incident(), notify(PHN, "2024-03-05T20:00:00Z")), LATER)
        == []
    )
    assert len(flags(rule, view(registered("2023-01-01"), incident(), notify(SCHOOL)), LATER)) == 1
    assert flags(rule, view(registered("2023-01-01"), incident(domestic_abuse=False)), LATER) == []


def test_share_without_lawful_basis_at_once_and_a_correction_resolves() -> None:
    n = notify(GP)
    (flag,) = flags(ShareWithoutLawfulBasis(), view(n), MONDAY)
    assert (flag.status, flag.due) == ("open", t(MONDAY))
    fix = correct(
        n, {"lawful_basis": "UK GDPR 6(1)(e), 9(2)(g); DPA 2018 Sch.1 para 18"}, "2024-03-05T10:00:00Z"
    )
    (resolved,) = flags(ShareWithoutLawfulBasis(), view(n, fix), LATER)
    assert (resolved.status, resolved.resolved_by, resolved.due) == ("resolved", fix.id, t(MONDAY))
    assert flags(ShareWithoutLawfulBasis(), view(notify(GP, lawful_basis="public task")), LATER) == []


def hv_contact(at: str) -> Event:
    return ev(
        "contact.recorded", {"person": "C-1", "practitioner": "HV", "mode": "in-person"}, at, source=PHN
    )


def test_father_not_identified_at_the_new_birth_visit_then_resolved_by_a_link() -> None:
    birth = ev("child.registered", {"dob": "2024-03-01", "mother": "M-1"}, "2024-03-01T12:00:00Z", source=CSC)
    visit = hv_contact("2024-03-12T10:00:00Z")
    (flag,) = flags(FatherNotIdentified(), view(birth, visit), "2024-03-12T10:00:00Z")
    assert (flag.due, flag.concerns, flag.evidence) == (visit.recordedtime, (PHN,), (visit.id,))
    link = ev("person.linked", {"person": "F-1", "role": "father"}, "2024-03-20T10:00:00Z", source=PHN)
    (resolved,) = flags(FatherNotIdentified(), view(birth, visit, link), LATER)
    assert (resolved.status, resolved.resolved_by) == ("resolved", link.id)


def test_father_known_by_the_visit_or_no_visit_is_quiet() -> None:
    with_father = ev(
        "child.registered", {"dob": "2024-03-01", "mother": "M-1", "father": "F-1"}, "2024-03-01T12:00:00Z",
        source=CSC,
    )  # fmt: skip
    assert flags(FatherNotIdentified(), view(with_father, hv_contact("2024-03-12T10:00:00Z")), LATER) == []
    partner = ev(
        "person.linked", {"person": "P-1", "role": "parent's-partner"}, "2024-03-02T10:00:00Z", source=CSC
    )
    birth = ev("child.registered", {"dob": "2024-03-01", "mother": "M-1"}, "2024-03-01T12:00:00Z", source=CSC)
    assert flags(FatherNotIdentified(), view(birth, partner, hv_contact("2024-03-12T10:00:00Z")), LATER) == []
    assert flags(FatherNotIdentified(), view(birth), LATER) == []
    antenatal = hv_contact("2024-02-20T10:00:00Z")  # before birth: not the new birth visit
    assert flags(FatherNotIdentified(), view(birth, antenatal), LATER) == []


def test_flags_do_not_depend_on_delivery_order() -> None:
    events = [registered("2022-01-01"), incident(), notify(PHN), notify(GP, "2024-03-05T10:00:00Z")]
    for rule in (
        HealthAssessmentNotUpdated(), NotificationNotAcknowledged(), ShareWithoutLawfulBasis(),
    ):  # fmt: skip
        assert_order_independent(rule, events, LATER)
    assert_order_independent(UnderFiveNotNotifiedToHealthVisiting(), events[:2], LATER)
