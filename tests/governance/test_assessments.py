"""Risk assessments: the questionnaire and its scoring rules (each factor, the tiers, the critical
combinations), recording an assessment (who may, what it changes, its audit trail), the tier's
effect on grants and the attestation cadence, the reads, and the reassessment job."""

from datetime import timedelta

import pytest
from django.core.management import call_command

from delegations.services import ScopeRequest, grant_cap, grant_request
from governance import assessments as A
from governance.assessments import (
    FACTORS,
    MAX_SCORE,
    TRIGGERS,
    answers_clean,
    answers_suggested,
    assessment_history,
    assessment_latest,
    assessments_flag_due,
    assessments_in_force,
    risk_assessment_record,
    risk_score,
    tier_for_score,
)
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.jobs import JOBS, job_run
from governance.models import AuditEvent, Finding, Policy, RiskAssessment
from inventory.models import Agent
from tests.api_support import issue_token
from tests.factories import T0, AgentFactory, OwnerFactory, ToolFactory
from tests.support import Trail, refusal_checker

pytestmark = pytest.mark.django_db

#: Every factor at its lowest: score 0, tier low.
LOW = {
    "autonomy": "human_in_the_loop",
    "data_classes": ["none"],
    "access": "read",
    "destinations": "internal",
    "delegation": "none",
    "oversight": "continuous",
    "supply_chain": "in_house",
}
MEDIUM = {**LOW, "autonomy": "human_on_the_loop", "data_classes": ["pii"], "access": "write"}  # 2 + 2 + 2 = 6
HIGH = {
    **LOW,
    "autonomy": "autonomous",
    "data_classes": ["payment"],
    "access": "write",
    "destinations": "named_external",
}
CRITICAL = {
    **LOW,
    "autonomy": "autonomous",
    "data_classes": ["payment", "health", "secrets"],
    "access": "execute",
    "destinations": "open_external",
    "delegation": "open",
}

refuses = refusal_checker(RiskAssessment, Agent, AuditEvent, Finding)


def answers(**changes) -> dict:
    return {**LOW, **changes}


@pytest.fixture
def trail():
    return Trail()


@pytest.fixture
def assessed(frozen_now, owner, other_owner):
    """An active agent of ``owner`` backed up by ``other_owner``."""
    return AgentFactory(owner=owner, backup_owner=other_owner, name="Invoice agent", slug="invoice-agent")


def make_assessment(agent, by, *, at=T0, tier="medium", days=365, score=7, answers_=None) -> RiskAssessment:
    return RiskAssessment.objects.create(
        agent=agent,
        assessed_by=by,
        assessed_at=at,
        answers=answers_ or MEDIUM,
        factor_scores={},
        score=score,
        tier=tier,
        valid_until=at + timedelta(days=days),
    )


# --- the questionnaire --------------------------------------------------------------------------


def test_every_factor_names_its_rule_answers_and_framework_items():
    assert list(FACTORS) == [
        "autonomy",
        "data_classes",
        "access",
        "destinations",
        "delegation",
        "oversight",
        "supply_chain",
    ]
    for factor in FACTORS.values():
        assert factor.title and factor.question and factor.rule and len(factor.answers) >= 3
        assert len(set(factor.values)) == len(factor.values)
        assert factor.nhi and set(factor.nhi) <= set(A.NHI_IDS), factor.code
        assert factor.asi and set(factor.asi) <= set(A.ASI_IDS), factor.code
        assert factor.nist and set(factor.nist) <= set(A.NIST_FUNCTIONS), factor.code
        assert factor.maestro and set(factor.maestro) <= set(A.MAESTRO_LAYERS), factor.code
        assert factor.framework_refs == factor.nhi + factor.asi
        assert min(a.points for a in factor.answers) == 0
    assert MAX_SCORE == 25
    assert A.ASI_IDS[0] == "ASI01" and A.ASI_IDS[-1] == "ASI10" and A.NHI_IDS[-1] == "NHI10"


