"""Risk assessments: the questionnaire, its scoring rules, recording an assessment, the reads shared
by the web UI and the REST API, and the job that flags agents due for reassessment.

The questionnaire (``FACTORS``) has seven factors. Each answer scores the points printed next to it,
and each factor names the framework items it answers: OWASP Non-Human Identities Top 10 (2025)
ids ``NHI1``–``NHI10``, OWASP Top 10 for Agentic Applications (2026) ids ``ASI01``–``ASI10``,
NIST AI RMF 1.0 functions (``GOVERN``, ``MAP``, ``MEASURE``, ``MANAGE``) and CSA MAESTRO layers
(``L1``–``L7``, ``MAESTRO_LAYERS``).

Scoring, rules version 1 (``RULES_VERSION``):

- A single-choice factor scores its answer's points. ``data_classes`` (several answers) scores the
  highest weight among the data classes reached, plus 1 when three or more classes weighing 2 or
  more are reached (breadth); ``none`` scores 0 and stands alone.
- The score is the sum of the factor scores, 0 to ``MAX_SCORE`` (25).
- Tier by score (``TIER_THRESHOLDS``): low 0–5, medium 6–11, high 12–17, critical 18–25.
- Critical combinations (``TRIGGERS``) raise the tier to a floor whatever the score: autonomous
  + execute + payment, health, secrets or production data ⇒ at least high; autonomous + execute
  + no oversight ⇒ critical; secrets + open external destinations ⇒ at least high.

An agent's risk tier is its latest assessment's (``risk_assessment_record`` sets it in the same
transaction); an assessment holds ``Policy.assessment_valid_days(tier)`` days, after which a
``reassessment_due`` finding opens (``assessments_flag_due``). The tier sets grant caps and the
attestation cadence at once.

The ``AssessmentFilterSet`` (agent, tier, ordering) is shared by the web UI and the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django_filters
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from governance.audit import Actor, audit_record, to_json
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.filtering import StrictFilterSet, ordering_filter
from governance.findings import Condition, findings_resolve_for, findings_sync
from governance.models import Finding, Policy, RiskAssessment, RiskTier
from governance.roles import is_iam_admin
from inventory.filters import agent_filter
from inventory.models import AccessLevel, Agent, DataClass, Tool
from inventory.permissions import is_owner_of, visible_agents_q

RULES_VERSION = 1

# --- the frameworks' vocabularies ---------------------------------------------------------------

#: NIST AI Risk Management Framework 1.0 functions.
NIST_FUNCTIONS = ("GOVERN", "MAP", "MEASURE", "MANAGE")

#: CSA MAESTRO (Multi-Agent Environment, Security, Threat, Risk and Outcome) layers.
MAESTRO_LAYERS = {
    "L1": "Foundation models",
    "L2": "Data operations",
    "L3": "Agent frameworks",
    "L4": "Deployment and infrastructure",
    "L5": "Evaluation and observability",
    "L6": "Security and compliance",
    "L7": "Agent ecosystem",
}

NHI_IDS = tuple(f"NHI{i}" for i in range(1, 11))
ASI_IDS = tuple(f"ASI{i:02d}" for i in range(1, 11))


# --- the questionnaire --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer to a factor: its stored ``value``, what the assessor reads, the points it scores."""

    value: str
    label: str
    points: int
    help: str = ""


