"""The rule set: every gap rule, in the order of the policies issue, then of issue 14 (v2).

``ALL_POLICIES`` is the rule set the projector and the scenario runner evaluate; its order is the
order of the issues' tables. Rule ids are part of the contract with safeguarding leads.
"""

from __future__ import annotations

from policies.assessment_overdue import AssessmentOverdue
from policies.base import Policy
from policies.care_leaver_parent_unsupported import CareLeaverParentUnsupported
from policies.closure_without_father_contact import ClosureWithoutFatherContact
from policies.closure_without_step_down_plan import ClosureWithoutStepDownPlan
from policies.co_resident_perpetrator_no_safety_plan import CoResidentPerpetratorNoSafetyPlan
from policies.conference_overdue import ConferenceOverdue
from policies.father_not_identified import FatherNotIdentified
from policies.father_not_in_assessment import FatherNotInAssessment
from policies.gp_not_notified import GpNotNotified
from policies.health_assessment_not_updated import HealthAssessmentNotUpdated
from policies.high_risk_no_marac_referral import HighRiskNoMaracReferral
from policies.incident_not_triaged import IncidentNotTriaged
from policies.marac_plan_not_shared import MaracPlanNotShared
from policies.mutual_allegations_unassessed import MutualAllegationsUnassessed
from policies.notification_not_acknowledged import NotificationNotAcknowledged
from policies.notification_not_followed_up import NotificationNotFollowedUp
from policies.overnight_contact_unexplored import OvernightContactUnexplored
from policies.parent_gp_unaware import ParentGpUnaware
from policies.referral_not_acknowledged import ReferralNotAcknowledged
from policies.repeat_incidents import RepeatIncidents
from policies.safety_plan_breached import SafetyPlanBreached
from policies.school_not_notified import SchoolNotNotified
from policies.self_authorised_closure import SelfAuthorisedClosure
from policies.share_without_lawful_basis import ShareWithoutLawfulBasis
from policies.sibling_not_considered import SiblingNotConsidered
from policies.step_down_not_taken_up import StepDownNotTakenUp
from policies.under_five_not_notified_to_health_visiting import UnderFiveNotNotifiedToHealthVisiting
from policies.vague_referral_destination import VagueReferralDestination

ALL_POLICIES: tuple[Policy, ...] = (
    ClosureWithoutFatherContact(),
    GpNotNotified(),
    ParentGpUnaware(),
    RepeatIncidents(),
    IncidentNotTriaged(),
    VagueReferralDestination(),
    MaracPlanNotShared(),
    ClosureWithoutStepDownPlan(),
    SelfAuthorisedClosure(),
    OvernightContactUnexplored(),
    SafetyPlanBreached(),
    NotificationNotFollowedUp(),
    FatherNotInAssessment(),
    MutualAllegationsUnassessed(),
    CareLeaverParentUnsupported(),
    SchoolNotNotified(),
    # Issue 14: gap rules v2.
    SiblingNotConsidered(),
    StepDownNotTakenUp(),
    CoResidentPerpetratorNoSafetyPlan(),
    HealthAssessmentNotUpdated(),
    NotificationNotAcknowledged(),
    UnderFiveNotNotifiedToHealthVisiting(),
    HighRiskNoMaracReferral(),
    ReferralNotAcknowledged(),
    AssessmentOverdue(),
    ConferenceOverdue(),
    ShareWithoutLawfulBasis(),
    FatherNotIdentified(),
)

POLICIES_BY_ID: dict[str, Policy] = {p.id: p for p in ALL_POLICIES}