def test_the_questionnaire_as_data_covers_every_score_once():
    q = A.questionnaire()
    assert [f["code"] for f in q["factors"]] == list(FACTORS)
    bounds = [(t["tier"], t["min_score"], t["max_score"]) for t in q["tiers"]]
    assert bounds == [("low", 0, 5), ("medium", 6, 11), ("high", 12, 17), ("critical", 18, 25)]
    autonomy = q["factors"][0]
    assert autonomy["answers"][2] == {
        "value": "autonomous",
        "label": "Fully autonomous",
        "points": 4,
        "help": "It acts on its own with nobody watching as it acts.",
    }
    assert autonomy["framework_refs"] == {
        "owasp_nhi": ["NHI5"],
        "owasp_asi": ["ASI01", "ASI09", "ASI10"],
        "nist_ai_rmf": ["MAP"],
        "csa_maestro": ["L3"],
    }
    assert {t["code"] for t in q["triggers"]} == {t.code for t in TRIGGERS}


# --- scoring: each factor -----------------------------------------------------------------------

SINGLE_ANSWERS = [
    (factor.code, answer.value, answer.points)
    for factor in FACTORS.values()
    if not factor.multiple
    for answer in factor.answers
]


@pytest.mark.parametrize(("code", "value", "points"), SINGLE_ANSWERS, ids=[f"{c}={v}" for c, v, _ in SINGLE_ANSWERS])
def test_each_answer_of_a_single_choice_factor_scores_its_points(code, value, points):
    scoring = risk_score(answers_clean(answers(**{code: value})))
    assert scoring.factor_scores[code] == points
    assert scoring.score == points
    assert sum(scoring.factor_scores.values()) == scoring.score


def test_the_single_choice_points_are_the_documented_ones():
    points = {(c, v): p for c, v, p in SINGLE_ANSWERS}
    assert points == {
        ("autonomy", "human_in_the_loop"): 0,
        ("autonomy", "human_on_the_loop"): 2,
        ("autonomy", "autonomous"): 4,
        ("access", "read"): 0,
        ("access", "write"): 2,
        ("access", "execute"): 4,
        ("destinations", "internal"): 0,
        ("destinations", "named_external"): 2,
        ("destinations", "open_external"): 3,
        ("delegation", "none"): 0,
        ("delegation", "bounded"): 2,
        ("delegation", "open"): 3,
        ("oversight", "continuous"): 0,
        ("oversight", "periodic"): 1,
        ("oversight", "none"): 3,
        ("supply_chain", "in_house"): 0,
        ("supply_chain", "vetted_third_party"): 1,
        ("supply_chain", "unvetted_third_party"): 3,
    }


@pytest.mark.parametrize(
    ("classes", "points"),
    [
        (["none"], 0),
        (["public"], 0),
        (["source_code"], 1),
        (["pii"], 2),
        (["confidential"], 2),
        (["production"], 3),
        (["payment"], 4),
        (["health"], 4),
        (["secrets"], 4),
        (["pii", "source_code", "public"], 2),  # the highest weight; one class weighing 2 or more
        (["pii", "confidential"], 2),  # two classes weighing 2: no breadth point yet
        (["pii", "confidential", "production"], 4),  # 3, plus 1 for three classes weighing 2 or more
        (["payment", "health", "secrets", "pii"], 5),  # 4 + 1, the most
    ],
)
def test_data_classes_score_the_heaviest_class_plus_one_for_breadth(classes, points):
    scoring = risk_score(answers_clean(answers(data_classes=classes)))
    assert scoring.factor_scores["data_classes"] == points == scoring.score


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0, "low"),
        (5, "low"),
        (6, "medium"),
        (11, "medium"),
        (12, "high"),
        (17, "high"),
        (18, "critical"),
        (25, "critical"),
    ],
)
def test_the_tier_thresholds(score, tier):
    assert tier_for_score(score) == tier


@pytest.mark.parametrize(
    ("given", "score", "tier"),
    [(LOW, 0, "low"), (MEDIUM, 6, "medium"), (HIGH, 12, "high"), (CRITICAL, 19, "critical")],
)
def test_the_sample_answers_score_as_documented(given, score, tier):
    scoring = risk_score(answers_clean(given))
    assert (scoring.score, scoring.score_tier, scoring.tier) == (score, tier, tier)


def test_the_highest_possible_answers_score_the_maximum():
    top = {f.code: f.answers[-1].value for f in FACTORS.values() if not f.multiple}
    top["data_classes"] = ["payment", "health", "secrets"]
    assert risk_score(answers_clean(top)).score == MAX_SCORE