@dataclass(frozen=True)
class Factor:
    """One factor of the questionnaire.

    ``rule`` says in words how the factor is scored (shown to the assessor). A single-choice factor
    takes exactly one answer and scores its points; a ``multiple`` factor takes a non-empty list and
    scores the highest of their points, plus 1 when three or more of them score 2 or more, at most
    ``MULTIPLE_CAP``. Framework references: ``nhi`` (OWASP NHI Top 10 2025), ``asi`` (OWASP Top 10
    for Agentic Applications 2026), ``nist`` (NIST AI RMF functions), ``maestro`` (CSA MAESTRO layers).
    """

    code: str
    title: str
    question: str
    rule: str
    answers: tuple[Answer, ...]
    nhi: tuple[str, ...]
    asi: tuple[str, ...]
    nist: tuple[str, ...]
    maestro: tuple[str, ...]
    multiple: bool = False

    def answer(self, value: str) -> Answer | None:
        """The answer whose value is ``value``, or None."""
        return next((a for a in self.answers if a.value == value), None)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(a.value for a in self.answers)

    @property
    def framework_refs(self) -> tuple[str, ...]:
        """The OWASP ids this factor answers (NHI, then ASI), as findings carry them."""
        return self.nhi + self.asi

    @property
    def max_points(self) -> int:
        top = max(a.points for a in self.answers)
        return min(MULTIPLE_CAP, top + 1) if self.multiple else top

    def score(self, answer) -> int:
        """Points for a validated ``answer`` (a value, or a list of values for a ``multiple`` factor)."""
        if not self.multiple:
            return self.answer(answer).points
        weights = [self.answer(v).points for v in answer]
        broad = sum(1 for w in weights if w >= 2) >= 3
        return min(MULTIPLE_CAP, max(weights) + (1 if broad else 0))


#: The most a ``multiple`` factor scores: for data classes, the highest weight (4) plus 1 for breadth.
MULTIPLE_CAP = 5
#: Data classes whose reach, with autonomous execution, puts an agent at least at high.
SENSITIVE_DATA_CLASSES = frozenset({DataClass.PAYMENT, DataClass.HEALTH, DataClass.SECRETS, DataClass.PRODUCTION})
DATA_CLASS_WEIGHTS = {
    DataClass.SECRETS: 4,
    DataClass.PAYMENT: 4,
    DataClass.HEALTH: 4,
    DataClass.PRODUCTION: 3,
    DataClass.PII: 2,
    DataClass.CONFIDENTIAL: 2,
    DataClass.SOURCE_CODE: 1,
    DataClass.PUBLIC: 0,
}
NO_DATA = "none"

