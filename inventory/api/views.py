"""Inventory API viewsets: agents, teams, workload identities, credentials, tools, imports.

Each endpoint parses with an input serializer, calls one service (which checks permission —
on create too — and state, validates, writes and records the audit event) and renders with an
output serializer. Reads go through ``inventory.selectors`` and the shared FilterSets of
``inventory.filters``; objects the caller may not see are 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from governance.api.serializers import OptionalReasonInputSerializer, ReasonInputSerializer
from governance.api.viewsets import WarrantViewSet
from governance.errors import Conflict
from governance.models import IntegrationToken
from inventory import selectors, services
from inventory.filters import (
    AgentFilterSet,
    CredentialFilterSet,
    ImportRunFilterSet,
    TeamFilterSet,
    ToolFilterSet,
    WorkloadIdentityFilterSet,
)
from inventory.importers import run_import
from inventory.models import Agent, Credential, ImportRun, Team, Tool, WorkloadIdentity

from .serializers import (
    AgentCreateInputSerializer,
    AgentSerializer,
    AgentUpdateInputSerializer,
    AssignOwnerInputSerializer,
    CredentialCreateInputSerializer,
    CredentialRevokeInputSerializer,
    CredentialRotateInputSerializer,
    CredentialSerializer,
    ImportInputSerializer,
    ImportRunSerializer,
    TeamInputSerializer,
    TeamSerializer,
    ToolCreateInputSerializer,
    ToolSerializer,
    ToolUpdateInputSerializer,
    WorkloadIdentityInputSerializer,
    WorkloadIdentitySerializer,
)

ID_REGEX = r"[0-9]+"
SLUG_REGEX = r"[-a-zA-Z0-9_]+"
DELETED = {204: OpenApiResponse(description="Deleted.")}
#: Why ``set-risk-tier`` changes nothing: the tier comes from risk assessments (the governance domain's API).
RISK_TIER_BY_ASSESSMENT = (
    "An agent's risk tier is its latest risk assessment's: record one with POST /api/v1/assessments/ "
    "(the questionnaire: GET /api/v1/assessments/factors/). Nothing was changed."
)


@extend_schema_view(
    list=extend_schema(summary="List teams"),
    retrieve=extend_schema(summary="Get a team by slug"),
)
class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Teams: everyone signed in reads them; IAM admins create and change them."""

    serializer_class = TeamSerializer
    filterset_class = TeamFilterSet
    lookup_field = "slug"
    lookup_value_regex = SLUG_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Team.objects.none()
        return selectors.team_list(user=self.request.user)

    def _reload(self, team: Team) -> Team:
        return selectors.team_list(user=self.request.user).get(pk=team.pk)

    @extend_schema(summary="Create a team (IAM admins)", request=TeamInputSerializer, responses={201: TeamSerializer})
    def create(self, request):
        data = self.parse(TeamInputSerializer)
        team = services.team_create(actor=self.actor, **data)
        return self.render(self._reload(team), code=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a team (IAM admins)", request=TeamInputSerializer, responses=TeamSerializer)
    def partial_update(self, request, slug=None):
        team = self.get_object()
        data = self.parse(TeamInputSerializer, partial=True)
        team = services.team_update(actor=self.actor, team=team, **data)
        return self.render(self._reload(team))


@extend_schema_view(
    list=extend_schema(summary="List agents"),
    retrieve=extend_schema(summary="Get an agent by slug"),
)
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Agents and their lifecycle: ``proposed → active ⇄ suspended → decommissioned``.

    Owners see and change the agents they own or back up; IAM admins all; auditors read all.
    """

    serializer_class = AgentSerializer
    filterset_class = AgentFilterSet
    lookup_field = "slug"
    lookup_value_regex = SLUG_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Agent.objects.none()
        return selectors.agent_list(user=self.request.user)

    @extend_schema(
        summary="Register an agent",
        description="The agent starts proposed. `owner` defaults to the caller; an agent owner registers "
        "only agents they own themselves (403 otherwise). Owners and backup owners must be agent owners or "
        "IAM admins (400 otherwise). Only IAM admins may give a `risk_tier` other than `unassessed` (403).",
        request=AgentCreateInputSerializer,
        responses={201: AgentSerializer},
    )
    def create(self, request):
        data = self.parse(AgentCreateInputSerializer)
        data.setdefault("owner", request.user)
        agent = services.agent_register(actor=self.actor, **data)
        return self.render(agent, code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an agent's description", request=AgentUpdateInputSerializer, responses=AgentSerializer
    )
    def partial_update(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(AgentUpdateInputSerializer, partial=True)
        return self.render(services.agent_update(actor=self.actor, agent=agent, **data))

    @extend_schema(
        summary="Activate a proposed agent (IAM admins)",
        request=OptionalReasonInputSerializer,
        responses=AgentSerializer,
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(OptionalReasonInputSerializer)
        return self.render(services.agent_activate(actor=self.actor, agent=agent, **data))

    @extend_schema(
        summary="Reactivate a suspended agent (IAM admins)", request=ReasonInputSerializer, responses=AgentSerializer
    )
    @action(detail=True, methods=["post"])
    def reactivate(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(ReasonInputSerializer)
        return self.render(services.agent_reactivate(actor=self.actor, agent=agent, **data))

    @extend_schema(summary="Suspend an active agent", request=ReasonInputSerializer, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(ReasonInputSerializer)
        return self.render(services.agent_suspend(actor=self.actor, agent=agent, **data))

    @extend_schema(
        summary="Decommission an agent (terminal)",
        description="Raises a finding for every credential still active.",
        request=ReasonInputSerializer,
        responses=AgentSerializer,
    )
    @action(detail=True, methods=["post"])
    def decommission(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(ReasonInputSerializer)
        return self.render(services.agent_decommission(actor=self.actor, agent=agent, **data))

    @extend_schema(
        summary="Set an agent's risk tier (retired: record a risk assessment)",
        description="An agent's risk tier is its latest risk assessment's. Record one with "
        "`POST /api/v1/assessments/`; the questionnaire is `GET /api/v1/assessments/factors/`. This action "
        "changes nothing: 409 for every agent the caller may change, naming those endpoints.",
        request=None,
        responses={409: OpenApiResponse(description="Always: the tier comes from a risk assessment.")},
        deprecated=True,
    )
    @action(detail=True, methods=["post"], url_path="set-risk-tier")
    def set_risk_tier(self, request, slug=None):
        self.get_object()
        raise Conflict(RISK_TIER_BY_ASSESSMENT)

    @extend_schema(
        summary="Assign or transfer ownership",
        description="`owner` and `backup_owner` by username; `backup_owner: null` removes the backup owner, "
        "leaving it out keeps it. IAM admins may assign any agent; its owner may transfer it; its backup owner "
        "only once the owner is no longer active (403 otherwise). Owners and backup owners must be agent "
        "owners or IAM admins, never auditors (400).",
        request=AssignOwnerInputSerializer,
        responses=AgentSerializer,
    )
    @action(detail=True, methods=["post"], url_path="assign-owner")
    def assign_owner(self, request, slug=None):
        agent = self.get_object()
        data = self.parse(AssignOwnerInputSerializer)
        data.setdefault("backup_owner", ...)
        return self.render(services.agent_assign_owner(actor=self.actor, agent=agent, **data))


@extend_schema_view(
    list=extend_schema(summary="List workload identities"),
    retrieve=extend_schema(summary="Get a workload identity"),
)
class WorkloadIdentityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Workload identities: how each agent proves what it is (one identity, one agent: OWASP NHI9)."""

    serializer_class = WorkloadIdentitySerializer
    filterset_class = WorkloadIdentityFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return WorkloadIdentity.objects.none()
        return selectors.workload_identity_list(user=self.request.user)

    @extend_schema(
        summary="Bind a workload identity to an agent",
        request=WorkloadIdentityInputSerializer,
        responses={201: WorkloadIdentitySerializer},
    )
    def create(self, request):
        data = self.parse(WorkloadIdentityInputSerializer)
        identity = services.workload_identity_add(actor=self.actor, **data)
        return self.render(identity, code=status.HTTP_201_CREATED)

    @extend_schema(summary="Unbind a workload identity", responses=DELETED)
    def destroy(self, request, pk=None):
        services.workload_identity_remove(actor=self.actor, identity=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List credentials"),
    retrieve=extend_schema(summary="Get a credential"),
)
class CredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Credentials agents hold — never the secret: kind, provider, external id or fingerprint, dates."""

    serializer_class = CredentialSerializer
    filterset_class = CredentialFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Credential.objects.none()
        return selectors.credential_list(user=self.request.user)

    @extend_schema(
        summary="Record a credential", request=CredentialCreateInputSerializer, responses={201: CredentialSerializer}
    )
    def create(self, request):
        data = self.parse(CredentialCreateInputSerializer)
        credential = services.credential_record(actor=self.actor, **data)
        return self.render(credential, code=status.HTTP_201_CREATED)

    @extend_schema(summary="Record a rotation", request=CredentialRotateInputSerializer, responses=CredentialSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        credential = self.get_object()
        data = self.parse(CredentialRotateInputSerializer)
        return self.render(services.credential_rotate(actor=self.actor, credential=credential, **data))

    @extend_schema(
        summary="Record that a credential was revoked",
        request=CredentialRevokeInputSerializer,
        responses=CredentialSerializer,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        credential = self.get_object()
        data = self.parse(CredentialRevokeInputSerializer)
        return self.render(services.credential_revoke(actor=self.actor, credential=credential, **data))


@extend_schema_view(
    list=extend_schema(summary="List tools"),
    retrieve=extend_schema(summary="Get a tool"),
)
class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Tools agents can call (MCP servers, APIs), with access levels read / write / execute."""

    serializer_class = ToolSerializer
    filterset_class = ToolFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return Tool.objects.none()
        return selectors.tool_list(user=self.request.user)

    @extend_schema(summary="Add a tool to an agent", request=ToolCreateInputSerializer, responses={201: ToolSerializer})
    def create(self, request):
        data = self.parse(ToolCreateInputSerializer)
        tool = services.tool_add(actor=self.actor, **data)
        return self.render(tool, code=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a tool", request=ToolUpdateInputSerializer, responses=ToolSerializer)
    def partial_update(self, request, pk=None):
        tool = self.get_object()
        data = self.parse(ToolUpdateInputSerializer, partial=True)
        return self.render(services.tool_update(actor=self.actor, tool=tool, **data))

    @extend_schema(summary="Remove a tool", responses=DELETED)
    def destroy(self, request, pk=None):
        services.tool_remove(actor=self.actor, tool=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(list=extend_schema(summary="List import runs"))
class ImportViewSet(mixins.ListModelMixin, WarrantViewSet):
    """Import runs of AWS IAM credential reports and MCP client configurations.

    ``POST`` (multipart/form-data) runs an import: all or nothing; a malformed file is a 400
    naming its line and column and writes nothing. Needs the ``imports:write`` scope with a token.
    """

    serializer_class = ImportRunSerializer
    filterset_class = ImportRunFilterSet
    write_scope = IntegrationToken.Scope.IMPORTS_WRITE
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if self.is_schema_request:
            return ImportRun.objects.none()
        return selectors.import_run_list(user=self.request.user)

    @extend_schema(
        summary="Run an import",
        request={"multipart/form-data": ImportInputSerializer},
        responses={201: ImportRunSerializer},
    )
    def create(self, request):
        data = self.parse(ImportInputSerializer)
        upload = data.pop("file")
        run = run_import(actor=self.actor, content=upload.read(), filename=upload.name, **data)
        return self.render(run, code=status.HTTP_201_CREATED)