# --- scoring: the critical combinations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "trigger", "score", "score_tier", "tier"),
    [
        (
            answers(autonomy="autonomous", access="execute", data_classes=["production"]),
            "autonomous_sensitive_execution",
            11,
            "medium",
            "high",
        ),
        (
            answers(autonomy="autonomous", access="execute", oversight="none"),
            "unsupervised_execution",
            11,
            "medium",
            "critical",
        ),
        (
            answers(data_classes=["secrets"], destinations="open_external"),
            "secrets_to_open_destinations",
            7,
            "medium",
            "high",
        ),
    ],
)
def test_a_critical_combination_sets_a_floor_on_the_tier(given, trigger, score, score_tier, tier):
    scoring = risk_score(answers_clean(given))
    assert [t.code for t in scoring.triggers] == [trigger]
    assert (scoring.score, scoring.score_tier, scoring.tier) == (score, score_tier, tier)


def test_a_floor_never_lowers_a_tier():
    given = {**CRITICAL, "data_classes": ["secrets", "payment", "health"]}
    scoring = risk_score(answers_clean(given))
    assert "secrets_to_open_destinations" in [t.code for t in scoring.triggers]
    assert scoring.tier == "critical"


@pytest.mark.parametrize(
    "given",
    [
        answers(autonomy="human_on_the_loop", access="execute", data_classes=["payment"], oversight="none"),
        answers(autonomy="autonomous", access="write", data_classes=["payment"], oversight="none"),
        answers(autonomy="autonomous", access="execute", data_classes=["pii"], oversight="periodic"),
        answers(data_classes=["secrets"], destinations="named_external"),
    ],
)
def test_near_misses_trigger_nothing(given):
    assert risk_score(answers_clean(given)).triggers == ()


# --- validating answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({k: v for k, v in LOW.items() if k != "oversight"}, "oversight", "Answer this factor"),
        (answers(autonomy=""), "autonomy", "Answer this factor"),
        (answers(data_classes=[]), "data_classes", "Answer this factor"),
        (answers(telepathy="yes"), "telepathy", "Unknown factor"),
        (answers(autonomy="sometimes"), "autonomy", "Unknown answer 'sometimes'"),
        (answers(access=["read"]), "access", "Unknown answer"),
        (answers(data_classes="pii"), "data_classes", "Give a list of answers."),
        (answers(data_classes=["pii", "astrology"]), "data_classes", "Unknown answer 'astrology'"),
        (answers(data_classes=["pii", "pii"]), "data_classes", "Give each answer once."),
        (answers(data_classes=["none", "pii"]), "data_classes", "cannot be combined"),
    ],
)
def test_bad_answers_are_refused_under_the_factor(given, field, message):
    with pytest.raises(ValidationError) as info:
        answers_clean(given)
    assert message in " ".join(info.value.message_dict[field])


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as info:
        answers_clean({"autonomy": "sometimes", "telepathy": 1})
    assert set(info.value.message_dict) == {*FACTORS, "telepathy"}


def test_answers_must_be_an_object():
    with pytest.raises(ValidationError) as info:
        answers_clean(["autonomous"])
    assert "answers" in info.value.message_dict


def test_multiple_answers_are_kept_in_the_questionnaires_order():
    assert answers_clean(answers(data_classes=["secrets", "pii"]))["data_classes"] == ["pii", "secrets"]


# --- recording an assessment --------------------------------------------------------------------


def test_an_iam_admin_records_an_assessment_and_the_agent_takes_its_tier(assessed, admin_user, admin_actor, trail):
    assessment = risk_assessment_record(actor=admin_actor, agent=assessed, answers=HIGH, notes="  Reviewed design.  ")
    assessed.refresh_from_db()
    assert assessed.risk_tier == "high"
    assert (assessment.tier, assessment.score, assessment.assessed_by, assessment.assessed_at) == (
        "high",
        12,
        admin_user,
        T0,
    )
    assert assessment.valid_until == T0 + timedelta(days=Policy.current().assessment_valid_days_high)
    assert assessment.factor_scores == {
        "autonomy": 4,
        "data_classes": 4,
        "access": 2,
        "destinations": 2,
        "delegation": 0,
        "oversight": 0,
        "supply_chain": 0,
    }
    assert assessment.notes == "Reviewed design."
    record = trail.one("risk_assessment.record", actor=admin_actor, obj=assessment)
    assert record.after["tier"] == "high" and record.after["score"] == 12 and record.after["agent"] == "invoice-agent"
    assert record.after["answers"] == HIGH and record.after["rules_version"] == A.RULES_VERSION
    tier_event = trail.one("agent.set_risk_tier", actor=admin_actor, obj=assessed)
    assert tier_event.before == {"risk_tier": "unassessed"}
    assert tier_event.after["risk_tier"] == "high" and tier_event.after["assessment"] == assessment.pk