FACTORS: dict[str, Factor] = {
    f.code: f
    for f in [
        Factor(
            code="autonomy",
            title="Autonomy",
            question="Who decides each consequential action the agent takes?",
            rule="Human in the loop 0, human on the loop 2, fully autonomous 4.",
            answers=(
                Answer("human_in_the_loop", "Human in the loop", 0, "A person approves each consequential action."),
                Answer(
                    "human_on_the_loop", "Human on the loop", 2, "It acts on its own; a person watches and can stop it."
                ),
                Answer("autonomous", "Fully autonomous", 4, "It acts on its own with nobody watching as it acts."),
            ),
            nhi=("NHI5",),
            asi=("ASI01", "ASI09", "ASI10"),
            nist=("MAP",),
            maestro=("L3",),
        ),
        Factor(
            code="data_classes",
            title="Data classes reached",
            question="Which kinds of data can the agent read or change, through any of its tools?",
            rule="The highest weight among the classes reached — secrets, payment or health 4, production "
            "systems 3, personal or confidential data 2, source code 1, public data 0 — plus 1 when three or "
            "more classes weighing 2 or more are reached; at most 5. \u201cNone of these\u201d scores 0.",
            answers=(
                *(Answer(v, label, DATA_CLASS_WEIGHTS[v]) for v, label in DataClass.choices),
                Answer(NO_DATA, "None of these", 0, "It reaches no data beyond its own configuration."),
            ),
            nhi=("NHI5",),
            asi=("ASI02", "ASI03"),
            nist=("MAP",),
            maestro=("L2",),
            multiple=True,
        ),
        Factor(
            code="access",
            title="Write or execute scopes",
            question="What is the strongest access any of its tools gives it?",
            rule="Read only 0, write 2, execute 4.",
            answers=(
                Answer(AccessLevel.READ, "Read only", 0, "It only reads."),
                Answer(AccessLevel.WRITE, "Write", 2, "It creates, changes or deletes data."),
                Answer(
                    AccessLevel.EXECUTE, "Execute", 4, "It runs code or commands, deploys, or moves money or resources."
                ),
            ),
            nhi=("NHI5",),
            asi=("ASI02", "ASI05"),
            nist=("MAP",),
            maestro=("L3", "L4"),
        ),
        Factor(
            code="destinations",
            title="External destinations",
            question="Where can its calls and the data in them go?",
            rule="Internal only 0, named external services 2, any external destination 3.",
            answers=(
                Answer("internal", "Internal only", 0, "Every tool stays inside the organisation."),
                Answer("named_external", "Named external services", 2, "Known vendor APIs, fixed endpoints."),
                Answer(
                    "open_external", "Any external destination", 3, "Web browsing, any URL, mail or messages to anyone."
                ),
            ),
            nhi=("NHI2",),
            asi=("ASI01", "ASI02"),
            nist=("MAP",),
            maestro=("L7",),
        ),
        Factor(
            code="delegation",
            title="Delegation to other agents",
            question="Does the agent hand work, and its authority, to other agents?",
            rule="No 0, to named agents under narrower grants 2, to any agent it finds or spawns 3.",
            answers=(
                Answer("none", "No", 0, "It works alone."),
                Answer("bounded", "To named agents", 2, "Through delegation grants that narrow its own."),
                Answer("open", "To any agent", 3, "It discovers, calls or spawns other agents at will."),
            ),
            nhi=("NHI5", "NHI9"),
            asi=("ASI03", "ASI07", "ASI08"),
            nist=("MAP",),
            maestro=("L7",),
        ),
        Factor(
            code="oversight",
            title="Human oversight",
            question="How are its actions watched, and how fast can a person stop it?",
            rule="Monitored with a tested stop 0, reviewed from time to time 1, no routine review 3.",
            answers=(
                Answer(
                    "continuous",
                    "Monitored, tested stop",
                    0,
                    "Actions are logged and alerted on; a person can stop it at once.",
                ),
                Answer("periodic", "Reviewed from time to time", 1, "Actions are logged and reviewed now and then."),
                Answer("none", "No routine review", 3, "Nobody reviews its actions and stopping it is untested."),
            ),
            nhi=("NHI10",),
            asi=("ASI09", "ASI10"),
            nist=("MEASURE", "MANAGE"),
            maestro=("L5",),
        ),
        Factor(
            code="supply_chain",
            title="Model and tool supply chain",
            question="Where do its model, its tools and their packages come from?",
            rule="In house or vetted and pinned 0, third party under contract and pinned 1, unvetted or "
            "unpinned third party 3.",
            answers=(
                Answer("in_house", "In house or vetted", 0, "Built or reviewed here; versions pinned."),
                Answer("vetted_third_party", "Third party, under contract", 1, "Known vendors; versions pinned."),
                Answer(
                    "unvetted_third_party",
                    "Unvetted third party",
                    3,
                    "Community MCP servers, packages fetched unpinned (npx -y, uvx), models without review.",
                ),
            ),
            nhi=("NHI3",),
            asi=("ASI04",),
            nist=("GOVERN",),
            maestro=("L1", "L3"),
        ),
    ]
}

MAX_SCORE = sum(f.max_points for f in FACTORS.values())

#: The lowest score of each tier, highest tier first.
TIER_THRESHOLDS = ((RiskTier.CRITICAL, 18), (RiskTier.HIGH, 12), (RiskTier.MEDIUM, 6), (RiskTier.LOW, 0))
TIER_RANK = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2, RiskTier.CRITICAL: 3}


@dataclass(frozen=True)
class Trigger:
    """A critical combination of answers that sets a floor on the tier, whatever the score."""

    code: str
    description: str
    at_least: str

    def applies(self, answers: Mapping) -> bool:
        """True if validated ``answers`` hold this combination."""
        autonomous_execution = answers["autonomy"] == "autonomous" and answers["access"] == AccessLevel.EXECUTE
        if self.code == "autonomous_sensitive_execution":
            return autonomous_execution and bool(SENSITIVE_DATA_CLASSES & set(answers["data_classes"]))
        if self.code == "unsupervised_execution":
            return autonomous_execution and answers["oversight"] == "none"
        if self.code == "secrets_to_open_destinations":
            return DataClass.SECRETS in answers["data_classes"] and answers["destinations"] == "open_external"
        raise ValueError(f"unknown trigger {self.code!r}")


TRIGGERS = (
    Trigger(
        "autonomous_sensitive_execution",
        "Fully autonomous, with execute access, reaching payment, health, secrets or production data.",
        RiskTier.HIGH,
    ),
    Trigger(
        "unsupervised_execution",
        "Fully autonomous, with execute access, and no routine review of its actions.",
        RiskTier.CRITICAL,
    ),
    Trigger(
        "secrets_to_open_destinations",
        "Reaches secrets and can send data to any external destination.",
        RiskTier.HIGH,
    ),
)


