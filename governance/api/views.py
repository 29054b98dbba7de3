"""Governance API viewsets: findings (and working them) and the audit trail (read-only).

Reads go through ``governance.selectors`` and the shared FilterSets of ``governance.filters``;
the finding actions call ``governance.services``, which check who may work which finding.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action

from governance import selectors, services
from governance.filters import AuditEventFilterSet, FindingFilterSet
from governance.models import AuditEvent, Finding, IntegrationToken

from .pagination import AuditCursorPagination
from .serializers import (
    AuditEventSerializer,
    FindingAcceptRiskInputSerializer,
    FindingNoteInputSerializer,
    FindingResolveInputSerializer,
    FindingSerializer,
)
from .viewsets import WarrantViewSet


@extend_schema_view(
    list=extend_schema(summary="List findings"),
    retrieve=extend_schema(summary="Get a finding"),
)
class FindingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Findings: conditions that need a person, each with its kind, severity, status, subject, the
    agent's name and (for credentials) the credential's external id. Owners see and work the
    findings of their agents; IAM admins all; auditors read all."""

    serializer_class = FindingSerializer
    filterset_class = FindingFilterSet
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        if self.is_schema_request:
            return Finding.objects.none()
        return selectors.finding_list(user=self.request.user)

    def _render(self, finding: Finding):
        return self.render(selectors.finding_get(user=self.request.user, pk=finding.pk))

    @extend_schema(
        summary="Acknowledge an open finding", request=FindingNoteInputSerializer, responses=FindingSerializer
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        finding = self.get_object()
        data = self.parse(FindingNoteInputSerializer)
        return self._render(services.finding_acknowledge(actor=self.actor, finding=finding, **data))

    @extend_schema(summary="Resolve a finding", request=FindingResolveInputSerializer, responses=FindingSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        finding = self.get_object()
        data = self.parse(FindingResolveInputSerializer)
        return self._render(services.finding_resolve(actor=self.actor, finding=finding, **data))

    @extend_schema(
        summary="Accept a finding's risk until a date (IAM admins)",
        request=FindingAcceptRiskInputSerializer,
        responses=FindingSerializer,
    )
    @action(detail=True, methods=["post"], url_path="accept-risk")
    def accept_risk(self, request, pk=None):
        finding = self.get_object()
        data = self.parse(FindingAcceptRiskInputSerializer)
        return self._render(services.finding_accept_risk(actor=self.actor, finding=finding, **data))


@extend_schema_view(
    list=extend_schema(summary="List audit events (newest first, cursor-paginated)"),
    retrieve=extend_schema(summary="Get an audit event"),
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """The tamper-evident audit trail, read-only. Cursor pagination (``?cursor=…``) stays stable
    while new events are appended. Needs the ``audit:read`` scope with a token."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    pagination_class = AuditCursorPagination
    read_scope = IntegrationToken.Scope.AUDIT_READ
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "head", "options"]

    def get_queryset(self):
        if self.is_schema_request:
            return AuditEvent.objects.none()
        return selectors.audit_event_list(user=self.request.user)