def test_the_validity_follows_the_policy_for_the_tier(assessed, admin_actor):
    Policy.objects.filter(pk=Policy.current().pk).update(assessment_valid_days_critical=7)
    assessment = risk_assessment_record(actor=admin_actor, agent=assessed, answers=CRITICAL)
    assert assessment.tier == "critical" and assessment.valid_until == T0 + timedelta(days=7)


def test_the_same_tier_again_records_the_assessment_but_no_tier_change(assessed, admin_actor, trail):
    risk_assessment_record(actor=admin_actor, agent=assessed, answers=MEDIUM)
    trail.reset()
    risk_assessment_record(actor=admin_actor, agent=assessed, answers={**MEDIUM, "supply_chain": "vetted_third_party"})
    assert "risk_assessment.record" in trail.verbs() and "agent.set_risk_tier" not in trail.verbs()
    assert assessment_latest(agent=assessed).score == 7


def test_recording_resolves_the_reassessment_finding(assessed, admin_actor, trail):
    assessments_flag_due(now=T0)
    finding = Finding.objects.get(kind="reassessment_due", agent_id=assessed.pk)
    trail.reset()
    risk_assessment_record(actor=admin_actor, agent=assessed, answers=LOW)
    finding.refresh_from_db()
    assert finding.status == Finding.Status.RESOLVED and finding.resolved_by == admin_actor.label
    assert finding.resolution_note.startswith("Reassessed: low, valid until ")
    assert trail.one("finding.resolve", actor=admin_actor).object_id == str(finding.pk)


def test_the_new_tier_applies_to_the_attestation_cadence_at_once(assessed, admin_actor, trail):
    from governance.attestations import org_today

    assert assessed.next_attestation_due is None
    risk_assessment_record(actor=admin_actor, agent=assessed, answers=CRITICAL)
    assessed.refresh_from_db()
    days = Policy.current().attestation_days("critical")
    assert assessed.next_attestation_due == org_today(T0) + timedelta(days=days)
    assert trail.one("agent.attestation_due", actor=admin_actor, obj=assessed)


def test_the_new_tier_applies_to_future_grants_at_once(assessed, owner_actor, admin_actor):
    ToolFactory(agent=assessed, name="ledger", access_levels=["read", "write"])

    def request(hours):
        return grant_request(
            actor=owner_actor,
            agent=assessed,
            scopes=[ScopeRequest("ledger", "read")],
            purpose="Reconcile.",
            justification="Month end.",
            expires_at=T0 + timedelta(hours=hours),
        )

    assert grant_cap(assessed) == timedelta(hours=24)  # unassessed counts as high
    with pytest.raises(ValidationError):
        request(7 * 24)
    risk_assessment_record(actor=owner_actor, agent=assessed, answers=LOW)
    assessed.refresh_from_db()
    assert grant_cap(assessed) == timedelta(days=30)
    assert request(7 * 24).status == "pending"
    risk_assessment_record(actor=admin_actor, agent=assessed, answers=CRITICAL)
    assessed.refresh_from_db()
    assert grant_cap(assessed) == timedelta(hours=8)
    with pytest.raises(ValidationError, match="longer than the 8 h allowed for a critical-tier agent"):
        request(9)


# --- who may assess -----------------------------------------------------------------------------


def test_the_owner_and_the_backup_owner_may_assess(assessed, owner, other_owner):
    first = risk_assessment_record(actor=Actor.person(owner), agent=assessed, answers=LOW)
    second = risk_assessment_record(actor=Actor.person(other_owner), agent=assessed, answers=MEDIUM)
    assert (first.assessed_by, second.assessed_by) == (owner, other_owner)
    assert list(assessment_history(user=owner, agent=assessed)) == [second, first]


