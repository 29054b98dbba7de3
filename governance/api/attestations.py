"""Attestations and campaigns API: list and retrieve attestations, the ``attest`` action, and list,
retrieve and launch campaigns.

Reads go through the selectors of ``governance.attestations`` and its shared
``AttestationFilterSet`` / ``CampaignFilterSet`` (unknown filters → 400); writes call its services
(``attestation_attest``, ``campaign_launch``), which decide who may, check the state and the
input, write and audit in one transaction. With an integration token, reads need
``inventory:read`` and writes ``inventory:write`` (an attestation vouches for inventory).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action

from governance import attestations as att
from governance.models import Attestation, Campaign

from .serializers import OutputModelSerializer, StrictInputSerializer
from .viewsets import WarrantViewSet

ID_REGEX = r"[0-9]+"


# --- serializers ---------------------------------------------------------------------------


class AttestationSerializer(OutputModelSerializer):
    """An attestation: the agent (slug and name), due date (organisation's calendar), status, the
    checklist and outcome once answered, the follow-through marks, whether it is ``overdue``
    today and whether the caller may attest it (``can_attest``)."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    campaign = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    attested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    overdue = serializers.SerializerMethodField()
    can_attest = serializers.SerializerMethodField()

    class Meta:
        model = Attestation
        fields = [
            "id",
            "agent",
            "agent_name",
            "campaign",
            "due_on",
            "opened_at",
            "status",
            "overdue",
            "still_needed",
            "owner_correct",
            "grants_appropriate",
            "credentials_rotated",
            "outcome",
            "comment",
            "attested_by",
            "attested_at",
            "reminded_14d_at",
            "reminded_3d_at",
            "reminded_1d_at",
            "escalated_at",
            "enforced_at",
            "enforcement",
            "closed_at",
            "close_reason",
            "can_attest",
        ]

    def _today(self):
        today = self.context.get("today")
        if today is None:
            today = self.context["today"] = att.org_today(timezone.now())
        return today

    def get_overdue(self, obj: Attestation) -> bool:
        """True while it is open and its due date is before today (organisation's calendar)."""
        return obj.status == Attestation.Status.OPEN and obj.due_on < self._today()

    def get_can_attest(self, obj: Attestation) -> bool:
        """True when it is open and the caller is the agent's owner or backup owner."""
        request = self.context.get("request")
        return request is not None and obj.status == Attestation.Status.OPEN and att.can_attest(request.user, obj.agent)


class AttestInputSerializer(StrictInputSerializer):
    """The owner's answer: the four checklist answers (``true``/``false``), the ``outcome`` (keep,
    reduce, decommission), an optional ``comment`` and, with reduce, ``revoke_grants`` — the ids of
    the agent's active grants to revoke (at least one)."""

    read_only_names = ("id", "agent", "status", "attested_by", "attested_at", "due_on", "campaign")
    still_needed = serializers.BooleanField()
    owner_correct = serializers.BooleanField()
    grants_appropriate = serializers.BooleanField()
    credentials_rotated = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=Attestation.Outcome.choices)
    comment = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")
    revoke_grants = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=500
    )


class TeamProgressSerializer(serializers.Serializer):
    team = serializers.CharField(source="slug", allow_blank=True, help_text="Team slug; empty for agents without one.")
    name = serializers.CharField(allow_blank=True)
    agents = serializers.IntegerField(source="total")
    attested = serializers.IntegerField()
    share = serializers.FloatField()


class CampaignSerializer(OutputModelSerializer):
    """A campaign with its progress: ``agents`` (in scope, registered by the launch, live or
    decommissioned since), ``attested`` (attested since the launch) and ``share`` (0.0–1.0)."""

    launched_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    agents = serializers.IntegerField(source="agents_total", read_only=True)
    attested = serializers.IntegerField(source="agents_attested", read_only=True)
    share = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "description",
            "scope_kind",
            "scope_value",
            "deadline",
            "launched_by",
            "launched_at",
            "closed_at",
            "agents",
            "attested",
            "share",
        ]

    def get_share(self, obj: Campaign) -> float:
        """Attested agents over the campaign's agents (0.0 when it has none)."""
        return att.campaign_progress(obj).share


