"""REST API of risk assessments: list, retrieve and record them; read the questionnaire.

``/api/v1/assessments/`` reads through ``governance.assessments.assessment_list`` and the shared
``AssessmentFilterSet`` (``agent``, ``tier``, ``ordering``; strict); ``POST`` calls
``risk_assessment_record``, which decides who may assess and validates the answers (errors keyed
by factor code). ``/api/v1/assessments/factors/`` is the questionnaire with its points, tiers and
framework references. Token scopes: ``inventory:read`` to read, ``inventory:write`` to record.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from governance.assessments import (
    AssessmentFilterSet,
    assessment_get,
    assessment_list,
    questionnaire,
    risk_assessment_record,
    triggers_of,
)
from governance.models import RiskAssessment
from inventory.api.serializers import agent_field

from .serializers import OutputModelSerializer, StrictInputSerializer
from .viewsets import WarrantViewSet


class RiskAssessmentSerializer(OutputModelSerializer):
    """A risk assessment: the agent (slug and name), who assessed it and when, the answers and the
    points per factor, the score and tier, the critical combinations that held (``triggers``), the
    notes and until when it holds (UTC)."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    assessed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    answers = serializers.JSONField(read_only=True)
    factor_scores = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    tier = serializers.CharField(read_only=True, help_text="low, medium, high or critical.")
    triggers = serializers.SerializerMethodField()

    class Meta:
        model = RiskAssessment
        fields = [
            "id",
            "agent",
            "agent_name",
            "assessed_by",
            "assessed_at",
            "answers",
            "factor_scores",
            "score",
            "tier",
            "triggers",
            "notes",
            "valid_until",
        ]

    def get_triggers(self, obj: RiskAssessment) -> list[str]:
        """Codes of the critical combinations (``/assessments/factors/`` ``triggers``) the answers hold."""
        return [t.code for t in triggers_of(obj.answers)]


class AssessmentCreateInputSerializer(StrictInputSerializer):
    """``{"agent": "<slug>", "answers": {factor code: answer, …}, "notes": "…"}``.

    ``answers`` is checked by the service: every factor of ``/assessments/factors/`` answered with one
    of its values (a list for ``data_classes``); errors come back keyed by factor code.
    """

    read_only_names = ("id", "assessed_by", "assessed_at", "factor_scores", "score", "tier", "valid_until")
    agent = agent_field()
    answers = serializers.DictField(help_text="Factor code → answer value (a list of values for data_classes).")
    notes = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")


@extend_schema_view(
    list=extend_schema(summary="List risk assessments", description="Newest first; filter by `agent`, `tier`."),
    retrieve=extend_schema(summary="Get a risk assessment"),
)
class AssessmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Risk assessments of agents: history kept, an agent's tier is its latest assessment's.

    Owners read the assessments of the agents they own or back up; IAM admins and auditors all.
    """

    serializer_class = RiskAssessmentSerializer
    filterset_class = AssessmentFilterSet
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        if self.is_schema_request:
            return RiskAssessment.objects.none()
        return assessment_list(user=self.request.user)

    @extend_schema(
        summary="Record a risk assessment",
        description="Scores the answers, sets the agent's risk tier to the assessment's, resolves its "
        "reassessment-due finding and applies the tier to grant caps and the attestation cadence at once. "
        "IAM admins assess any agent; its owner or backup owner too, but not to a tier below the current "
        "one (403). Auditors never (403). A decommissioned agent: 409. Bad answers: 400 keyed by factor code.",
        request=AssessmentCreateInputSerializer,
        responses={201: RiskAssessmentSerializer},
    )
    def create(self, request):
        data = self.parse(AssessmentCreateInputSerializer)
        assessment = risk_assessment_record(actor=self.actor, **data)
        return self.render(assessment_get(user=request.user, pk=assessment.pk), code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The risk questionnaire",
        description="Every factor with its question, scoring rule, answers and their points, and the framework "
        "items it answers (OWASP NHI Top 10 2025, OWASP Top 10 for Agentic Applications 2026, NIST AI RMF "
        "functions, CSA MAESTRO layers); the tiers' score ranges and the critical combinations that set a floor.",
        responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT, description="The questionnaire.")},
        filters=False,
    )
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def factors(self, request):
        return Response(questionnaire())