def test_an_owner_may_raise_or_keep_the_tier_but_not_lower_it(assessed, owner_actor, admin_actor, trail):
    risk_assessment_record(actor=owner_actor, agent=assessed, answers=HIGH)
    risk_assessment_record(actor=owner_actor, agent=assessed, answers={**HIGH, "oversight": "periodic"})
    error = refuses(
        PermissionDenied,
        risk_assessment_record,
        match="below Invoice agent's current high tier; only an IAM admin may lower a tier",
        actor=owner_actor,
        agent=assessed,
        answers=MEDIUM,
    )
    assert "These answers give medium" in str(error)
    lowered = risk_assessment_record(actor=admin_actor, agent=assessed, answers=LOW)
    assessed.refresh_from_db()
    assert lowered.tier == assessed.risk_tier == "low"


@pytest.mark.parametrize("role", ["owner", "backup_owner"])
def test_an_iam_admin_who_owns_or_backs_up_the_agent_may_not_lower_its_tier(admin_user, other_owner, role, trail):
    people = {"owner": other_owner, "backup_owner": other_owner, role: admin_user}
    agent = AgentFactory(**people, risk_tier="high", name="Ledger agent")
    error = refuses(
        PermissionDenied,
        risk_assessment_record,
        match="only an IAM admin may lower a tier, and not of an agent they own or back up",
        actor=Actor.person(admin_user),
        agent=agent,
        answers=LOW,
    )
    assert "These answers give low, below Ledger agent's current high tier" in str(error)
    kept = risk_assessment_record(actor=Actor.person(admin_user), agent=agent, answers=HIGH)
    agent.refresh_from_db()
    assert kept.tier == agent.risk_tier == "high"


def test_an_iam_admin_who_neither_owns_nor_backs_up_the_agent_may_lower_its_tier(admin_user, owner, other_owner):
    agent = AgentFactory(owner=owner, backup_owner=other_owner, risk_tier="high")
    lowered = risk_assessment_record(actor=Actor.person(admin_user), agent=agent, answers=LOW)
    agent.refresh_from_db()
    assert lowered.tier == agent.risk_tier == "low"


def test_an_owner_may_not_lower_a_tier_an_iam_admin_gave_at_registration(owner, owner_actor):
    agent = AgentFactory(owner=owner, risk_tier="high")
    refuses(PermissionDenied, risk_assessment_record, actor=owner_actor, agent=agent, answers=LOW)


@pytest.mark.parametrize("who", ["stranger", "auditor", "inactive_owner"])
def test_others_may_not_assess(assessed, auditor, who):
    if who == "stranger":
        actor = Actor.person(OwnerFactory())
    elif who == "auditor":
        actor = Actor.person(auditor)
    else:
        assessed.owner.is_active = False
        assessed.owner.save(update_fields=["is_active"])
        actor = Actor.person(assessed.owner)
    refuses(
        PermissionDenied,
        risk_assessment_record,
        match="Only IAM admins and the agent's owner or backup owner",
        actor=actor,
        agent=assessed,
        answers=LOW,
    )


def test_the_system_does_not_assess(assessed, system_actor):
    refuses(PermissionDenied, risk_assessment_record, actor=system_actor, agent=assessed, answers=LOW)


def test_an_integration_assesses_as_its_person(assessed, owner, trail):
    token, _ = issue_token(owner, ["inventory:write"])
    actor = Actor.integration(token)
    assessment = risk_assessment_record(actor=actor, agent=assessed, answers=MEDIUM)
    assert assessment.assessed_by == owner
    event = trail.one("risk_assessment.record", obj=assessment)
    assert (event.actor_type, event.actor_id) == ("integration", str(token.pk))


def test_a_decommissioned_agent_is_not_assessed(owner, admin_actor):
    gone = AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED)
    refuses(Conflict, risk_assessment_record, match="decommissioned", actor=admin_actor, agent=gone, answers=LOW)


def test_a_proposed_agent_may_be_assessed_before_activation(owner, owner_actor):
    proposed = AgentFactory(owner=owner, state=Agent.State.PROPOSED)
    assert risk_assessment_record(actor=owner_actor, agent=proposed, answers=LOW).tier == "low"


