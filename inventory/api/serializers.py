"""Input and output serializers of the inventory API.

Input serializers only parse (types, choices, lengths, UTC offsets, references by slug or
username); the rules across rows, states and people live in ``inventory.services``.
People are named by username, agents and teams by slug.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from governance.api.serializers import (
    OutputModelSerializer,
    StrictDateTimeField,
    StrictInputSerializer,
)
from inventory.models import AccessLevel, Agent, Credential, DataClass, ImportRun, Team, Tool, WorkloadIdentity
from inventory.permissions import allowed_transitions
from inventory.services import CREDENTIAL_FIELDS

User = get_user_model()


def person_field(**kwargs) -> serializers.SlugRelatedField:
    """A person named by username (any account; the service checks that they are active)."""
    return serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all(), **kwargs)


def agent_field(**kwargs) -> serializers.SlugRelatedField:
    """An agent named by slug. Resolved among all agents so that the service, not the parser,
    decides whether the caller may act on it (403, not a misleading 400)."""
    return serializers.SlugRelatedField(slug_field="slug", queryset=Agent.objects.all(), **kwargs)


def team_field(**kwargs) -> serializers.SlugRelatedField:
    """A team named by slug."""
    return serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), **kwargs)


def choice_list(choices, **kwargs) -> serializers.ListField:
    """A list of values from ``choices`` (duplicates are refused by the model)."""
    return serializers.ListField(child=serializers.ChoiceField(choices=choices), **kwargs)


# --- teams ---------------------------------------------------------------------------------


class TeamSerializer(OutputModelSerializer):
    agent_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "description", "agent_count"]


class TeamInputSerializer(StrictInputSerializer):
    """Create a team (``name`` required; ``slug`` defaults to the slugified name) or PATCH one."""

    read_only_names = ("id", "agent_count")
    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=100, required=False)
    description = serializers.CharField(allow_blank=True, required=False, max_length=5000)


# --- agents --------------------------------------------------------------------------------


class AgentSerializer(OutputModelSerializer):
    """An agent with its owner and backup owner (usernames), team (slug), lifecycle state and the
    lifecycle actions the viewer may take now (``allowed_actions``)."""

    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    backup_owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    data_classes = serializers.ListField(child=serializers.CharField(), read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = [
            "id",
            "slug",
            "name",
            "purpose",
            "kind",
            "platform",
            "environment",
            "owner",
            "backup_owner",
            "team",
            "state",
            "state_changed_at",
            "state_reason",
            "autonomy_level",
            "data_classes",
            "risk_tier",
            "source",
            "external_ref",
            "next_attestation_due",
            "created_at",
            "updated_at",
            "allowed_actions",
        ]

    def get_allowed_actions(self, obj: Agent) -> list[str]:
        """Lifecycle actions the requesting user may take now: activate, reactivate, suspend, decommission."""
        request = self.context.get("request")
        return allowed_transitions(request.user, obj) if request is not None else []


AGENT_READ_ONLY = (
    "id",
    "state",
    "state_changed_at",
    "state_reason",
    "source",
    "external_ref",
    "next_attestation_due",
    "created_at",
    "updated_at",
    "allowed_actions",
)


class AgentCreateInputSerializer(StrictInputSerializer):
    """Register an agent (``inventory.services.agent_register``). ``owner`` defaults to the caller;
    ``risk_tier`` other than unassessed only from IAM admins (the service refuses others with 403)."""

    read_only_names = AGENT_READ_ONLY
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Agent.Kind.choices)
    owner = person_field(required=False)
    slug = serializers.SlugField(max_length=100, required=False)
    purpose = serializers.CharField(allow_blank=True, required=False, max_length=5000)
    platform = serializers.CharField(allow_blank=True, required=False, max_length=100)
    environment = serializers.ChoiceField(choices=Agent.Environment.choices, required=False)
    backup_owner = person_field(required=False, allow_null=True)
    team = team_field(required=False, allow_null=True)
    autonomy_level = serializers.ChoiceField(choices=Agent.Autonomy.choices, required=False)
    data_classes = choice_list(DataClass.choices, required=False)
    risk_tier = serializers.ChoiceField(choices=Agent.RiskTier.choices, required=False)


class AgentUpdateInputSerializer(StrictInputSerializer):
    """PATCH an agent's descriptive fields (``inventory.services.agent_update``).

    Ownership changes through ``assign-owner``, the state through the lifecycle actions."""

    read_only_names = (*AGENT_READ_ONLY, "slug", "owner", "backup_owner", "risk_tier")
    name = serializers.CharField(max_length=200)
    purpose = serializers.CharField(allow_blank=True, max_length=5000)
    kind = serializers.ChoiceField(choices=Agent.Kind.choices)
    platform = serializers.CharField(allow_blank=True, max_length=100)
    environment = serializers.ChoiceField(choices=Agent.Environment.choices)
    team = team_field(allow_null=True)
    autonomy_level = serializers.ChoiceField(choices=Agent.Autonomy.choices)
    data_classes = choice_list(DataClass.choices)


class AssignOwnerInputSerializer(StrictInputSerializer):
    """``owner`` (username, required), ``backup_owner`` (username; null removes it; absent keeps it),
    ``reason`` (optional)."""

    read_only_names = ("state",)
    owner = person_field()
    backup_owner = person_field(required=False, allow_null=True)
    reason = serializers.CharField(allow_blank=True, required=False, default="", max_length=2000)


# --- workload identities -------------------------------------------------------------------


class WorkloadIdentitySerializer(OutputModelSerializer):
    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)

    class Meta:
        model = WorkloadIdentity
        fields = ["id", "agent", "agent_name", "type", "issuer", "identifier", "created_at"]


class WorkloadIdentityInputSerializer(StrictInputSerializer):
    """Bind an identity to an agent (``inventory.services.workload_identity_add``)."""

    read_only_names = ("id", "agent_name", "created_at")
    agent = agent_field()
    type = serializers.ChoiceField(choices=WorkloadIdentity.Type.choices)
    identifier = serializers.CharField(max_length=500)
    issuer = serializers.CharField(max_length=300, allow_blank=True, required=False, default="")


# --- credentials ---------------------------------------------------------------------------


class CredentialSerializer(OutputModelSerializer):
    """A credential (never its secret): the agent's slug and name, kind, provider, external id,
    fingerprint, dates (UTC) and status."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)

    class Meta:
        model = Credential
        fields = [
            "id",
            "agent",
            "agent_name",
            *(name for name in CREDENTIAL_FIELDS if name != "agent"),
            "status_changed_at",
            "recorded_at",
        ]


