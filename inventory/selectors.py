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


def workload_identity_list(*, user) -> QuerySet[WorkloadIdentity]:
    """Workload identities of agents visible to ``user``."""
    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return WorkloadIdentity.objects.filter(agent__in=visible).select_related("agent").order_by("agent__name", "type", "identifier", "id")


def credential_list(*, user) -> QuerySet[Credential]:
    """Credentials of agents visible to ``user``, with their agent joined."""
    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return Credential.objects.filter(agent__in=visible).select_related("agent").order_by("agent__name", "kind", "external_id", "id")


def tool_list(*, user) -> QuerySet[Tool]:
    """Tools of agents visible to ``user``, with their agent joined."""
    visible = Agent.objects.filter(visible_agents_q(user)).values("pk")
    return Tool.objects.filter(agent__in=visible).select_related("agent").order_by("agent__name", "name", "id")
