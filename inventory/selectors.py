"""Reads of the inventory shared by the web UI and the REST API.

Each selector returns a queryset already limited to what ``user`` may see
(``inventory.permissions``), with the joins its list pages need, in a total order
(ties broken by id).
"""

from django.db.models import Count, QuerySet

from .models import Agent, Credential, Team, Tool, WorkloadIdentity
from .permissions import visible_agents_q


def agent_list(*, user) -> QuerySet[Agent]:
    """Agents visible to ``user``, with owner, backup owner and team joined; ordered by name, id."""
    return (
        Agent.objects.filter(visible_agents_q(user))
        .select_related("owner", "backup_owner", "team")
        .order_by("name", "id")
    )


def agent_get(*, user, slug: str) -> Agent:
    """One agent visible to ``user`` by slug; raises ``Agent.DoesNotExist`` otherwise."""
    return agent_list(user=user).get(slug=slug)


def team_list(*, user) -> QuerySet[Team]:
    """All teams (team names are not secret), with their agent counts."""
    return Team.objects.annotate(agent_count=Count("agents")).order_by("name", "id")


def _of_visible_agents(model, user, *ordering: str) -> QuerySet:
    """``model`` rows whose agent ``user`` may see, with the agent joined, ordered by agent name then ``ordering``."""
    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return model.objects.filter(agent__in=visible).select_related("agent").order_by("agent__name", *ordering, "id")


def workload_identity_list(*, user) -> QuerySet[WorkloadIdentity]:
    """Workload identities of agents visible to ``user``."""
    return _of_visible_agents(WorkloadIdentity, user, "type", "identifier")


def credential_list(*, user) -> QuerySet[Credential]:
    """Credentials of agents visible to ``user``, with their agent joined."""
    return _of_visible_agents(Credential, user, "kind", "external_id")


def tool_list(*, user) -> QuerySet[Tool]:
    """Tools of agents visible to ``user``, with their agent joined."""
    return _of_visible_agents(Tool, user, "name")


def agent_counts_by(*, user, field: str) -> dict[str, int]:
    """Counts of agents visible to ``user`` grouped by ``field`` (``"state"`` or ``"risk_tier"``); one query."""
    if field not in ("state", "risk_tier"):
        raise ValueError(f"cannot group agents by {field!r}")
    rows = Agent.objects.filter(visible_agents_q(user)).order_by().values_list(field).annotate(n=Count("id"))
    return dict(rows)


def credential_rotation_due_list(*, user, now, within_days: int = 14) -> QuerySet[Credential]:
    """Active credentials of agents visible to ``user`` whose rotation falls due by ``now + within_days``.

    ``now`` is an aware datetime (UTC); ``within_days`` in days. A credential is due
    ``rotation_period_days`` (its own, else ``Policy.rotation_period_days``) after it was last
    rotated (or created). Console passwords are left out: they are judged by the
    console-password finding, not rotated (OWASP NHI7). Annotated with ``rotation_due_at``
    (UTC); most overdue first, ties broken by id.
    """
    from datetime import timedelta

    from governance.models import Policy

    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return (
        Credential.objects.filter(agent__in=visible, status=Credential.Status.ACTIVE)
        .exclude(kind=Credential.Kind.CONSOLE_PASSWORD)
        .with_rotation_due(Policy.current().rotation_period_days)
        .select_related("agent")
        .filter(rotation_due_at__lte=now + timedelta(days=within_days))
        .order_by("rotation_due_at", "id")
    )


def import_run_list(*, user):
    """Import runs, newest first (ties broken by id): IAM admins and auditors read all; an owner
    reads the runs that imported into an agent they own or back up (MCP configurations)."""
    from governance.roles import can_read_all

    from .models import ImportRun

    qs = ImportRun.objects.select_related("agent")
    if not can_read_all(user):
        qs = qs.filter(agent__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
    return qs.order_by("-created_at", "-id")


def person_list(*, user):
    """Active people who may own or back up agents (agent owners and IAM admins, never auditors),
    ordered by username (ties by id)."""
    from django.contrib.auth import get_user_model

    from governance.roles import agent_owner_candidates_q

    return get_user_model().objects.filter(agent_owner_candidates_q()).distinct().order_by("username", "id")