class CredentialCreateInputSerializer(StrictInputSerializer):
    """Record a credential (``inventory.services.credential_record``); datetimes need a UTC offset."""

    read_only_names = ("id", "agent_name", "status", "status_changed_at", "recorded_at")
    agent = agent_field()
    kind = serializers.ChoiceField(choices=Credential.Kind.choices)
    provider = serializers.CharField(max_length=64)
    external_id = serializers.CharField(max_length=300)
    created_at = StrictDateTimeField()
    fingerprint = serializers.CharField(max_length=100, allow_blank=True, required=False)
    label = serializers.CharField(max_length=200, allow_blank=True, required=False)
    last_rotated_at = StrictDateTimeField(required=False, allow_null=True)
    last_used_at = StrictDateTimeField(required=False, allow_null=True)
    usage_tracked = serializers.BooleanField(required=False)
    observed_at = StrictDateTimeField(required=False, allow_null=True)
    expires_at = StrictDateTimeField(required=False, allow_null=True)
    rotation_period_days = serializers.IntegerField(min_value=1, max_value=36500, required=False, allow_null=True)
    ephemeral = serializers.BooleanField(required=False)


class CredentialRotateInputSerializer(StrictInputSerializer):
    """``rotated_at`` (default now), ``fingerprint`` (new sha256:…), ``expires_at`` of the new secret."""

    read_only_names = ("id", "status", "last_rotated_at")
    rotated_at = StrictDateTimeField(required=False, allow_null=True)
    fingerprint = serializers.CharField(max_length=100, allow_blank=True, required=False)
    expires_at = StrictDateTimeField(required=False, allow_null=True)


