"""Evidence endpoints for auditors and IAM admins: exports as JSON or CSV, and the framework view.

- ``GET /api/v1/evidence/findings`` — findings with their history, filtered by ``FindingFilterSet``
  (every status unless ``status`` is given);
- ``GET /api/v1/evidence/assessments`` — the risk assessments in force;
- ``GET /api/v1/evidence/campaigns/{id}/attestations`` — one campaign's attestations;
- ``GET /api/v1/evidence/frameworks`` — OWASP NHI and Agentic Top 10 items, their controls and
  open findings (JSON only; not an export, so not audited).

An export is JSON unless CSV is asked for, by ``Accept: text/csv`` or ``?format=csv``; it is
streamed with its file name in ``Content-Disposition``, and audited (``evidence.export``) before
it is sent. Errors are always JSON. Only IAM admins and auditors are answered; an integration
token also needs the ``audit:read`` scope. The builders are ``governance.evidence``'s, shared with
the web pages.
"""

from __future__ import annotations

from django.urls import re_path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from governance import evidence
from governance.attestations import campaign_get
from governance.audit import Actor
from governance.filters import FindingFilterSet
from governance.models import IntegrationToken

from .permissions import TokenScopePermission


class CSVRenderer(BaseRenderer):
    """Declares ``text/csv`` for content negotiation; exports stream their own CSV, so this renderer
    never renders a body itself (error bodies are always JSON)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("CSV bodies are streamed by governance.evidence")


class EvidenceReaders(BasePermission):
    """Refuse (403) everyone but IAM admins and auditors."""

    message = "Only IAM admins and auditors read and export evidence."

    def has_permission(self, request, view):
        return evidence.can_export_evidence(request.user)


FORMAT_PARAMETER = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=["json", "csv"], description="json (default) or csv; or send Accept: text/csv"
)
EXPORT_RESPONSES = {
    (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The export as one JSON object."),
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The export as RFC 4180 CSV, header first."),
}


class EvidenceView(GenericAPIView):
    """Base of the evidence endpoints: who may call, JSON errors, the export's format and its audit."""

    permission_classes = [IsAuthenticated, TokenScopePermission, EvidenceReaders]
    renderer_classes = [JSONRenderer, CSVRenderer]
    read_scope = IntegrationToken.Scope.AUDIT_READ
    http_method_names = ["get", "options"]
    pagination_class = None

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):  # errors and plain JSON answers: never CSV
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def send(self, export: evidence.Export):
        """Audit ``export`` in the negotiated format, then stream it."""
        fmt = self.request.accepted_renderer.format
        evidence.evidence_export_record(actor=Actor.from_request(self.request), export=export, fmt=fmt)
        return evidence.export_response(export, fmt)


def _choice_parameter(name: str, description: str, *, many: bool = True) -> OpenApiParameter:
    choices = [value for value, _ in FindingFilterSet.base_filters[name].extra["choices"]]
    schema = {"type": "array", "items": {"type": "string", "enum": choices}} if many else None
    return OpenApiParameter(
        name,
        schema if many else OpenApiTypes.STR,
        enum=None if many else choices,
        description=description,
        explode=True if many else None,
    )


FINDING_FILTER_PARAMETERS = [
    _choice_parameter("kind", "Finding kinds (repeatable)."),
    _choice_parameter("severity", "Severities (repeatable)."),
    _choice_parameter("status", "Statuses (repeatable); every status when none is given."),
    OpenApiParameter("agent", OpenApiTypes.STR, description="An agent's slug."),
    _choice_parameter("framework", "An OWASP NHI Top 10 (2025) item the finding answers.", many=False),
]


class EvidenceFindingsView(EvidenceView):
    """Findings with their history (audit events), in id order; filtered by ``FindingFilterSet``
    (as the findings queue, but every status unless ``status`` is given)."""

    @extend_schema(
        summary="Export findings with their history (JSON or CSV; audited)",
        parameters=[FORMAT_PARAMETER, *FINDING_FILTER_PARAMETERS],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request):
        export = evidence.findings_export(user=request.user, params=request.query_params, now=timezone.now())
        return self.send(export)


class EvidenceAssessmentsView(EvidenceView):
    """The risk assessment in force for each agent that is not decommissioned."""

    @extend_schema(
        summary="Export the risk assessments in force (JSON or CSV; audited)",
        parameters=[FORMAT_PARAMETER],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request):
        return self.send(evidence.assessments_in_force_export(user=request.user, now=timezone.now()))


class EvidenceCampaignAttestationsView(EvidenceView):
    """One campaign's attestations, with the campaign and its progress."""

    @extend_schema(
        summary="Export a campaign's attestations (JSON or CSV; audited)",
        parameters=[FORMAT_PARAMETER],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request, pk: int):
        campaign = campaign_get(user=request.user, pk=pk)  # an unknown one: 404
        export = evidence.campaign_attestations_export(user=request.user, campaign=campaign, now=timezone.now())
        return self.send(export)


class EvidenceFrameworksView(EvidenceView):
    """OWASP NHI Top 10 (2025) and Agentic Top 10 (2026) items: controls, finding kinds, open findings."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Framework view: controls and open findings per OWASP NHI and ASI item",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Frameworks with their items.")},
    )
    def get(self, request):
        return Response({"frameworks": evidence.framework_view_data(evidence.framework_view(user=request.user))})


#: Added to the API's routes by ``governance.api.urls``; each matches with or without the slash.
urlpatterns = [
    re_path(r"^evidence/findings/?$", EvidenceFindingsView.as_view(), name="evidence-findings"),
    re_path(r"^evidence/assessments/?$", EvidenceAssessmentsView.as_view(), name="evidence-assessments"),
    re_path(
        r"^evidence/campaigns/(?P<pk>[0-9]+)/attestations/?$",
        EvidenceCampaignAttestationsView.as_view(),
        name="evidence-campaign-attestations",
    ),
    re_path(r"^evidence/frameworks/?$", EvidenceFrameworksView.as_view(), name="evidence-frameworks"),
]