def test_bad_answers_write_nothing(assessed, admin_actor):
    error = refuses(
        ValidationError,
        risk_assessment_record,
        field="delegation",
        actor=admin_actor,
        agent=assessed,
        answers=answers(delegation="sometimes"),
    )
    assert list(error.message_dict) == ["delegation"]
    error = refuses(
        ValidationError,
        risk_assessment_record,
        field="notes",
        actor=admin_actor,
        agent=assessed,
        answers=answers(access="root"),
        notes="x" * 5001,
    )
    assert set(error.message_dict) == {"access", "notes"}
    assert risk_assessment_record(actor=admin_actor, agent=assessed, answers=LOW, notes="x" * 5000).notes


def test_permission_is_judged_before_the_answers(assessed, auditor):
    refuses(PermissionDenied, risk_assessment_record, actor=Actor.person(auditor), agent=assessed, answers={})


# --- prefilled answers --------------------------------------------------------------------------


def test_suggested_answers_come_from_the_inventory(owner):
    agent = AgentFactory(owner=owner, autonomy_level="human_on_the_loop", data_classes=["pii"])
    assert answers_suggested(agent) == {"autonomy": "human_on_the_loop", "data_classes": ["pii"]}
    ToolFactory(agent=agent, access_levels=["read", "write"], data_classes=["payment"])
    ToolFactory(agent=agent, access_levels=["read"], destination="external")
    assert answers_suggested(agent) == {
        "autonomy": "human_on_the_loop",
        "data_classes": ["pii", "payment"],
        "access": "write",
        "destinations": "named_external",
    }


def test_suggested_answers_start_from_the_latest_assessment(owner, owner_actor):
    agent = AgentFactory(owner=owner, autonomy_level="autonomous")
    risk_assessment_record(actor=owner_actor, agent=agent, answers={**HIGH, "supply_chain": "vetted_third_party"})
    suggested = answers_suggested(agent)
    assert suggested == {**HIGH, "supply_chain": "vetted_third_party"}
    ToolFactory(agent=agent, access_levels=["execute"], destination="internal")
    assert answers_suggested(agent)["access"] == "execute"
    assert answers_suggested(agent)["destinations"] == "internal"


# --- reads --------------------------------------------------------------------------------------


def test_history_is_newest_first_and_limited_to_visible_agents(assessed, owner, other_owner, auditor, admin_user):
    old = make_assessment(assessed, owner, at=T0 - timedelta(days=30))
    new = make_assessment(assessed, owner, at=T0 - timedelta(days=1))
    elsewhere = AgentFactory(owner=other_owner)
    make_assessment(elsewhere, other_owner)
    assert list(assessment_history(user=owner, agent=assessed)) == [new, old]
    assert list(assessment_history(user=auditor, agent=assessed)) == [new, old]
    assert list(assessment_history(user=owner, agent=elsewhere)) == []
    assert assessment_latest(agent=assessed) == new
    assert A.assessment_list(user=admin_user).count() == 3
    assert A.assessment_list(user=owner).count() == 2


def test_the_assessments_in_force(owner, other_owner, auditor, admin_user):
    live = AgentFactory(owner=owner, name="A live")
    make_assessment(live, owner, at=T0 - timedelta(days=100), days=365)
    latest = make_assessment(live, owner, at=T0 - timedelta(days=10), days=30)
    lapsed = AgentFactory(owner=owner, name="B lapsed")
    make_assessment(lapsed, owner, at=T0 - timedelta(days=40), days=30)
    make_assessment(lapsed, owner, at=T0 - timedelta(days=400), days=3650)  # older, still "valid", superseded
    suspended = AgentFactory(owner=owner, name="C suspended", state=Agent.State.SUSPENDED)
    suspended_one = make_assessment(suspended, owner)
    gone = AgentFactory(owner=owner, name="D gone", state=Agent.State.DECOMMISSIONED)
    make_assessment(gone, owner)
    proposed = AgentFactory(owner=owner, name="E proposed", state=Agent.State.PROPOSED)
    make_assessment(proposed, owner)
    AgentFactory(owner=owner, name="F never")
    theirs = AgentFactory(owner=other_owner, name="G theirs")
    their_one = make_assessment(theirs, other_owner)
    assert list(assessments_in_force(user=owner, now=T0)) == [latest, suspended_one]
    assert list(assessments_in_force(user=auditor, now=T0)) == [latest, suspended_one, their_one]
    assert list(assessments_in_force(user=admin_user, now=T0 + timedelta(days=25))) == [suspended_one, their_one]


# --- the reassessment job -----------------------------------------------------------------------


