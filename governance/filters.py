"""FilterSets for findings and audit events, shared by the web UI and the REST API."""

import django_filters

from governance.filtering import AwareIsoDateTimeFilter, StrictFilterSet, ordering_filter
from governance.findings import FINDING_KIND_CHOICES
from governance.models import AuditEvent, Finding
from inventory.filters import agent_filter


class FindingFilterSet(StrictFilterSet):
    """``kind``, ``severity``, ``status`` (repeatable), ``agent`` (slug), ``framework`` (e.g. NHI7);
    ``ordering`` by last_seen, first_seen, severity."""

    kind = django_filters.MultipleChoiceFilter(choices=FINDING_KIND_CHOICES)
    severity = django_filters.MultipleChoiceFilter(choices=Finding.Severity.choices)
    status = django_filters.MultipleChoiceFilter(choices=Finding.Status.choices)
    agent = agent_filter(method="filter_agent")
    framework = django_filters.ChoiceFilter(
        choices=[(f"NHI{i}", f"OWASP NHI{i}") for i in range(1, 11)], method="filter_framework"
    )
    ordering = ordering_filter(
        {"last_seen": "last_seen_at", "first_seen": "first_seen_at", "severity": "severity_rank"}
    )

    class Meta:
        model = Finding
        fields = ["kind", "severity", "status"]

    def filter_agent(self, queryset, name, value):
        return queryset.filter(agent_id=value.pk) if value else queryset

    def filter_framework(self, queryset, name, value):
        # JSON containment is not portable to SQLite; the list is short, so match the quoted id.
        return queryset.filter(framework_refs__icontains=f'"{value}"')


class AuditEventFilterSet(StrictFilterSet):
    """``verb``, ``object_type``, ``object_id``, ``actor_type``, ``since`` / ``until`` (ISO 8601 with offset)."""

    verb = django_filters.CharFilter()
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    actor_type = django_filters.ChoiceFilter(choices=AuditEvent.ActorType.choices)
    since = AwareIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = AwareIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["verb", "object_type", "object_id", "actor_type"]