def triggers_of(answers: Mapping) -> tuple[Trigger, ...]:
    """The critical combinations that validated ``answers`` hold (none for answers that do not cover
    every factor, e.g. of an older questionnaire)."""
    if not set(FACTORS) <= set(answers):
        return ()
    return tuple(t for t in TRIGGERS if t.applies(answers))


def tier_for_score(score: int) -> str:
    """The tier a score alone gives (``TIER_THRESHOLDS``)."""
    return next(tier for tier, lowest in TIER_THRESHOLDS if score >= lowest)


@dataclass(frozen=True)
class Scoring:
    """The outcome of a set of answers: points per factor, their sum, the tier the score gives, the
    triggers that hold and the tier after their floors."""

    factor_scores: dict[str, int]
    score: int
    score_tier: str
    triggers: tuple[Trigger, ...]
    tier: str


def answers_clean(answers) -> dict:
    """Validate ``answers`` (factor code → value, or list of values for ``data_classes``) and return
    them normalised (lists in the questionnaire's order).

    Every factor must be answered with one of its answers; ``multiple`` factors with a non-empty
    list of distinct answers in which ``none`` stands alone. Raises ``ValidationError`` keyed by
    factor code (an unknown factor under its own name), all problems at once.
    """
    if not isinstance(answers, Mapping):
        raise ValidationError({"answers": "Give the answers as an object: factor code → answer."})
    errors: dict[str, str] = {}
    clean: dict = {}
    for code in answers:
        if code not in FACTORS:
            errors[str(code)] = f"Unknown factor. The factors are: {', '.join(FACTORS)}."
    for code, factor in FACTORS.items():
        if code not in answers or answers[code] in (None, "", []):
            errors[code] = f"Answer this factor: {', '.join(factor.values)}."
            continue
        given = answers[code]
        if factor.multiple:
            if not isinstance(given, list) or not all(isinstance(v, str) for v in given):
                errors[code] = "Give a list of answers."
            elif unknown := [v for v in given if factor.answer(v) is None]:
                errors[code] = (
                    f"Unknown answer {', '.join(map(repr, unknown))}. Choose from: {', '.join(factor.values)}."
                )
            elif len(set(given)) != len(given):
                errors[code] = "Give each answer once."
            elif NO_DATA in given and len(given) > 1:
                errors[code] = "\u201cNone of these\u201d cannot be combined with a data class."
            else:
                clean[code] = [v for v in factor.values if v in given]
        elif not isinstance(given, str) or factor.answer(given) is None:
            errors[code] = f"Unknown answer {given!r}. Choose one of: {', '.join(factor.values)}."
        else:
            clean[code] = given
    if errors:
        raise ValidationError(errors)
    return clean


def risk_score(answers: Mapping) -> Scoring:
    """Score validated ``answers`` (from ``answers_clean``) by the rules of this module's docstring."""
    factor_scores = {code: factor.score(answers[code]) for code, factor in FACTORS.items()}
    score = sum(factor_scores.values())
    score_tier = tier_for_score(score)
    fired = triggers_of(answers)
    tier = max([score_tier, *(t.at_least for t in fired)], key=TIER_RANK.__getitem__)
    return Scoring(factor_scores=factor_scores, score=score, score_tier=score_tier, triggers=fired, tier=tier)


def questionnaire() -> dict:
    """The questionnaire as plain data (the API's ``/assessments/factors/``): every factor with its
    question, scoring rule, answers and points, framework references; the tier thresholds and the
    critical combinations."""
    bounds = []
    upper = MAX_SCORE
    for tier, lowest in TIER_THRESHOLDS:
        bounds.append({"tier": str(tier), "min_score": lowest, "max_score": upper})
        upper = lowest - 1
    return {
        "rules_version": RULES_VERSION,
        "max_score": MAX_SCORE,
        "tiers": list(reversed(bounds)),
        "triggers": [{"code": t.code, "description": t.description, "at_least": str(t.at_least)} for t in TRIGGERS],
        "factors": [
            {
                "code": f.code,
                "title": f.title,
                "question": f.question,
                "rule": f.rule,
                "multiple": f.multiple,
                "max_points": f.max_points,
                "answers": [
                    {"value": str(a.value), "label": a.label, "points": a.points, "help": a.help} for a in f.answers
                ],
                "framework_refs": {
                    "owasp_nhi": list(f.nhi),
                    "owasp_asi": list(f.asi),
                    "nist_ai_rmf": list(f.nist),
                    "csa_maestro": list(f.maestro),
                },
            }
            for f in FACTORS.values()
        ],
    }


