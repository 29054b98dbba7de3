"""Reads of findings and audit events shared by the web UI and the REST API.

This is the governance domain (above the inventory), so it may join findings to the agents
and credentials they are about.
"""

from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, CharField, Count, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Cast

from governance.attestations import TEAM_ROUTED_FINDING_KINDS
from governance.models import AuditEvent, Finding, IntegrationToken
from governance.roles import can_read_all, is_iam_admin
from inventory.models import Agent, Credential, Tool, WorkloadIdentity
from inventory.permissions import visible_agents_q

SEVERITY_RANK = Case(
    *(When(severity=value, then=Value(rank)) for rank, value in enumerate(Finding.Severity.values)),
    default=Value(-1),
)


def finding_list(*, user) -> QuerySet[Finding]:
    """Findings visible to ``user`` (all for admins and auditors, their agents' for owners, and for
    members of a team the findings routed to it — ``TEAM_ROUTED_FINDING_KINDS``: orphaned agents and
    overdue attestations of the team's agents).

    Most severe first, then most recently seen, ties broken by id. Annotated with
    ``severity_rank`` (0 low … 3 critical), ``agent_name``, ``agent_slug`` and
    ``credential_external_id`` (the latter only when the subject is a credential).
    """
    qs = Finding.objects.all()
    if not can_read_all(user):
        visible = Q(agent_id__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
        if getattr(user, "is_authenticated", False) and user.is_active:
            team_agents = Agent.objects.filter(team__members=user).values("pk")
            visible |= Q(kind__in=TEAM_ROUTED_FINDING_KINDS, agent_id__in=team_agents)
        qs = qs.filter(visible)
    agent = Agent.objects.filter(pk=OuterRef("agent_id"))
    credential_ct = ContentType.objects.get_for_model(Credential)
    credential = Credential.objects.filter(pk=OuterRef("subject_id"))
    return (
        qs.select_related("subject_type")
        .annotate(
            agent_name=Subquery(agent.values("name")[:1]),
            agent_slug=Subquery(agent.values("slug")[:1]),
            credential_external_id=Case(
                When(subject_type=credential_ct, then=Subquery(credential.values("external_id")[:1])), default=None
            ),
        )
        .annotate(severity_rank=SEVERITY_RANK)
        .order_by("-severity_rank", "-last_seen_at", "-id")
    )


def finding_get(*, user, pk: int) -> Finding:
    """One finding visible to ``user``; raises ``Finding.DoesNotExist`` otherwise."""
    return finding_list(user=user).get(pk=pk)


def audit_event_list(*, user) -> QuerySet[AuditEvent]:
    """Audit events: IAM admins and auditors read all; others read the events of their agents.

    Newest first (id descending: the chain order).
    """
    qs = AuditEvent.objects.all()
    if not can_read_all(user):
        agent_ids = [str(pk) for pk in Agent.objects.filter(visible_agents_q(user)).values_list("pk", flat=True)]
        qs = qs.filter(object_type="inventory.agent", object_id__in=agent_ids)
    return qs.order_by("-id")


def audit_events_for_agent(*, agent: Agent) -> QuerySet[AuditEvent]:
    """The audit trail of an agent and of what hangs off it — its credentials, workload
    identities, tools and findings — newest first. (A removed identity or tool keeps its own
    events, which name it, but they no longer appear here.)"""

    def ids(qs):
        return qs.annotate(key=Cast("pk", CharField())).values("key")

    q = (
        Q(object_type="inventory.agent", object_id=str(agent.pk))
        | Q(object_type="inventory.credential", object_id__in=ids(Credential.objects.filter(agent_id=agent.pk)))
        | Q(
            object_type="inventory.workloadidentity",
            object_id__in=ids(WorkloadIdentity.objects.filter(agent_id=agent.pk)),
        )
        | Q(object_type="inventory.tool", object_id__in=ids(Tool.objects.filter(agent_id=agent.pk)))
        | Q(object_type="governance.finding", object_id__in=ids(Finding.objects.filter(agent_id=agent.pk)))
    )
    return AuditEvent.objects.filter(q).order_by("-id")


def audit_events_for(*, obj) -> QuerySet[AuditEvent]:
    """The audit trail of one object, newest first."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).order_by("-id")


def integration_token_list(*, user) -> QuerySet[IntegrationToken]:
    """Tokens ``user`` may see: their own; IAM admins see all."""
    qs = IntegrationToken.objects.select_related("user", "created_by")
    if not is_iam_admin(user):
        qs = qs.filter(user=user)
    return qs.order_by("-created_at", "-id")


def finding_severity_counts(*, user) -> dict[str, int]:
    """Counts of open and acknowledged findings visible to ``user``, by severity; one query."""
    qs = Finding.objects.filter(status__in=(Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED))
    if not can_read_all(user):
        qs = qs.filter(agent_id__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
    return dict(qs.order_by().values_list("severity").annotate(n=Count("id")))