class CampaignDetailSerializer(CampaignSerializer):
    """A campaign with its progress and the per-team breakdown (``teams``)."""

    teams = serializers.SerializerMethodField()

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "teams"]

    @extend_schema_field(TeamProgressSerializer(many=True))
    def get_teams(self, obj: Campaign) -> list[dict]:
        """The campaign's progress per team, by team name (agents without a team last)."""
        return TeamProgressSerializer(att.campaign_team_breakdown(obj), many=True).data


class CampaignLaunchInputSerializer(StrictInputSerializer):
    """Launch a campaign: ``name``, ``scope_kind`` (all, tier, team, environment), ``scope_value``
    (the tier, team slug or environment; empty for all) and ``deadline`` (a date, YYYY-MM-DD)."""

    read_only_names = ("id", "launched_by", "launched_at", "closed_at", "agents", "attested", "share", "teams")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")
    scope_kind = serializers.ChoiceField(choices=Campaign.ScopeKind.choices)
    scope_value = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    deadline = serializers.DateField(input_formats=["iso-8601"])


# --- viewsets ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List attestations"),
    retrieve=extend_schema(summary="Get an attestation"),
)
class AttestationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Owner attestations: an owner vouches, on a cadence set by the agent's risk tier, that it is
    still needed, its owner is right, its grants appropriate and its credentials rotated. Owners see
    those of the agents they own or back up; IAM admins and auditors see all."""

    serializer_class = AttestationSerializer
    filterset_class = att.AttestationFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Attestation.objects.none()
        return att.attestation_list(user=self.request.user)

    @extend_schema(
        summary="Answer an attestation (the agent's owner or backup owner)",
        description="Decided once: a second answer is 409. 403 for anyone but the agent's owner or backup owner "
        "(IAM admins included: nobody attests an agent they do not own). An agent no longer needed, or whose "
        "owner is not right, can only be decommissioned; `reduce` revokes the chosen active grants; credentials "
        "not rotated need a `comment` (400 otherwise). The agent's next attestation falls due its tier's cadence "
        "after today.",
        request=AttestInputSerializer,
        responses=AttestationSerializer,
    )
    @action(detail=True, methods=["post"])
    def attest(self, request, pk=None):
        attestation = self.get_object()
        data = self.parse(AttestInputSerializer)
        att.attestation_attest(actor=self.actor, attestation=attestation, **data)
        return self.render(att.attestation_get(user=request.user, pk=attestation.pk))


@extend_schema_view(
    list=extend_schema(summary="List attestation campaigns (IAM admins and auditors)"),
    retrieve=extend_schema(summary="Get a campaign with its per-team progress", responses=CampaignDetailSerializer),
)
class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Attestation campaigns an IAM admin launches over a scope with a deadline, and their progress.
    IAM admins and auditors read them; for anyone else the list is empty."""

    serializer_class = CampaignSerializer
    filterset_class = att.CampaignFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Campaign.objects.none()
        return att.campaign_list(user=self.request.user)

    def get_serializer_class(self):
        return CampaignDetailSerializer if self.action == "retrieve" else CampaignSerializer

    @extend_schema(
        summary="Launch a campaign (IAM admins)",
        description="Opens (or attaches) an attestation due on the deadline for every live agent in scope; "
        "an earlier due date is kept. 400 for an unknown scope value or a deadline not after today.",
        request=CampaignLaunchInputSerializer,
        responses={201: CampaignDetailSerializer},
    )
    def create(self, request):
        data = self.parse(CampaignLaunchInputSerializer)
        campaign = att.campaign_launch(actor=self.actor, **data)
        return self.render(
            att.campaign_get(user=request.user, pk=campaign.pk),
            code=status.HTTP_201_CREATED,
            serializer_class=CampaignDetailSerializer,
        )