def answers_suggested(agent: Agent) -> dict:
    """Answers to start an assessment of ``agent`` from: its latest assessment's, overridden by what
    the inventory knows — its autonomy level, its data classes and its tools' (joined), the strongest
    access level of its tools and whether any tool's destination is external. Factors nothing is known
    about are left out, for the assessor to answer. Two queries."""
    suggested: dict = {}
    latest = assessment_latest(agent=agent)
    if latest is not None:
        suggested.update({k: v for k, v in latest.answers.items() if k in FACTORS})
    suggested["autonomy"] = agent.autonomy_level
    tools = list(Tool.objects.filter(agent_id=agent.pk).values("access_levels", "data_classes", "destination"))
    reached = set(agent.data_classes) | {dc for t in tools for dc in t["data_classes"]}
    if reached:
        suggested["data_classes"] = [v for v in FACTORS["data_classes"].values if v in reached]
    if tools:
        levels = {level for t in tools for level in t["access_levels"]}
        order = FACTORS["access"].values
        strongest = max((order.index(level) for level in levels if level in order), default=0)
        suggested["access"] = order[strongest]
        external = any(t["destination"] == Tool.Destination.EXTERNAL for t in tools)
        if external and suggested.get("destinations") != "open_external":
            suggested["destinations"] = "named_external"
        elif not external:
            suggested["destinations"] = "internal"
    return suggested


# --- who may assess -----------------------------------------------------------------------------


def assess_refusal(user, agent: Agent) -> Exception | None:
    """Why ``user`` may not assess ``agent`` now — the exception to raise — or None if they may.

    IAM admins assess any agent; its owner and backup owner (active people) assess it too, though
    not to a lower tier, even when they are IAM admins (``risk_assessment_record`` judges that once
    the answers are scored);
    auditors and everyone else never: ``PermissionDenied``. A decommissioned agent is no longer
    assessed: ``Conflict``.
    """
    if not (is_iam_admin(user) or is_owner_of(user, agent)):
        return PermissionDenied("Only IAM admins and the agent's owner or backup owner may assess its risk.")
    if agent.state == Agent.State.DECOMMISSIONED:
        return Conflict("A decommissioned agent is no longer assessed.")
    return None


def can_assess(user, agent: Agent) -> bool:
    """True if ``user`` may assess ``agent`` now (``assess_refusal`` finds nothing to refuse)."""
    return assess_refusal(user, agent) is None


# --- recording an assessment --------------------------------------------------------------------


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _answers_and_notes_clean(answers, notes: str) -> dict:
    """``answers_clean(answers)``, with a ``notes`` over 5000 characters refused in the same error."""
    errors = {}
    try:
        clean = answers_clean(answers)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if len(notes) > 5000:
        errors["notes"] = ["Keep the notes to 5000 characters or fewer."]
    if errors:
        raise ValidationError(errors)
    return clean