def reassessment_findings(**filters):
    return Finding.objects.filter(kind="reassessment_due", **filters)


def test_the_job_flags_live_agents_never_assessed_or_lapsed(owner, frozen_now, trail):
    never = AgentFactory(owner=owner, name="Never")
    lapsing = AgentFactory(owner=owner, name="Lapsing", risk_tier="low")
    make_assessment(lapsing, owner, at=T0 - timedelta(days=300), days=310, tier="low")
    fresh = AgentFactory(owner=owner, name="Fresh", risk_tier="medium")
    make_assessment(fresh, owner)
    AgentFactory(owner=owner, name="Proposed", state=Agent.State.PROPOSED)
    AgentFactory(owner=owner, name="Gone", state=Agent.State.DECOMMISSIONED)
    suspended = AgentFactory(owner=owner, name="Suspended", state=Agent.State.SUSPENDED)

    assert assessments_flag_due(now=T0) == {"opened": 2, "refreshed": 0, "resolved": 0, "reopened": 0}
    flagged = {f.agent_id: f for f in reassessment_findings(status="open")}
    assert set(flagged) == {never.pk, suspended.pk}
    assert flagged[never.pk].severity == "high" and "never been assessed" in flagged[never.pk].detail
    assert flagged[never.pk].framework_refs == ["NHI1"]
    assert [e.actor_label for e in trail.new()] == ["reassessment job", "reassessment job"]

    later = T0 + timedelta(days=10)
    assert assessments_flag_due(now=later)["opened"] == 1
    lapsed = reassessment_findings(agent_id=lapsing.pk).get()
    assert lapsed.severity == "medium" and lapsed.first_seen_at == later
    assert lapsed.evidence["valid_until"] == "2026-11-25T06:00:00Z"
    assert not reassessment_findings(agent_id=fresh.pk).exists()


def test_the_job_run_twice_changes_nothing_more(owner, trail):
    AgentFactory(owner=owner)
    first = assessments_flag_due(now=T0)
    events = len(trail.new())
    again = assessments_flag_due(now=T0)
    assert (first["opened"], again) == (1, {"opened": 0, "refreshed": 1, "resolved": 0, "reopened": 0})
    assert len(trail.new()) == events
    assert reassessment_findings().count() == 1


def test_the_finding_resolves_itself_once_a_valid_assessment_exists(owner, frozen_now):
    agent = AgentFactory(owner=owner)
    assessments_flag_due(now=T0)
    make_assessment(agent, owner)  # recorded without the service (e.g. restored)
    assert assessments_flag_due(now=T0)["resolved"] == 1
    assert reassessment_findings(agent_id=agent.pk).get().status == "resolved"


def test_the_finding_resolves_when_the_agent_is_no_longer_live(owner):
    agent = AgentFactory(owner=owner)
    assessments_flag_due(now=T0)
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.DECOMMISSIONED)
    assert assessments_flag_due(now=T0)["resolved"] == 1


def test_a_lapsed_assessment_reopens_the_question(owner, owner_actor, frozen_now):
    agent = AgentFactory(owner=owner)
    assessment = risk_assessment_record(actor=owner_actor, agent=agent, answers=CRITICAL)
    assessments_flag_due(now=assessment.valid_until - timedelta(seconds=1))
    assert not reassessment_findings().exists()
    assessments_flag_due(now=assessment.valid_until)
    assert reassessment_findings(status="open", agent_id=agent.pk).get().severity == "high"


def test_the_job_is_registered_and_runs_by_name(owner, frozen_now, capsys):
    job = JOBS["flag-due-reassessments"]
    assert job.finding_kinds == ("reassessment_due",)
    assert job.task == "governance.tasks.flag_due_reassessments"
    AgentFactory(owner=owner)
    assert job_run(job=job, now=T0)["opened"] == 1
    call_command("run_job", "flag-due-reassessments", "--now", "2026-11-15T06:00:00Z")
    assert "flag-due-reassessments" in capsys.readouterr().out
    assert reassessment_findings().count() == 1


def test_the_celery_task_runs_the_job_as_of_now(owner, frozen_now):
    from governance.tasks import flag_due_reassessments

    AgentFactory(owner=owner)
    assert flag_due_reassessments()["opened"] == 1
    assert reassessment_findings().get().first_seen_at == T0
