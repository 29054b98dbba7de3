"""FilterSets for delegation grants, shared by the web UI list pages and the REST API."""

import django_filters
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from governance.filtering import AwareIsoDateTimeFilter, StrictFilterSet, StrippedModelChoiceFilter, ordering_filter
from inventory.filters import agent_filter

from .decisions import REASONS
from .models import DecisionLog, DelegationGrant

User = get_user_model()


class GrantFilterSet(StrictFilterSet):
    """``status`` (one or more of ``DelegationGrant.STATES``, judged as of now: ``active`` means
    authorising now, ``expired`` includes grants whose end has come before the job ran),
    ``agent`` (slug), ``tool`` (tool name in a scope), ``expires_before`` / ``expires_after``
    (ISO 8601 with offset), ``requested_by`` (username); ``ordering`` by requested, expires,
    agent."""

    status = django_filters.MultipleChoiceFilter(choices=DelegationGrant.STATES, method="filter_status")
    agent = agent_filter()
    tool = django_filters.CharFilter(method="filter_tool")
    expires_before = AwareIsoDateTimeFilter(field_name="expires_at", lookup_expr="lt")
    expires_after = AwareIsoDateTimeFilter(field_name="expires_at", lookup_expr="gte")
    requested_by = StrippedModelChoiceFilter(
        queryset=User.objects.all(), to_field_name="username", field_name="requested_by"
    )
    ordering = ordering_filter({"requested": "requested_at", "expires": "expires_at", "agent": "agent__name"})

    class Meta:
        model = DelegationGrant
        fields = ["status", "agent", "tool", "expires_before", "expires_after", "requested_by"]

    def filter_status(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.in_state_at(value, timezone.now())

    def filter_tool(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(pk__in=DelegationGrant.objects.filter(scopes__tool_name=value).values("pk"))


class DecisionLogFilterSet(StrictFilterSet):
    """Filters of the decision log: ``agent`` (slug), ``outcome`` (``allow`` / ``deny``), ``reason``
    (one reason code of ``delegations.decisions.REASONS``), ``out_of_scope`` (``true``: only denials
    beyond the agent's grants; ``false``: the others), ``tool`` (exact name). An unknown parameter or
    value is an error (400 on the page)."""

    agent = agent_filter()
    outcome = django_filters.ChoiceFilter(choices=DecisionLog.Outcome.choices)
    reason = django_filters.ChoiceFilter(choices=[(code, code) for code in REASONS], method="filter_reason")
    out_of_scope = django_filters.ChoiceFilter(
        choices=[("true", "Out of scope only"), ("false", "Not out of scope")], method="filter_out_of_scope"
    )
    tool = django_filters.CharFilter(field_name="tool_name")

    class Meta:
        model = DecisionLog
        fields = ["agent", "outcome", "reason", "out_of_scope", "tool"]

    def filter_reason(self, queryset, name, value):
        if not value:
            return queryset
        if connection.features.supports_json_field_contains:
            return queryset.filter(reasons__contains=[value])
        # SQLite: the JSON text holds each code quoted, and no code is another's quoted form.
        return queryset.filter(reasons__icontains=f'"{value}"')

    def filter_out_of_scope(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(out_of_scope=value == "true")
