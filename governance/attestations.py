"""Owner attestations and campaigns: the cadence set by the risk tier, the owner's answer, the
follow-through jobs (open, remind, escalate, enforce) and the orphan handler.

Dates are the organisation's: an attestation is due on a calendar date in ``WARRANT_TIME_ZONE``
(``org_today``), and every job is given ``now`` (aware, UTC) and reads "today" from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import django_filters
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from governance.audit import Actor, PendingEvent, audit_record, audit_record_many, to_json
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.filtering import StrictFilterSet, StrippedModelChoiceFilter, ordering_filter
from governance.findings import Condition, finding_raise, findings_resolve_for, findings_sync
from governance.models import Attestation, Campaign, Finding, Policy
from governance.roles import IAM_ADMIN, can_read_all, is_iam_admin
from inventory.filters import agent_filter
from inventory.models import Agent, Team
from inventory.permissions import is_owner_of, visible_agents_q

User = get_user_model()

# --- the organisation's calendar ---------------------------------------------------------------


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"WARRANT_TIME_ZONE={name!r} is not an IANA time zone name.") from None


def org_timezone() -> ZoneInfo:
    """The organisation's time zone (``settings.WARRANT_TIME_ZONE``, an IANA name; default UTC).

    Raises ``ImproperlyConfigured`` for a name that is not an IANA time zone.
    """
    return _zone(getattr(settings, "WARRANT_TIME_ZONE", "UTC"))


def org_date(moment: datetime) -> date:
    """The calendar date of ``moment`` (aware) in the organisation's time zone."""
    return moment.astimezone(org_timezone()).date()


def org_today(now: datetime) -> date:
    """ "Today" as of ``now`` (aware, UTC) in the organisation's time zone."""
    return org_date(now)


# --- cadence -----------------------------------------------------------------------------------


def _last_attested_at(agent: Agent) -> datetime | None:
    return (
        Attestation.objects.filter(agent_id=agent.pk, status=Attestation.Status.ATTESTED)
        .order_by("-attested_at", "-id")
        .values_list("attested_at", flat=True)
        .first()
    )


def attestation_cadence_apply(*, agent: Agent, now: datetime, actor: Actor | None = None) -> None:
    """Set ``agent.next_attestation_due`` from the policy's cadence for its current risk tier.

    The due date is the last attestation's date (organisation's calendar) plus
    ``Policy.attestation_days(tier)`` days (an unassessed agent follows the high tier). An agent
    never attested counts from ``now``, but its first due date never moves later than the one it
    already has, so that reassessing cannot postpone a first attestation. If the agent has an open
    attestation due later than the new date, that attestation's due date moves earlier to it: a
    tier raise shortens the cadence at once. A decommissioned agent is left alone.

    Call inside the caller's transaction, with ``agent`` locked (``select_for_update``) and its
    ``risk_tier`` current; ``now`` is aware (UTC). Saves ``next_attestation_due`` and writes an
    ``agent.attestation_due`` audit event when the date changes (and ``attestation.reschedule``
    for a moved open attestation), as ``actor`` (default: the system). Raises ``RuntimeError``
    outside a transaction (from the audit writer).
    """
    if agent.state == Agent.State.DECOMMISSIONED:
        return
    actor = actor or Actor.system("attestation cadence")
    policy = Policy.current()
    days = policy.attestation_days(agent.risk_tier)
    last = _last_attested_at(agent)
    if last is not None:
        due = org_date(last) + timedelta(days=days)
    else:
        due = org_today(now) + timedelta(days=days)
        if agent.next_attestation_due is not None:
            due = min(due, agent.next_attestation_due)
    before = agent.next_attestation_due
    if before != due:
        agent.next_attestation_due = due
        agent.save(update_fields=["next_attestation_due"])
        audit_record(
            actor=actor,
            verb="agent.attestation_due",
            obj=agent,
            before={"next_attestation_due": before.isoformat() if before else None},
            after={"next_attestation_due": due.isoformat(), "risk_tier": agent.risk_tier, "cadence_days": days},
            at=now,
        )
    opened = (
        Attestation.objects.select_for_update()
        .filter(agent_id=agent.pk, status=Attestation.Status.OPEN, due_on__gt=due)
        .first()
    )
    if opened is not None:
        moved_from = opened.due_on
        opened.due_on = due
        opened.save(update_fields=["due_on"])
        audit_record(
            actor=actor,
            verb="attestation.reschedule",
            obj=opened,
            before={"due_on": moved_from.isoformat()},
            after={"due_on": due.isoformat(), "reason": f"The {agent.risk_tier} tier's cadence is {days} days."},
            at=now,
        )


# --- who may ------------------------------------------------------------------------------------

LIVE_STATES = tuple(Agent.LIVE_STATES)
#: Days before the due date at which the owner is reminded, once each.
REMINDER_DAYS = (14, 3, 1)
#: An attestation opens this many days before it is due, so that the first reminder can go out.
OPEN_AHEAD_DAYS = max(REMINDER_DAYS)
#: Rows per batch in the set-based jobs: memory and lock time are bounded by this.
JOB_BATCH_SIZE = 2000
#: Finding kinds the escalation and enforcement jobs open and refresh (``governance.jobs``).
ESCALATION_FINDING_KINDS = ("attestation_overdue",)
#: Finding kinds routed to the members of the agent's team as well as to its owners
#: (``governance.selectors.finding_list`` shows them to team members).
TEAM_ROUTED_FINDING_KINDS = ("orphaned_agent", "attestation_overdue")
#: The longest a campaign may run, from its launch to its deadline.
MAX_CAMPAIGN_DAYS = 365


def can_attest(user, agent: Agent) -> bool:
    """Only the agent's owner or backup owner, as an active person, attests to it — IAM admins
    included: nobody attests an agent they do not own."""
    return is_owner_of(user, agent)


def can_launch_campaign(user) -> bool:
    """IAM admins launch attestation campaigns."""
    return is_iam_admin(user)


def can_read_campaigns(user) -> bool:
    """IAM admins and auditors read campaigns and their progress; owners answer their attestations."""
    return can_read_all(user)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PermissionDenied(message)


# --- selectors ----------------------------------------------------------------------------------