def risk_assessment_record(*, actor: Actor, agent: Agent, answers: dict, notes: str = "") -> RiskAssessment:
    """Record a risk assessment of ``agent`` and make its tier the agent's, as of now (UTC).

    ``answers``: factor code → answer (a list for ``data_classes``), every factor required
    (``answers_clean``). The score and tier follow the rules of this module (version
    ``RULES_VERSION``); the assessment holds ``Policy.assessment_valid_days(tier)`` days. In one
    transaction: the assessment (audited ``risk_assessment.record`` by ``actor``), the agent's
    ``risk_tier`` when it changes (audited ``agent.set_risk_tier`` by ``actor``), the agent's open
    ``reassessment_due`` finding resolved, and the new tier applied to the attestation cadence
    (``governance.attestations.attestation_cadence_apply``). Future grants read the new tier at once.

    Who: IAM admins, any agent; the agent's owner or backup owner, but not to a tier below the
    current one (an unassessed agent has none) — separation of duties, so this holds for an owner or
    backup owner who is also an IAM admin; only an IAM admin who is neither may lower a tier. Raises
    PermissionDenied (anyone else, auditors, a lowering by an owner or backup owner), Conflict
    (decommissioned agent), ValidationError (answers keyed by factor code; ``notes`` over 5000
    characters). Nothing is written on a refusal.
    """
    from governance.attestations import attestation_cadence_apply

    user = actor.user
    if actor.is_system or user is None:
        raise PermissionDenied("A risk assessment is made by a person.")
    notes = (notes or "").strip()
    now = timezone.now()
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        refusal = assess_refusal(user, agent)
        if refusal is not None:
            raise refusal
        # Separation of duties: whoever owns or backs up the agent may not lower its tier, IAM admin or not.
        may_lower = is_iam_admin(user) and not is_owner_of(user, agent)
        clean = _answers_and_notes_clean(answers, notes)
        scoring = risk_score(clean)
        current = agent.risk_tier
        if not may_lower and current in TIER_RANK and TIER_RANK[scoring.tier] < TIER_RANK[current]:
            raise PermissionDenied(
                f"These answers give {scoring.tier}, below {agent}'s current {current} tier; only an IAM admin "
                "may lower a tier, and not of an agent they own or back up. Nothing was recorded."
            )
        policy = Policy.current()
        assessment = RiskAssessment(
            agent=agent,
            assessed_by=user,
            assessed_at=now,
            answers=clean,
            factor_scores=scoring.factor_scores,
            score=scoring.score,
            tier=scoring.tier,
            notes=notes,
            valid_until=now + timedelta(days=policy.assessment_valid_days(scoring.tier)),
        )
        assessment.full_clean()
        assessment.save()
        audit_record(
            actor=actor,
            verb="risk_assessment.record",
            obj=assessment,
            after=to_json(
                {
                    "agent": agent.slug,
                    "answers": clean,
                    "factor_scores": scoring.factor_scores,
                    "score": scoring.score,
                    "score_tier": scoring.score_tier,
                    "triggers": [t.code for t in scoring.triggers],
                    "tier": scoring.tier,
                    "valid_until": assessment.valid_until,
                    "rules_version": RULES_VERSION,
                    "notes": notes,
                }
            ),
            at=now,
        )
        if current != scoring.tier:
            agent.risk_tier = scoring.tier
            agent.updated_at = now
            agent.save(update_fields=["risk_tier", "updated_at"])
            audit_record(
                actor=actor,
                verb="agent.set_risk_tier",
                obj=agent,
                before={"risk_tier": current},
                after={
                    "risk_tier": scoring.tier,
                    "assessment": assessment.pk,
                    "reason": f"Risk assessment #{assessment.pk}: score {scoring.score} of {MAX_SCORE}.",
                },
                at=now,
            )
        findings_resolve_for(
            actor=actor,
            subject=agent,
            kind="reassessment_due",
            now=now,
            note=f"Reassessed: {scoring.tier}, valid until {_fmt(assessment.valid_until)}.",
        )
        attestation_cadence_apply(agent=agent, now=now, actor=actor)
    return assessment


# --- reads --------------------------------------------------------------------------------------


def assessment_list(*, user) -> QuerySet[RiskAssessment]:
    """Risk assessments of the agents ``user`` may see (all for IAM admins and auditors), with the
    agent and the assessor joined; newest first, ties broken by id."""
    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return (
        RiskAssessment.objects.filter(agent__in=visible)
        .select_related("agent", "assessed_by")
        .order_by("-assessed_at", "-id")
    )


def assessment_get(*, user, pk: int) -> RiskAssessment:
    """One assessment visible to ``user``; raises ``RiskAssessment.DoesNotExist`` otherwise."""
    return assessment_list(user=user).get(pk=pk)


def assessment_history(*, user, agent: Agent) -> QuerySet[RiskAssessment]:
    """Every assessment of ``agent`` visible to ``user``, newest first (the first is the one that set
    the agent's tier)."""
    return assessment_list(user=user).filter(agent_id=agent.pk)


