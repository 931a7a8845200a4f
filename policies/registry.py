"""The rule set: every gap rule, in the order of the policies issue.

``ALL_POLICIES`` is the rule set the projector and the scenario runner evaluate; its order is the
order of the policies issue. Rule ids are part of the contract with safeguarding leads.
"""

from __future__ import annotations

from policies.base import Policy
from policies.care_leaver_parent_unsupported import CareLeaverParentUnsupported
from policies.closure_without_father_contact import ClosureWithoutFatherContact
from policies.closure_without_step_down_plan import ClosureWithoutStepDownPlan
from policies.father_not_in_assessment import FatherNotInAssessment
from policies.gp_not_notified import GpNotNotified
from policies.incident_not_triaged import IncidentNotTriaged
from policies.marac_plan_not_shared import MaracPlanNotShared
from policies.mutual_allegations_unassessed import MutualAllegationsUnassessed
from policies.notification_not_followed_up import NotificationNotFollowedUp
from policies.overnight_contact_unexplored import OvernightContactUnexplored
from policies.parent_gp_unaware import ParentGpUnaware
from policies.repeat_incidents import RepeatIncidents
from policies.safety_plan_breached import SafetyPlanBreached
from policies.school_not_notified import SchoolNotNotified
from policies.self_authorised_closure import SelfAuthorisedClosure
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
)

POLICIES_BY_ID: dict[str, Policy] = {p.id: p for p in ALL_POLICIES}