def attestation_list(*, user) -> QuerySet[Attestation]:
    """Attestations ``user`` may see: all for IAM admins and auditors, else those of the agents they
    own or back up. Agent (owner, backup owner, team), campaign and attester joined; ordered by due
    date, then id (so the open ones most overdue come first)."""
    qs = Attestation.objects.all()
    if not can_read_all(user):
        qs = qs.filter(agent__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
    return qs.select_related("agent__owner", "agent__backup_owner", "agent__team", "campaign", "attested_by").order_by(
        "due_on", "id"
    )


def attestation_get(*, user, pk: int) -> Attestation:
    """One attestation ``user`` may see; raises ``Attestation.DoesNotExist`` otherwise."""
    return attestation_list(user=user).get(pk=pk)


def attestation_inbox(*, user) -> QuerySet[Attestation]:
    """The open attestations ``user`` answers — of the agents they own or back up, whatever their
    role — most overdue first (due date ascending, then id)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Attestation.objects.none()
    mine = Agent.objects.filter(Q(owner=user) | Q(backup_owner=user)).values("pk")
    return attestation_list(user=user).filter(status=Attestation.Status.OPEN, agent__in=mine)


def active_grants_of(agent: Agent) -> QuerySet:
    """The agent's active delegation grants (what an attestation may reduce), oldest first; empty
    when the delegations app is not installed."""
    if not apps.is_installed("delegations"):
        return Agent.objects.none()
    from delegations.models import DelegationGrant

    return (
        DelegationGrant.objects.filter(agent_id=agent.pk, status=DelegationGrant.Status.ACTIVE)
        .prefetch_related("scopes")
        .order_by("starts_at", "id")
    )


def campaign_scope_q(scope_kind: str, scope_value: str) -> Q:
    """The agents a campaign's scope names, as a ``Q`` over Agent (state aside)."""
    K = Campaign.ScopeKind
    if scope_kind == K.ALL:
        return Q()
    if scope_kind == K.TIER:
        return Q(risk_tier=scope_value)
    if scope_kind == K.TEAM:
        return Q(team__slug=scope_value)
    if scope_kind == K.ENVIRONMENT:
        return Q(environment=scope_value)
    raise ValueError(f"unknown campaign scope {scope_kind!r}")


def campaign_agents(campaign: Campaign) -> QuerySet[Agent]:
    """The agents a campaign measures: in its scope, registered by its launch, and live — or
    decommissioned since the launch (an agent decommissioned by its attestation still counts).

    Read at the time of asking: an agent whose tier, team or environment has changed since the
    launch follows its current values.
    """
    return Agent.objects.filter(
        campaign_scope_q(campaign.scope_kind, campaign.scope_value),
        _measured_q(campaign.launched_at),
    )


def _measured_q(launched_at) -> Q:
    return Q(created_at__lte=launched_at) & (
        Q(state__in=LIVE_STATES) | Q(state=Agent.State.DECOMMISSIONED, state_changed_at__gte=launched_at)
    )


def _attested_since(launched_at) -> Exists:
    return Exists(
        Attestation.objects.filter(
            agent_id=OuterRef("pk"), status=Attestation.Status.ATTESTED, attested_at__gte=launched_at
        )
    )


class _Count(Func):
    """``COUNT(expr)`` as a plain function: a subquery that counts without a GROUP BY."""

    function = "COUNT"
    output_field = IntegerField()


def campaign_list(*, user) -> QuerySet[Campaign]:
    """Campaigns for IAM admins and auditors (none for anyone else), newest launch first, with
    ``agents_total`` and ``agents_attested`` (``campaign_agents`` and those of them attested since
    the launch) annotated by two correlated subqueries — a page costs one query, whatever its size."""
    if not can_read_campaigns(user):
        return Campaign.objects.none()
    K = Campaign.ScopeKind
    measured = Agent.objects.annotate(
        c_kind=ExpressionWrapper(OuterRef("scope_kind"), output_field=CharField()),
        c_value=ExpressionWrapper(OuterRef("scope_value"), output_field=CharField()),
        c_launched=ExpressionWrapper(OuterRef("launched_at"), output_field=DateTimeField()),
    ).filter(
        (
            Q(c_kind=K.ALL)
            | Q(c_kind=K.TIER, risk_tier=F("c_value"))
            | Q(c_kind=K.TEAM, team__slug=F("c_value"))
            | Q(c_kind=K.ENVIRONMENT, environment=F("c_value"))
        ),
        Q(created_at__lte=F("c_launched")),
        Q(state__in=LIVE_STATES) | Q(state=Agent.State.DECOMMISSIONED, state_changed_at__gte=F("c_launched")),
    )
    attested = measured.filter(
        Exists(
            Attestation.objects.filter(
                agent_id=OuterRef("pk"), status=Attestation.Status.ATTESTED, attested_at__gte=OuterRef("c_launched")
            )
        )
    )

    def count(qs):
        return Subquery(qs.order_by().annotate(n=_Count("pk")).values("n")[:1], output_field=IntegerField())

    return (
        Campaign.objects.select_related("launched_by")
        .annotate(agents_total=count(measured), agents_attested=count(attested))
        .order_by("-launched_at", "-id")
    )


def campaign_get(*, user, pk: int) -> Campaign:
    """One campaign ``user`` may read (with its progress counts); raises ``Campaign.DoesNotExist``."""
    return campaign_list(user=user).get(pk=pk)


@dataclass(frozen=True)
class Progress:
    """Agents measured, those attested since the launch, and the share attested (0.0–1.0)."""

    total: int
    attested: int

    @property
    def share(self) -> float:
        return self.attested / self.total if self.total else 0.0

    @property
    def percent(self) -> int:
        """The share as a whole percentage, rounded down (100 only when every agent is attested)."""
        return (self.attested * 100) // self.total if self.total else 0


@dataclass(frozen=True)
class TeamProgress(Progress):
    """A campaign's progress within one team (``slug`` and ``name`` empty for agents without a team)."""

    slug: str = ""
    name: str = ""


def campaign_progress(campaign: Campaign) -> Progress:
    """The campaign's progress: its agents (``campaign_agents``) and those attested since its launch."""
    total = getattr(campaign, "agents_total", None)
    attested = getattr(campaign, "agents_attested", None)
    if total is None or attested is None:
        agents = campaign_agents(campaign)
        total = agents.count()
        attested = agents.filter(_attested_since(campaign.launched_at)).count()
    return Progress(total=total or 0, attested=attested or 0)


def campaign_team_breakdown(campaign: Campaign) -> list[TeamProgress]:
    """The campaign's progress per team, by team name (agents without a team last); one query."""
    rows = (
        campaign_agents(campaign)
        .annotate(done=_attested_since(campaign.launched_at))
        .order_by()
        .values("team__slug", "team__name")
        .annotate(total=Count("pk"), attested=Count("pk", filter=Q(done=True)))
    )
    out = [
        TeamProgress(total=r["total"], attested=r["attested"], slug=r["team__slug"] or "", name=r["team__name"] or "")
        for r in rows
    ]
    return sorted(out, key=lambda t: (t.slug == "", t.name.lower(), t.slug))


def campaign_outstanding(campaign: Campaign) -> QuerySet[Agent]:
    """The campaign's agents not yet attested since its launch, with owner and team joined and the
    due date of their open attestation (``open_due_on``, None when none is open); by due date, name."""
    open_due = Attestation.objects.filter(agent_id=OuterRef("pk"), status=Attestation.Status.OPEN).values("due_on")
    return (
        campaign_agents(campaign)
        .exclude(_attested_since(campaign.launched_at))
        .select_related("owner", "backup_owner", "team")
        .annotate(open_due_on=Subquery(open_due[:1]))
        .order_by(F("open_due_on").asc(nulls_last=True), "name", "id")
    )


# --- shared filters -----------------------------------------------------------------------------

YES_NO = [("true", "Yes"), ("false", "No")]


class AttestationFilterSet(StrictFilterSet):
    """``status``, ``outcome`` (repeatable), ``agent`` (slug), ``team`` (slug), ``campaign`` (id),
    ``due_after`` / ``due_before`` (dates, inclusive), ``overdue`` (true: open and due before
    today in the organisation's time zone; false: the rest); ``ordering`` by due_on, opened, attested."""

    status = django_filters.MultipleChoiceFilter(choices=Attestation.Status.choices)
    outcome = django_filters.MultipleChoiceFilter(choices=Attestation.Outcome.choices)
    agent = agent_filter()
    team = StrippedModelChoiceFilter(queryset=Team.objects.all(), to_field_name="slug", field_name="agent__team")
    campaign = django_filters.ModelChoiceFilter(queryset=Campaign.objects.all())
    due_after = django_filters.DateFilter(field_name="due_on", lookup_expr="gte")
    due_before = django_filters.DateFilter(field_name="due_on", lookup_expr="lte")
    overdue = django_filters.ChoiceFilter(choices=YES_NO, method="filter_overdue")
    ordering = ordering_filter({"due_on": "due_on", "opened": "opened_at", "attested": "attested_at"})

    class Meta:
        model = Attestation
        fields = ["status", "outcome"]

    def filter_overdue(self, queryset, name, value):
        overdue = Q(status=Attestation.Status.OPEN, due_on__lt=org_today(timezone.now()))
        return queryset.filter(overdue) if value == "true" else queryset.exclude(overdue)


class CampaignFilterSet(StrictFilterSet):
    """``scope_kind`` (repeatable); ``ordering`` by launched, deadline, name."""

    scope_kind = django_filters.MultipleChoiceFilter(choices=Campaign.ScopeKind.choices)
    ordering = ordering_filter({"launched": "launched_at", "deadline": "deadline", "name": "name"})

    class Meta:
        model = Campaign
        fields = ["scope_kind"]


# --- attesting ----------------------------------------------------------------------------------

CHECKLIST = ("still_needed", "owner_correct", "grants_appropriate", "credentials_rotated")
ATTESTATION_AUDIT_FIELDS = (*CHECKLIST, "outcome", "comment", "status")


def _label(agent_name: str, due_on: date) -> str:
    return f"Attestation of {agent_name} due {due_on:%Y-%m-%d}"


def _checklist_errors(answers: dict, outcome: str, comment: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in CHECKLIST:
        if not isinstance(answers[name], bool):
            errors[name] = "Answer yes or no."
    if outcome not in Attestation.Outcome.values:
        errors["outcome"] = "Choose keep, reduce or decommission."
    if errors:
        return errors
    if outcome == Attestation.Outcome.DECOMMISSION:
        return errors
    if not answers["still_needed"]:
        errors["outcome"] = "An agent that is no longer needed is decommissioned: choose decommission."
    elif not answers["owner_correct"]:
        errors["owner_correct"] = (
            "Only its right owner vouches for an agent: transfer it to them (they then attest), or decommission it."
        )
    elif not answers["grants_appropriate"] and outcome == Attestation.Outcome.KEEP:
        errors["outcome"] = "Its grants are not all appropriate: choose reduce and pick the grants to revoke."
    if not answers["credentials_rotated"] and not comment:
        errors["comment"] = "Say when its credentials will be rotated; it is kept with the attestation."
    return errors


def _chosen_grants(agent: Agent, outcome: str, chosen: Sequence[int], errors: dict) -> list:
    """The locked active grants ``chosen`` to revoke with outcome reduce; adds to ``errors`` when
    the choice does not fit the outcome or names grants that are not the agent's active ones."""
    chosen = list(dict.fromkeys(chosen or ()))
    if not all(isinstance(pk, int) and not isinstance(pk, bool) for pk in chosen):
        errors["revoke_grants"] = "Name grants by their numbers."
        return []
    if outcome != Attestation.Outcome.REDUCE:
        if chosen:
            errors["revoke_grants"] = "Grants are revoked here only with the outcome reduce."
        return []
    if not apps.is_installed("delegations"):
        errors["outcome"] = "There are no delegation grants to reduce here."
        return []
    if not chosen:
        errors["revoke_grants"] = "Choose at least one of the agent's active grants to revoke."
        return []
    from delegations.models import DelegationGrant

    grants = list(
        DelegationGrant.objects.select_for_update(of=("self",))
        .select_related("agent", "parent")
        .filter(pk__in=chosen, agent_id=agent.pk, status=DelegationGrant.Status.ACTIVE)
        .order_by("pk")
    )
    missing = sorted(set(chosen) - {g.pk for g in grants})
    if missing:
        errors["revoke_grants"] = (
            f"Not an active grant of {agent.name}: {', '.join(f'#{pk}' for pk in missing)}. "
            "Choose among its active grants."
        )
    return grants


def attestation_attest(
    *,
    actor: Actor,
    attestation: Attestation,
    still_needed: bool,
    owner_correct: bool,
    grants_appropriate: bool,
    credentials_rotated: bool,
    outcome: str,
    comment: str = "",
    revoke_grants: Sequence[int] = (),
) -> Attestation:
    """The owner (or backup owner) answers an open attestation: the checklist and an outcome.

    - Who: ``can_attest`` — only the agent's owner or backup owner (an integration token acting
      for one of them included); IAM admins who do not own the agent are refused.
    - The checklist: ``still_needed``, ``owner_correct``, ``grants_appropriate``,
      ``credentials_rotated``, each ``True`` or ``False``. An agent no longer needed, or whose
      owner is not right, can only be decommissioned; grants not all appropriate cannot be kept
      as they are; credentials not rotated need a ``comment`` saying when they will be.
    - ``outcome``: ``keep``; ``reduce`` — revoke ``revoke_grants`` (ids of the agent's active
      delegation grants, at least one) through ``delegations.services.grant_revoke``, each with
      the grants below it; ``decommission`` — through ``inventory.services.agent_decommission``.

    All in one transaction: the attestation is recorded (``attestation.attest``), its overdue
    finding resolves, and the agent's next attestation falls due its tier's cadence after today
    (organisation's calendar; ``attestation_cadence_apply``). An agent the system suspended for
    this overdue attestation stays suspended: an IAM admin reactivates it. Decided once.

    Raises PermissionDenied (not the agent's owner or backup owner), Conflict (already decided
    or cancelled: it is not rewritten), ValidationError (field-keyed: the checklist, ``outcome``,
    ``comment``, ``revoke_grants``).
    """
    comment = (comment or "").strip()
    answers = {
        "still_needed": still_needed,
        "owner_correct": owner_correct,
        "grants_appropriate": grants_appropriate,
        "credentials_rotated": credentials_rotated,
    }
    now = timezone.now()
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=attestation.agent_id)
        attestation = Attestation.objects.select_for_update().get(pk=attestation.pk)
        _require(
            actor.user is not None and can_attest(actor.user, agent),
            "Only the agent's owner or backup owner attests to it; nobody attests an agent they do not own.",
        )
        if attestation.status != Attestation.Status.OPEN:
            if attestation.status == Attestation.Status.ATTESTED:
                raise Conflict(
                    f"This attestation was already answered ({attestation.outcome}) by "
                    f"{attestation.attested_by.get_username()} on {org_date(attestation.attested_at):%Y-%m-%d}; "
                    "a decided attestation is not rewritten."
                )
            raise Conflict(f"This attestation was cancelled: {attestation.close_reason or 'it no longer applies'}.")
        if agent.state == Agent.State.DECOMMISSIONED:
            raise Conflict("The agent is decommissioned; there is nothing left to attest.")
        errors = _checklist_errors(answers, outcome, comment)
        grants = _chosen_grants(agent, outcome, revoke_grants, errors)
        if errors:
            raise ValidationError(errors)
        for name, value in answers.items():
            setattr(attestation, name, value)
        attestation.outcome = outcome
        attestation.comment = comment
        attestation.status = Attestation.Status.ATTESTED
        attestation.attested_by = actor.user
        attestation.attested_at = now
        attestation.closed_at = now
        attestation.full_clean()
        attestation.save()
        audit_record(
            actor=actor,
            verb="attestation.attest",
            obj=attestation,
            before={"status": Attestation.Status.OPEN.value},
            after={
                **{name: getattr(attestation, name) for name in ATTESTATION_AUDIT_FIELDS},
                "revoke_grants": [g.pk for g in grants],
                "agent_state": agent.state,
            },
            at=now,
        )
        findings_resolve_for(
            actor=actor, kind="attestation_overdue", subject=attestation, now=now, note="The owner attested."
        )
        reason = f"Attestation #{attestation.pk} by {actor.label}: {outcome}."
        if outcome == Attestation.Outcome.REDUCE:
            from delegations.models import DelegationGrant
            from delegations.services import grant_revoke

            for grant in grants:
                # An earlier revocation in this loop may have ended it with its parent.
                if DelegationGrant.objects.filter(pk=grant.pk, status=DelegationGrant.Status.ACTIVE).exists():
                    grant_revoke(actor=actor, grant=grant, reason=reason)
        if outcome == Attestation.Outcome.DECOMMISSION:
            from inventory.services import agent_decommission

            agent_decommission(actor=actor, agent=agent, reason=comment or reason)
        else:
            attestation_cadence_apply(agent=agent, now=now, actor=actor)
    return attestation


# --- campaigns ----------------------------------------------------------------------------------


def _scope_value_error(scope_kind: str, scope_value: str) -> str:
    K = Campaign.ScopeKind
    if scope_kind == K.ALL:
        return "" if not scope_value else "A campaign over all agents takes no scope value."
    if not scope_value:
        return f"Name the {'tier' if scope_kind == K.TIER else scope_kind} the campaign covers."
    if scope_kind == K.TIER and scope_value not in Agent.RiskTier.values:
        return f"Unknown risk tier; choose one of {', '.join(Agent.RiskTier.values)}."
    if scope_kind == K.TEAM and not Team.objects.filter(slug=scope_value).exists():
        return f"No team has the slug {scope_value!r}."
    if scope_kind == K.ENVIRONMENT and scope_value not in Agent.Environment.values:
        return f"Unknown environment; choose one of {', '.join(Agent.Environment.values)}."
    return ""


def campaign_launch(
    *, actor: Actor, name: str, scope_kind: str, deadline: date, scope_value: str = "", description: str = ""
) -> Campaign:
    """Launch an attestation campaign (IAM admins) over ``scope_kind`` — ``all``, ``tier`` (a risk
    tier), ``team`` (a team slug) or ``environment`` — with a ``deadline`` (a date in the
    organisation's calendar, after today and at most ``MAX_CAMPAIGN_DAYS`` ahead).

    Every live agent in scope gets an open attestation due on the deadline: a new one (``attestation.open``),
    or its open one attached to the campaign when it has none (``attestation.attach``) and moved to the
    deadline when due later (``attestation.reschedule``); an earlier due date is kept. The agents'
    ``next_attestation_due`` moves to the deadline when later. Set-based, one transaction, one audit event
    each; the owners are e-mailed after commit. Progress: ``campaign_progress``.

    Raises PermissionDenied (not an IAM admin, or no person behind the actor), ValidationError
    (field-keyed: ``name``, ``scope_kind``, ``scope_value``, ``deadline``).
    """
    user = actor.user
    _require(user is not None and can_launch_campaign(user), "Only IAM admins launch attestation campaigns.")
    now = timezone.now()
    today = org_today(now)
    name = (name or "").strip()
    description = (description or "").strip()
    scope_value = (scope_value or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Name the campaign."
    if scope_kind not in Campaign.ScopeKind.values:
        errors["scope_kind"] = f"Choose one of {', '.join(Campaign.ScopeKind.values)}."
    elif problem := _scope_value_error(scope_kind, scope_value):
        errors["scope_value"] = problem
    if not isinstance(deadline, date) or isinstance(deadline, datetime):
        errors["deadline"] = "Give the deadline as a date (YYYY-MM-DD)."
    elif deadline <= today:
        errors["deadline"] = f"The deadline must be after today ({today:%Y-%m-%d}, {org_timezone().key})."
    elif deadline > today + timedelta(days=MAX_CAMPAIGN_DAYS):
        errors["deadline"] = f"A campaign runs at most {MAX_CAMPAIGN_DAYS} days."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        campaign = Campaign(
            name=name,
            description=description,
            scope_kind=scope_kind,
            scope_value=scope_value,
            deadline=deadline,
            launched_by=user,
            launched_at=now,
        )
        campaign.full_clean()
        campaign.save()
        agents = Agent.objects.filter(campaign_scope_q(scope_kind, scope_value), state__in=LIVE_STATES)
        counts = {"opened": 0, "attached": 0, "rescheduled": 0}
        notify: list[int] = []
        last = 0
        while True:
            rows = list(
                agents.select_for_update(of=("self",))
                .filter(pk__gt=last)
                .order_by("pk")
                .values_list("pk", "name", "next_attestation_due")[:JOB_BATCH_SIZE]
            )
            if not rows:
                break
            last = rows[-1][0]
            _campaign_batch(actor, campaign, rows, now, counts, notify)
            if len(rows) < JOB_BATCH_SIZE:
                break
        audit_record(
            actor=actor,
            verb="campaign.launch",
            obj=campaign,
            after={
                "name": name,
                "scope_kind": scope_kind,
                "scope_value": scope_value,
                "deadline": deadline.isoformat(),
                **counts,
            },
            at=now,
        )
        _notify("campaign", notify)
    return campaign


def _campaign_batch(actor: Actor, campaign: Campaign, rows: list, now: datetime, counts: dict, notify: list) -> None:
    """Open, attach and reschedule the attestations of one locked batch of agents ``(pk, name, due)``."""
    deadline = campaign.deadline
    names = {pk: name for pk, name, _ in rows}
    ids = list(names)
    existing = {
        a["agent_id"]: a
        for a in Attestation.objects.select_for_update()
        .filter(agent_id__in=ids, status=Attestation.Status.OPEN)
        .values("pk", "agent_id", "due_on", "campaign_id")
    }
    events: list[PendingEvent] = []
    attach = [a for a in existing.values() if a["campaign_id"] is None]
    move = [a for a in existing.values() if a["due_on"] > deadline]
    Attestation.objects.filter(pk__in=[a["pk"] for a in attach]).update(campaign=campaign)
    Attestation.objects.filter(pk__in=[a["pk"] for a in move]).update(due_on=deadline)
    for a in attach:
        events.append(
            PendingEvent(
                "attestation.attach",
                "governance.attestation",
                str(a["pk"]),
                _label(names[a["agent_id"]], a["due_on"]),
                after={"campaign": campaign.pk},
            )
        )
    for a in move:
        events.append(
            PendingEvent(
                "attestation.reschedule",
                "governance.attestation",
                str(a["pk"]),
                _label(names[a["agent_id"]], deadline),
                before={"due_on": a["due_on"].isoformat()},
                after={"due_on": deadline.isoformat(), "reason": f"Campaign #{campaign.pk} ends {deadline}."},
            )
        )
    new = [
        Attestation(
            agent_id=pk,
            campaign=campaign,
            due_on=min(deadline, due) if due else deadline,
            opened_at=now,
            status=Attestation.Status.OPEN,
        )
        for pk, _, due in rows
        if pk not in existing
    ]
    Attestation.objects.bulk_create(new)
    opened = list(
        Attestation.objects.filter(agent_id__in=[a.agent_id for a in new], status=Attestation.Status.OPEN)
        .order_by("pk")
        .values_list("pk", "agent_id", "due_on")
    )
    for pk, agent_id, due_on in opened:
        events.append(
            PendingEvent(
                "attestation.open",
                "governance.attestation",
                str(pk),
                _label(names[agent_id], due_on),
                after={"agent": agent_id, "due_on": due_on.isoformat(), "campaign": campaign.pk},
            )
        )
    later = [(pk, due) for pk, _, due in rows if due is None or due > deadline]
    Agent.objects.filter(pk__in=[pk for pk, _ in later]).update(next_attestation_due=deadline)
    for pk, due in later:
        events.append(
            PendingEvent(
                "agent.attestation_due",
                "inventory.agent",
                str(pk),
                names[pk],
                before={"next_attestation_due": due.isoformat() if due else None},
                after={"next_attestation_due": deadline.isoformat(), "campaign": campaign.pk},
            )
        )
    if events:
        audit_record_many(actor=actor, events=events, at=now)
    counts["opened"] += len(opened)
    counts["attached"] += len(attach)
    counts["rescheduled"] += len(move)
    notify.extend([pk for pk, _, _ in opened] + [a["pk"] for a in attach])


# --- the follow-through jobs --------------------------------------------------------------------


def _system(name: str) -> Actor:
    return Actor.system(name)


def _locked_live_agents(q: Q, last: int):
    """One batch of live agents matching ``q`` after id ``last``, locked, as ``(pk, name, risk_tier, due)``."""
    return list(
        Agent.objects.select_for_update()
        .filter(q, state__in=LIVE_STATES, pk__gt=last)
        .order_by("pk")
        .values_list("pk", "name", "risk_tier", "next_attestation_due")[:JOB_BATCH_SIZE]
    )


def attestations_open_due(*, now: datetime) -> dict[str, int]:
    """Schedule and open attestations as of ``now`` (aware, UTC); set-based and idempotent.

    1. A live agent without a due date gets one: today (organisation's calendar) plus its tier's
       cadence (``agent.attestation_due``).
    2. A live agent due within ``OPEN_AHEAD_DAYS`` (14) days — or overdue — and without an open
       attestation gets one, due on its ``next_attestation_due`` (``attestation.open``), so that
       it shows in the owner's inbox before the first reminder.

    Agents are locked in batches, so a campaign launched at the same time never opens a second
    attestation for one agent. A rerun the same day opens nothing. Returns ``{"scheduled", "opened"}``.
    """
    actor = _system("attestation job")
    today = org_today(now)
    policy = Policy.current()
    scheduled = opened = 0
    last = 0
    while True:
        with transaction.atomic():
            rows = _locked_live_agents(Q(next_attestation_due__isnull=True), last)
            if not rows:
                break
            events = []
            by_due: dict[date, list[int]] = {}
            for pk, name, tier, _ in rows:
                due = today + timedelta(days=policy.attestation_days(tier))
                by_due.setdefault(due, []).append(pk)
                events.append(
                    PendingEvent(
                        "agent.attestation_due",
                        "inventory.agent",
                        str(pk),
                        name,
                        before={"next_attestation_due": None},
                        after={"next_attestation_due": due.isoformat(), "risk_tier": tier},
                    )
                )
            for due, ids in by_due.items():
                Agent.objects.filter(pk__in=ids, next_attestation_due__isnull=True).update(next_attestation_due=due)
            audit_record_many(actor=actor, events=events, at=now)
            scheduled += len(rows)
            last = rows[-1][0]
        if len(rows) < JOB_BATCH_SIZE:
            break
    has_open = Exists(Attestation.objects.filter(agent_id=OuterRef("pk"), status=Attestation.Status.OPEN))
    horizon = today + timedelta(days=OPEN_AHEAD_DAYS)
    last = 0
    while True:
        with transaction.atomic():
            rows = _locked_live_agents(Q(next_attestation_due__lte=horizon) & ~has_open, last)
            if not rows:
                break
            # Read again now that the agents are locked: a run or a campaign that held them first
            # may have opened one meanwhile (the lock, not the filter above, decides).
            taken = set(
                Attestation.objects.filter(
                    agent_id__in=[pk for pk, _, _, _ in rows], status=Attestation.Status.OPEN
                ).values_list("agent_id", flat=True)
            )
            names = {pk: name for pk, name, _, _ in rows if pk not in taken}
            Attestation.objects.bulk_create(
                [
                    Attestation(agent_id=pk, due_on=due, opened_at=now, status=Attestation.Status.OPEN)
                    for pk, _, _, due in rows
                    if pk in names
                ]
            )
            created = list(
                Attestation.objects.filter(agent_id__in=list(names), status=Attestation.Status.OPEN)
                .order_by("pk")
                .values_list("pk", "agent_id", "due_on")
            )
            audit_record_many(
                actor=actor,
                events=(
                    PendingEvent(
                        "attestation.open",
                        "governance.attestation",
                        str(pk),
                        _label(names[agent_id], due_on),
                        after={"agent": agent_id, "due_on": due_on.isoformat()},
                    )
                    for pk, agent_id, due_on in created
                ),
                at=now,
            )
            opened += len(created)
            last = rows[-1][0]
        if len(rows) < JOB_BATCH_SIZE:
            break
    return {"scheduled": scheduled, "opened": opened}


#: Reminder stages: (days before the due date, the column marking it sent). A stage is sent while
#: the days left are at most its own and more than the next stage's, so each goes out once, and
#: a stage whose window has passed (a late job, a due date brought forward) is not sent late.
REMINDER_STAGES = ((14, "reminded_14d_at"), (3, "reminded_3d_at"), (1, "reminded_1d_at"))


def attestations_remind_due(*, now: datetime) -> dict[str, int]:
    """E-mail the owner and backup owner of each open attestation 14, 3 and 1 day(s) before it is
    due — once each — as of ``now`` (aware, UTC; days counted in the organisation's calendar).

    Set-based: the reminder's column is set in the same statement that picks the rows, one
    ``attestation.remind`` audit event each, the e-mails sent after commit. A rerun sends nothing
    more. Returns ``{"reminded_14d", "reminded_3d", "reminded_1d"}``.
    """
    actor = _system("attestation reminder job")
    today = org_today(now)
    counts = {}
    for i, (days, column) in enumerate(REMINDER_STAGES):
        below = REMINDER_STAGES[i + 1][0] if i + 1 < len(REMINDER_STAGES) else -1
        window = Q(
            status=Attestation.Status.OPEN,
            due_on__lte=today + timedelta(days=days),
            due_on__gt=today + timedelta(days=below),
            **{f"{column}__isnull": True},
        )
        total = 0
        while True:
            with transaction.atomic():
                rows = list(
                    Attestation.objects.select_for_update(of=("self",))
                    .filter(window)
                    .select_related("agent")
                    .order_by("pk")
                    .values_list("pk", "agent__name", "due_on")[:JOB_BATCH_SIZE]
                )
                if not rows:
                    break
                ids = [pk for pk, _, _ in rows]
                Attestation.objects.filter(pk__in=ids).update(**{column: now})
                audit_record_many(
                    actor=actor,
                    events=(
                        PendingEvent(
                            "attestation.remind",
                            "governance.attestation",
                            str(pk),
                            _label(name, due_on),
                            after={"days_before": days, "due_on": due_on.isoformat()},
                        )
                        for pk, name, due_on in rows
                    ),
                    at=now,
                )
                _notify(f"reminder-{days}", ids)
            total += len(rows)
            if len(rows) < JOB_BATCH_SIZE:
                break
        counts[f"reminded_{days}d"] = total
    return counts


def _overdue_condition(attestation: Attestation, today: date) -> Condition:
    agent = attestation.agent
    team = agent.team
    days = (today - attestation.due_on).days
    detail = (
        f"{agent.name}'s attestation was due {attestation.due_on:%Y-%m-%d} and is {days} day(s) overdue; "
        f"routed to {'team ' + team.name + ' and ' if team else ''}the IAM admins."
    )
    evidence = {
        "due_on": attestation.due_on.isoformat(),
        "owner": agent.owner.get_username() if agent.owner_id else None,
        "backup_owner": agent.backup_owner.get_username() if agent.backup_owner_id else None,
        "routed_to": {"team": team.slug if team else None, "iam_admins": True},
    }
    return Condition(subject=attestation, agent_id=agent.pk, detail=detail, evidence=evidence)


def attestations_escalate_due(*, now: datetime) -> dict[str, int]:
    """Escalate the open attestations whose due date has passed (organisation's calendar) as of
    ``now`` (aware, UTC); set-based and idempotent.

    Keeps one ``attestation_overdue`` finding per overdue attestation (opened, refreshed, and
    resolved once it is answered or cancelled: ``findings_sync``), routed to the agent's team
    and the IAM admins (in its evidence; ``governance.selectors.finding_list`` shows it to the
    team's members). Each newly overdue attestation is marked ``escalated_at`` with an
    ``attestation.escalate`` audit event, and its owners, team members and the IAM admins are
    e-mailed once, after commit. Returns the finding counts and ``"escalated"``.
    """
    actor = _system("attestation escalation job")
    today = org_today(now)
    overdue = Attestation.objects.filter(status=Attestation.Status.OPEN, due_on__lt=today)
    counts = findings_sync(
        actor=actor,
        kind="attestation_overdue",
        subject_model=Attestation,
        now=now,
        subjects=overdue.select_related("agent__owner", "agent__backup_owner", "agent__team"),
        describe=lambda a: _overdue_condition(a, today),
    )
    escalated = 0
    while True:
        with transaction.atomic():
            rows = list(
                overdue.select_for_update(of=("self",))
                .filter(escalated_at__isnull=True)
                .order_by("pk")
                .values_list("pk", "agent__name", "due_on")[:JOB_BATCH_SIZE]
            )
            if not rows:
                break
            ids = [pk for pk, _, _ in rows]
            Attestation.objects.filter(pk__in=ids).update(escalated_at=now)
            audit_record_many(
                actor=actor,
                events=(
                    PendingEvent(
                        "attestation.escalate",
                        "governance.attestation",
                        str(pk),
                        _label(name, due_on),
                        after={"due_on": due_on.isoformat(), "days_overdue": (today - due_on).days},
                    )
                    for pk, name, due_on in rows
                ),
                at=now,
            )
            _notify("escalated", ids)
        escalated += len(rows)
        if len(rows) < JOB_BATCH_SIZE:
            break
    return {**counts, "escalated": escalated}


def attestations_enforce_due(*, now: datetime) -> dict[str, int]:
    """Enforce the open attestations overdue past the policy's ``attestation_grace_days`` as of
    ``now`` (aware, UTC; organisation's calendar): once each, by the system.

    Per the agent's risk tier (``Policy.attestation_suspends``), an active agent is suspended
    through ``inventory.services.agent_suspend`` (enforcement ``suspended``), or the attestation
    is only flagged (``flagged``; also when the agent is already suspended). Either way its
    ``attestation_overdue`` finding is raised to critical, an ``attestation.enforce`` audit event
    is written and the owners, team members and IAM admins are e-mailed after commit. The mark
    ``enforced_at`` makes it once: after an IAM admin reactivates the agent, a rerun does not
    suspend it again — enforcement is undone only by a person. Agents are locked before their
    attestations, as everywhere. Returns ``{"suspended", "flagged"}``.
    """
    from inventory.services import agent_suspend

    actor = _system("attestation enforcement job")
    today = org_today(now)
    policy = Policy.current()
    cutoff = today - timedelta(days=policy.attestation_grace_days)
    due = Q(status=Attestation.Status.OPEN, due_on__lt=cutoff, enforced_at__isnull=True)
    counts = {"suspended": 0, "flagged": 0}
    while True:
        agent_ids = list(
            Attestation.objects.filter(due).order_by("agent_id").values_list("agent_id", flat=True)[:JOB_BATCH_SIZE]
        )
        if not agent_ids:
            break
        with transaction.atomic():
            agents = {a.pk: a for a in Agent.objects.select_for_update().filter(pk__in=agent_ids).order_by("pk")}
            batch = list(Attestation.objects.select_for_update().filter(due, agent_id__in=agent_ids).order_by("pk"))
            decided: dict[str, list[Attestation]] = {"suspended": [], "flagged": []}
            for att in batch:
                agent = agents[att.agent_id]
                suspends = policy.attestation_suspends(agent.risk_tier) and agent.state == Agent.State.ACTIVE
                if suspends:
                    agent_suspend(
                        actor=actor,
                        agent=agent,
                        reason=(
                            f"Attestation #{att.pk} was due {att.due_on:%Y-%m-%d} and is unanswered after "
                            f"{policy.attestation_grace_days} days of grace; an IAM admin reactivates the agent "
                            "once the owner has attested."
                        ),
                    )
                decided["suspended" if suspends else "flagged"].append(att)
            for enforcement, rows in decided.items():
                Attestation.objects.filter(pk__in=[a.pk for a in rows]).update(enforced_at=now, enforcement=enforcement)
            for att in batch:
                finding_raise(
                    actor=actor, kind="attestation_overdue", condition=_overdue_condition(att, today), now=now
                )
            raised = list(
                Finding.objects.select_for_update()
                .filter(
                    kind="attestation_overdue",
                    subject_type__app_label="governance",
                    subject_type__model="attestation",
                    subject_id__in=[a.pk for a in batch],
                    status__in=Finding.UNRESOLVED,
                )
                .exclude(severity=Finding.Severity.CRITICAL)
                .values_list("pk", "severity", "title", "subject_label")
            )
            Finding.objects.filter(pk__in=[r[0] for r in raised]).update(severity=Finding.Severity.CRITICAL)
            events = [
                PendingEvent(
                    "finding.escalate",
                    "governance.finding",
                    str(pk),
                    f"{title} — {label}",
                    before={"severity": severity},
                    after={"severity": Finding.Severity.CRITICAL.value, "note": "Past the grace period."},
                )
                for pk, severity, title, label in raised
            ]
            for enforcement, rows in decided.items():
                events += [
                    PendingEvent(
                        "attestation.enforce",
                        "governance.attestation",
                        str(a.pk),
                        _label(agents[a.agent_id].name, a.due_on),
                        after={
                            "enforcement": enforcement,
                            "risk_tier": agents[a.agent_id].risk_tier,
                            "grace_days": policy.attestation_grace_days,
                        },
                    )
                    for a in rows
                ]
                _notify(enforcement, [a.pk for a in rows])
                counts[enforcement] += len(rows)
            audit_record_many(actor=actor, events=events, at=now)
        if len(agent_ids) < JOB_BATCH_SIZE:
            break
    return counts


# --- domain events ------------------------------------------------------------------------------


def _routing(agent: Agent) -> tuple[str, str]:
    """Who an orphaned agent is routed to — ``("backup_owner" | "team" | "iam_admins", description)``."""
    backup = agent.backup_owner
    if backup is not None and backup.is_active:
        return "backup_owner", f"its backup owner {backup.get_username()}"
    if agent.team_id is not None:
        return "team", f"team {agent.team.name}"
    return "iam_admins", "the IAM admins"


def on_person_deactivated(*, user, actor: Actor, now: datetime) -> None:
    """Subscriber of ``person.deactivated``: in the deactivation's transaction, each live agent the
    person owns gets an ``orphaned_agent`` finding at once (DESIGN.md invariant 7), routed to its
    backup owner if active, else its team, else the IAM admins — the routing is in the finding's
    detail and evidence (``routed_to``). Those routed to, and the IAM admins, are e-mailed after
    commit. Transferring ownership (``inventory.services.agent_assign_owner``) resolves it."""
    agents = list(
        Agent.objects.select_for_update(of=("self",))
        .select_related("backup_owner", "team")
        .filter(owner_id=user.pk, state__in=LIVE_STATES)
        .order_by("pk")
    )
    raised = []
    for agent in agents:
        routed_to, to_whom = _routing(agent)
        finding, _ = finding_raise(
            actor=actor,
            kind="orphaned_agent",
            now=now,
            condition=Condition(
                subject=agent,
                agent_id=agent.pk,
                detail=(
                    f"{user.get_username()}, its owner, was deactivated; routed to {to_whom} until an IAM admin "
                    "transfers ownership."
                ),
                evidence={
                    "former_owner": user.get_username(),
                    "deactivated_at": to_json(now),
                    "routed_to": routed_to,
                    "backup_owner": agent.backup_owner.get_username() if agent.backup_owner_id else None,
                    "team": agent.team.slug if agent.team_id else None,
                },
            ),
        )
        raised.append(finding.pk)
    _notify("orphaned", raised)


def on_agent_decommissioned(*, agent: Agent, actor: Actor, now: datetime) -> None:
    """Subscriber of ``agent.decommissioned``: cancel the agent's open attestation
    (``attestation.cancel``), resolve its overdue and orphaned-agent findings, and clear its next
    due date — a decommissioned agent is not attested again."""
    opened = list(Attestation.objects.select_for_update().filter(agent_id=agent.pk, status=Attestation.Status.OPEN))
    for att in opened:
        att.status = Attestation.Status.CANCELLED
        att.closed_at = now
        att.close_reason = "The agent was decommissioned."
        att.save(update_fields=["status", "closed_at", "close_reason"])
        audit_record(
            actor=actor,
            verb="attestation.cancel",
            obj=att,
            before={"status": Attestation.Status.OPEN.value},
            after={"status": att.status, "reason": att.close_reason},
            at=now,
        )
        findings_resolve_for(
            actor=actor, kind="attestation_overdue", subject=att, now=now, note="The agent was decommissioned."
        )
    findings_resolve_for(
        actor=actor, kind="orphaned_agent", subject=agent, now=now, note="The agent was decommissioned."
    )
    if agent.next_attestation_due is not None:
        before = agent.next_attestation_due
        agent.next_attestation_due = None
        agent.save(update_fields=["next_attestation_due"])
        audit_record(
            actor=actor,
            verb="agent.attestation_due",
            obj=agent,
            before={"next_attestation_due": before.isoformat()},
            after={"next_attestation_due": None},
            at=now,
        )


# --- notifications ------------------------------------------------------------------------------

#: Notification kinds: ids are attestation ids, except ``orphaned`` (finding ids).
NOTIFICATION_KINDS = (
    "campaign",
    "reminder-14",
    "reminder-3",
    "reminder-1",
    "escalated",
    "suspended",
    "flagged",
    "orphaned",
)


def _notify(kind: str, ids: Iterable[int]) -> None:
    """Send notification ``kind`` about ``ids`` once the transaction commits (Celery task)."""
    ids = list(ids)
    if not ids:
        return

    def send():
        from governance.tasks import send_attestation_notifications

        send_attestation_notifications.delay(kind, ids)

    transaction.on_commit(send, robust=True)


def _emails(users: Iterable) -> list[str]:
    seen, out = set(), []
    for u in users:
        if u is not None and u.is_active and u.email and u.email not in seen:
            seen.add(u.email)
            out.append(u.email)
    return out


def _iam_admins() -> list:
    return list(
        User.objects.filter(Q(is_superuser=True) | Q(groups__name=IAM_ADMIN), is_active=True).distinct().order_by("pk")
    )


def _base_url() -> str:
    return settings.WARRANT_BASE_URL.rstrip("/")


def _attestation_message(kind: str, att: Attestation, admins: list) -> EmailMessage | None:
    agent = att.agent
    owners = [agent.owner, agent.backup_owner]
    team = list(agent.team.members.all()) if agent.team_id else []
    link = f"{_base_url()}/attestations/{att.pk}/"
    if kind == "campaign":
        to = _emails(owners)
        campaign = att.campaign.name if att.campaign_id else "campaign"
        subject = f"[Warrant] Attest to {agent.name} by {att.due_on:%Y-%m-%d} ({campaign})"
        body = (
            f"An attestation campaign asks you to vouch for {agent.name} by {att.due_on:%Y-%m-%d}: still needed, "
            f"owner correct, grants still appropriate, credentials rotated.\n\nAnswer it: {link}\n"
        )
    elif kind.startswith("reminder-"):
        days = max(0, (att.due_on - org_today(timezone.now())).days)
        to = _emails(owners)
        plural = "s" if days > 1 else ""
        subject = f"[Warrant] Attestation of {agent.name} due {att.due_on:%Y-%m-%d} (in {days} day{plural})"
        body = (
            f"The attestation of {agent.name} is due on {att.due_on:%Y-%m-%d}. Answer the checklist before then; "
            f"past the grace period the agent may be suspended.\n\n{link}\n"
        )
    elif kind == "escalated":
        to = _emails(owners + team + admins)
        subject = f"[Warrant] Attestation of {agent.name} is overdue"
        body = (
            f"The attestation of {agent.name} was due on {att.due_on:%Y-%m-%d} and is unanswered. Its owner "
            f"({agent.owner.get_username() if agent.owner_id else 'none'}) or backup owner answers it.\n\n{link}\n"
        )
    elif kind in ("suspended", "flagged"):
        to = _emails(owners + team + admins)
        what = "was suspended" if kind == "suspended" else "is flagged"
        subject = f"[Warrant] {agent.name} {what}: attestation overdue past grace"
        body = (
            f"The attestation of {agent.name}, due {att.due_on:%Y-%m-%d}, is still unanswered after the grace "
            f"period, so the agent {what}. "
            + ("An IAM admin reactivates it once the owner has attested.\n" if kind == "suspended" else "\n")
            + f"\n{link}\n"
        )
    else:
        raise ValueError(f"unknown notification {kind!r}; known: {', '.join(NOTIFICATION_KINDS)}")
    if not to:
        return None
    return EmailMessage(subject=subject, body=body, to=to)


def _orphan_message(finding: Finding, agents: dict, admins: list) -> EmailMessage | None:
    agent = agents.get(finding.agent_id)
    if agent is None:
        return None
    routed = finding.evidence.get("routed_to")
    if routed == "backup_owner":
        people = [agent.backup_owner]
    elif routed == "team" and agent.team_id:
        people = list(agent.team.members.all())
    else:
        people = []
    to = _emails(people + admins)
    if not to:
        return None
    return EmailMessage(
        subject=f"[Warrant] {agent.name} is orphaned: its owner was deactivated",
        body=f"{finding.detail}\n\nTransfer its ownership: {_base_url()}/agents/{agent.slug}/\n",
        to=to,
    )


def attestation_notifications_send(*, kind: str, ids: Iterable[int]) -> int:
    """Send the ``kind`` e-mails (``NOTIFICATION_KINDS``) about ``ids`` over one connection; returns
    the number of messages sent. People without an e-mail address, and inactive people, are skipped."""
    ids = list(ids)
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(f"unknown notification {kind!r}; known: {', '.join(NOTIFICATION_KINDS)}")
    admins = _iam_admins()
    if kind == "orphaned":
        findings = list(Finding.objects.filter(pk__in=ids).order_by("pk"))
        agents = Agent.objects.select_related("backup_owner", "team").prefetch_related("team__members")
        by_id = {a.pk: a for a in agents.filter(pk__in=[f.agent_id for f in findings])}
        messages = [_orphan_message(f, by_id, admins) for f in findings]
    else:
        attestations = (
            Attestation.objects.filter(pk__in=ids)
            .select_related("agent__owner", "agent__backup_owner", "agent__team", "campaign")
            .prefetch_related("agent__team__members")
            .order_by("pk")
        )
        messages = [_attestation_message(kind, a, admins) for a in attestations]
    messages = [m for m in messages if m is not None]
    if not messages:
        return 0
    with mailers.default as conn:
        return conn.send_messages(messages) or 0
