"""FilterSets for the inventory, shared by the web UI list pages and the REST API."""

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from governance.filtering import StrictFilterSet, StrippedModelChoiceFilter, ordering_filter

from .models import Agent, Credential, ImportRun, Team, Tool, WorkloadIdentity
from .permissions import visible_agents_q

User = get_user_model()


@extend_schema_field(OpenApiTypes.STR)
class AgentSlugFilter(StrippedModelChoiceFilter):
    """An agent given by its slug (a string in the OpenAPI schema); surrounding whitespace is ignored."""


def _agents_visible(request):
    """The agents the requesting user may see (all when the filter set is built without a request)."""
    if request is None:
        return Agent.objects.all()
    return Agent.objects.filter(visible_agents_q(request.user))


def agent_filter(field_name: str = "agent", **kwargs) -> AgentSlugFilter:
    """Filter by agent slug among the agents the requesting user may see; any other slug — one that
    names no agent, or another owner's — is the same 400, so a filter never tells whether an agent the
    caller may not see exists."""
    return AgentSlugFilter(queryset=_agents_visible, to_field_name="slug", field_name=field_name, **kwargs)


class AgentFilterSet(StrictFilterSet):
    """``q`` (name, slug, purpose, platform), ``state``, ``owner`` (username), ``team`` (slug),
    ``risk_tier``, ``environment``, ``kind``; ``ordering`` by name, state, risk_tier, environment,
    owner, team, created."""

    q = django_filters.CharFilter(method="search", label="Search")
    state = django_filters.MultipleChoiceFilter(choices=Agent.State.choices)
    owner = StrippedModelChoiceFilter(queryset=User.objects.all(), to_field_name="username", field_name="owner")
    team = StrippedModelChoiceFilter(queryset=Team.objects.all(), to_field_name="slug", field_name="team")
    risk_tier = django_filters.MultipleChoiceFilter(choices=Agent.RiskTier.choices)
    environment = django_filters.MultipleChoiceFilter(choices=Agent.Environment.choices)
    kind = django_filters.MultipleChoiceFilter(choices=Agent.Kind.choices)
    ordering = ordering_filter(
        {
            "name": "name",
            "state": "state",
            "risk_tier": "risk_tier",
            "environment": "environment",
            "owner": "owner__username",
            "team": "team__name",
            "created": "created_at",
        }
    )

    class Meta:
        model = Agent
        fields = ["q", "state", "owner", "team", "risk_tier", "environment", "kind"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(slug__icontains=value)
            | Q(purpose__icontains=value)
            | Q(platform__icontains=value)
        )


class TeamFilterSet(StrictFilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Team
        fields = ["q"]


class WorkloadIdentityFilterSet(StrictFilterSet):
    agent = agent_filter()
    type = django_filters.MultipleChoiceFilter(choices=WorkloadIdentity.Type.choices)

    class Meta:
        model = WorkloadIdentity
        fields = ["agent", "type"]


class CredentialFilterSet(StrictFilterSet):
    """``agent`` (slug), ``kind``, ``provider``, ``status``, ``rotated_before`` (ISO 8601, with offset)."""

    agent = agent_filter()
    kind = django_filters.MultipleChoiceFilter(choices=Credential.Kind.choices)
    provider = django_filters.CharFilter()
    status = django_filters.MultipleChoiceFilter(choices=Credential.Status.choices)
    ordering = ordering_filter(
        {"created": "created_at", "last_rotated": "last_rotated_at", "last_used": "last_used_at"}
    )

    class Meta:
        model = Credential
        fields = ["agent", "kind", "provider", "status"]


class ToolFilterSet(StrictFilterSet):
    agent = agent_filter()
    transport = django_filters.MultipleChoiceFilter(choices=Tool.Transport.choices)
    destination = django_filters.ChoiceFilter(choices=Tool.Destination.choices)

    class Meta:
        model = Tool
        fields = ["agent", "transport", "destination"]


class ImportRunFilterSet(StrictFilterSet):
    """``source``, ``agent`` (slug)."""

    source = django_filters.MultipleChoiceFilter(choices=ImportRun.Source.choices)
    agent = agent_filter()

    class Meta:
        model = ImportRun
        fields = ["source", "agent"]