def assessment_latest(*, agent: Agent) -> RiskAssessment | None:
    """The latest assessment of ``agent`` (the one its tier comes from), or None."""
    return RiskAssessment.objects.filter(agent_id=agent.pk).order_by("-assessed_at", "-id").first()


def _latest_of_agent(field: str = "pk") -> Subquery:
    latest = RiskAssessment.objects.filter(agent_id=OuterRef("pk")).order_by("-assessed_at", "-id")
    return Subquery(latest.values(field)[:1])


def assessments_in_force(*, user, now: datetime) -> QuerySet[RiskAssessment]:
    """The assessments in force at ``now`` (aware, UTC): for each live (active or suspended) agent
    visible to ``user``, its latest assessment, if that is still valid (``valid_until > now``).

    Agents never assessed, or whose latest assessment has lapsed, have none. Agent and assessor
    joined; ordered by agent name, then id.
    """
    latest_ids = (
        Agent.objects.filter(visible_agents_q(user), state__in=Agent.LIVE_STATES)
        .annotate(latest_assessment_id=_latest_of_agent())
        .values("latest_assessment_id")
    )
    return (
        RiskAssessment.objects.filter(pk__in=latest_ids, valid_until__gt=now)
        .select_related("agent", "assessed_by")
        .order_by("agent__name", "agent_id", "id")
    )


class AssessmentFilterSet(StrictFilterSet):
    """``agent`` (slug), ``tier`` (repeatable); ``ordering`` by assessed, score, valid_until."""

    agent = agent_filter()
    tier = django_filters.MultipleChoiceFilter(choices=RiskTier.choices)
    ordering = ordering_filter({"assessed": "assessed_at", "score": "score", "valid_until": "valid_until"})

    class Meta:
        model = RiskAssessment
        fields = ["agent", "tier"]


# --- the reassessment job -----------------------------------------------------------------------

ASSESSMENT_FINDING_KINDS = ("reassessment_due",)
#: Tiers whose agents' reassessment findings are raised as high (an unassessed agent is treated as high).
HIGH_SEVERITY_TIERS = frozenset({Agent.RiskTier.UNASSESSED, Agent.RiskTier.HIGH, Agent.RiskTier.CRITICAL})


def assessments_flag_due(*, now: datetime, actor: Actor | None = None) -> dict[str, int]:
    """Open, refresh and resolve ``reassessment_due`` findings as of ``now`` (aware, UTC); set-based.

    The condition: a live (active or suspended) agent whose latest assessment's ``valid_until``
    is at or before ``now``, or that has never been assessed. Its finding resolves itself once a
    valid assessment exists (or the agent is no longer live). Severity high for agents of tier
    high, critical or unassessed, else the kind's (medium). Idempotent: a rerun changes nothing
    but ``last_seen_at``. Returns the counts of ``governance.findings.findings_sync``.
    """
    actor = actor or Actor.system("reassessment job")
    due = (
        Agent.objects.filter(state__in=Agent.LIVE_STATES)
        .annotate(
            assessment_id=_latest_of_agent(),
            assessment_valid_until=_latest_of_agent("valid_until"),
            assessment_tier=_latest_of_agent("tier"),
        )
        .filter(Q(assessment_id__isnull=True) | Q(assessment_valid_until__lte=now))
    )

    def describe(agent: Agent) -> Condition:
        if agent.assessment_id is None:
            detail = f"{agent} has never been assessed; it is treated as high risk until it is."
            evidence = {"assessment": None}
        else:
            detail = (
                f"Risk assessment #{agent.assessment_id} ({agent.assessment_tier}) held until "
                f"{_fmt(agent.assessment_valid_until)}."
            )
            evidence = {"assessment": agent.assessment_id, "valid_until": agent.assessment_valid_until}
        severity = Finding.Severity.HIGH if agent.risk_tier in HIGH_SEVERITY_TIERS else None
        return Condition(subject=agent, agent_id=agent.pk, detail=detail, evidence=to_json(evidence), severity=severity)

    return findings_sync(
        actor=actor, kind="reassessment_due", subject_model=Agent, now=now, subjects=due, describe=describe
    )