class CredentialRevokeInputSerializer(StrictInputSerializer):
    """``{"reason": "…"}``: why the credential was revoked at its provider."""

    read_only_names = ("id", "status")
    reason = serializers.CharField(max_length=2000, allow_blank=True)


# --- tools ---------------------------------------------------------------------------------


class ToolSerializer(OutputModelSerializer):
    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    args = serializers.ListField(child=serializers.CharField(), read_only=True)
    env_keys = serializers.ListField(child=serializers.CharField(), read_only=True)
    access_levels = serializers.ListField(child=serializers.CharField(), read_only=True)
    data_classes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Tool
        fields = [
            "id",
            "agent",
            "agent_name",
            "name",
            "transport",
            "command",
            "args",
            "url",
            "env_keys",
            "access_levels",
            "data_classes",
            "destination",
            "source",
            "created_at",
            "updated_at",
        ]


class ToolUpdateInputSerializer(StrictInputSerializer):
    """PATCH a tool (``inventory.services.tool_update``); its agent cannot change."""

    read_only_names = ("id", "agent", "agent_name", "created_at", "updated_at")
    name = serializers.CharField(max_length=100)
    transport = serializers.ChoiceField(choices=Tool.Transport.choices)
    command = serializers.CharField(max_length=500, allow_blank=True)
    args = serializers.ListField(child=serializers.CharField(max_length=1000, allow_blank=True))
    url = serializers.CharField(max_length=1000, allow_blank=True)
    env_keys = serializers.ListField(child=serializers.CharField(max_length=200))
    access_levels = choice_list(AccessLevel.choices)
    data_classes = choice_list(DataClass.choices)
    destination = serializers.ChoiceField(choices=Tool.Destination.choices)
    source = serializers.CharField(max_length=200, allow_blank=True)


class ToolCreateInputSerializer(ToolUpdateInputSerializer):
    """Add a tool to an agent (``inventory.services.tool_add``): ``agent``, ``name`` and
    ``transport`` required; ``command`` for stdio, ``url`` for remote transports."""

    read_only_names = ("id", "agent_name", "created_at", "updated_at")
    agent = agent_field()

    def get_fields(self):
        fields = super().get_fields()
        for name, f in fields.items():
            if name not in ("agent", "name", "transport"):
                f.required = False
        return fields


# --- imports -------------------------------------------------------------------------------


class ImportInputSerializer(StrictInputSerializer):
    """multipart/form-data: ``source``, ``file`` (size and content are judged by the importer),
    ``agent`` (slug, for mcp-config), ``observed_at`` (ISO 8601 with offset: as of when the
    file's usage data is true)."""

    read_only_names = ("id", "sha256", "summary", "created_at", "actor_label", "filename")
    source = serializers.ChoiceField(choices=ImportRun.Source.choices)
    file = serializers.FileField(max_length=255, allow_empty_file=False)
    agent = agent_field(required=False, allow_null=True)
    observed_at = StrictDateTimeField(required=False, allow_null=True)


class ImportRunSerializer(OutputModelSerializer):
    """One import run: source, file name and SHA-256, as-of time, who ran it, the agent (slug,
    for MCP configurations) and the counts of what it found and changed."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    summary = serializers.DictField(read_only=True)

    class Meta:
        model = ImportRun
        fields = ["id", "source", "filename", "sha256", "observed_at", "created_at", "actor_label", "agent", "summary"]
