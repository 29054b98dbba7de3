"""Input and output serializers of the delegation grants API.

Input serializers only parse (JSON types, choices, lengths, UTC offsets, references by slug,
username or id); the rules — who may request or decide, caps per risk tier, separation of
duties, attenuation along a chain — live in ``delegations.services``. Agents are named by
slug, people by username, grants by id. A grant referred to by id (``parent``, the items of a
bulk renewal) must be one the caller may see; any other id reads as unknown.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from delegations.models import Approval, DelegationGrant, GrantScope
from delegations.permissions import (
    grant_actions,
    visible_grants_q,
)
from governance.api.serializers import OutputModelSerializer, StrictDateTimeField, StrictInputSerializer
from inventory.api.serializers import agent_field, person_field
from inventory.models import AccessLevel

#: Longest renewal that may be asked for in seconds (ten years); the policy's cap per risk tier
#: refuses far less, this bound only keeps date arithmetic in range.
MAX_DURATION_SECONDS = 3650 * 86400
#: Most items in one bulk renewal.
MAX_BULK_ITEMS = 500

#: The fields of a grant's representation that a client never writes.
GRANT_READ_ONLY = (
    "id",
    "agent_name",
    "risk_tier",
    "status",
    "state",
    "depth",
    "renewal_of",
    "requested_by",
    "requested_via",
    "requested_at",
    "approvals_required",
    "approvals",
    "decided_at",
    "decided_by",
    "decision_reason",
    "ended_at",
    "ended_by",
    "end_reason",
    "allowed_actions",
)


@extend_schema_field(OpenApiTypes.INT)
class VisibleGrantField(serializers.PrimaryKeyRelatedField):
    """A grant named by its id (a JSON integer), among the grants the requesting user may see
    (``visible_grants_q``): an id the caller may not see is refused like an unknown one."""

    default_error_messages = {
        **serializers.PrimaryKeyRelatedField.default_error_messages,
        "incorrect_type": "Give the grant's id as a JSON integer, not {data_type}.",
    }

    def get_queryset(self):
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return DelegationGrant.objects.filter(visible_grants_q(user)).select_related("agent", "parent")

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


# --- output --------------------------------------------------------------------------------


class GrantScopeSerializer(OutputModelSerializer):
    """One scope: the tool's name, the access level (read, write, execute) and the resource
    pattern (empty for any resource; an exact resource; a prefix ending in ``*``)."""

    tool = serializers.CharField(source="tool_name", read_only=True)
    resource = serializers.CharField(source="resource_pattern", read_only=True)

    class Meta:
        model = GrantScope
        fields = ["tool", "access", "resource"]


class ApprovalSerializer(OutputModelSerializer):
    """One approver's decision: who (username), approve or deny, the comment, when (UTC)."""

    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Approval
        fields = ["approver", "decision", "comment", "decided_at"]


class GrantSerializer(OutputModelSerializer):
    """A delegation grant: the agent (slug, name and current risk tier), its scopes, purpose,
    intents and justification, the person it acts for, its chain (``parent``, ``depth``), the
    grant it renews, who asked and through which integration, its window (``starts_at`` ≤ t <
    ``expires_at``, UTC), the approvals it needs and has, its decision and its end.

    ``status`` is the stored status; ``state`` is what the grant is now by the enforcement rule
    (``DelegationGrant.objects.active_at``): ``active``, ``scheduled``, ``blocked``, ``expired``
    — even before the expiry job has run — or the stored status. ``allowed_actions`` are the
    actions the requesting person may take on it now.
    """

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    risk_tier = serializers.CharField(source="agent.risk_tier", read_only=True)
    state = serializers.ChoiceField(choices=DelegationGrant.STATES, read_only=True)
    scopes = GrantScopeSerializer(many=True, read_only=True)
    intents = serializers.ListField(child=serializers.CharField(), read_only=True)
    on_behalf_of = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    parent = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    renewal_of = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = DelegationGrant
        fields = [
            "id",
            "agent",
            "agent_name",
            "risk_tier",
            "status",
            "state",
            "scopes",
            "purpose",
            "intents",
            "justification",
            "on_behalf_of",
            "parent",
            "depth",
            "renewal_of",
            "requested_by",
            "requested_via",
            "requested_at",
            "starts_at",
            "expires_at",
            "approvals_required",
            "approvals",
            "decided_at",
            "decided_by",
            "decision_reason",
            "ended_at",
            "ended_by",
            "end_reason",
            "allowed_actions",
        ]

    def get_allowed_actions(self, obj: DelegationGrant) -> list[str]:
        """Actions the requesting user may take now: approve and deny (``decision_refusal``), cancel
        (pending), revoke (active), renew (active or expired) — by the rules in ``delegations.permissions``."""
        request = self.context.get("request")
        return allowed_grant_actions(request.user, obj) if request is not None else []


def allowed_grant_actions(user, grant: DelegationGrant) -> list[str]:
    """``delegations.permissions.grant_actions`` as of now, from the grant's prefetched approvals
    (``grant_list``), so a page of grants costs no query per row."""
    return grant_actions(user, grant, now=timezone.now(), approvals=list(grant.approvals.all()))


class RevokedGrantSerializer(GrantSerializer):
    """The revoked grant, and ``ended``: the ids of every grant the revocation ended — the grant
    itself first, then its descendants (active ones revoked, pending ones cancelled)."""

    ended = serializers.ListField(child=serializers.IntegerField(), read_only=True, source="ended_ids")

    class Meta(GrantSerializer.Meta):
        fields = [*GrantSerializer.Meta.fields, "ended"]


class RenewalResultSerializer(serializers.Serializer):
    """One item of a bulk renewal: the grant asked about (id), the renewal request made for it
    (or null) and why it was refused (or null)."""

    grant = serializers.IntegerField(source="grant.pk", read_only=True)
    renewal = GrantSerializer(read_only=True, allow_null=True)
    error = serializers.CharField(read_only=True, allow_null=True)


class RenewBulkResultSerializer(serializers.Serializer):
    """``results``: one entry per item, in the order sent."""

    results = RenewalResultSerializer(many=True, read_only=True)


# --- input ---------------------------------------------------------------------------------


class ScopeInputSerializer(StrictInputSerializer):
    """One scope asked for: ``tool`` (the name of one of the agent's tools), ``access`` (read,
    write or execute) and ``resource`` (optional pattern: an exact resource or a prefix ending in ``*``)."""

    tool = serializers.CharField(max_length=100)
    access = serializers.ChoiceField(choices=AccessLevel.choices)
    resource = serializers.CharField(max_length=300, allow_blank=True, required=False, default="")


class GrantRequestInputSerializer(StrictInputSerializer):
    """Request a grant (``delegations.services.grant_request``).

    ``agent`` (slug), ``scopes`` (at least one), ``purpose``, ``justification`` and
    ``expires_at`` (ISO 8601 with a UTC offset; never absent) are required; ``starts_at``
    (with offset, default now), ``intents`` (tags), ``on_behalf_of`` (username) and ``parent``
    (the id of an active grant this one hands work on from) are optional. ``status`` and the
    other fields of the representation are read-only.
    """

    read_only_names = GRANT_READ_ONLY
    agent = agent_field()
    scopes = ScopeInputSerializer(many=True)
    purpose = serializers.CharField(max_length=300, allow_blank=True)
    justification = serializers.CharField(max_length=5000, allow_blank=True)
    expires_at = StrictDateTimeField()
    starts_at = StrictDateTimeField(required=False, allow_null=True)
    intents = serializers.ListField(
        child=serializers.CharField(max_length=100, allow_blank=True), required=False, default=list, max_length=50
    )
    on_behalf_of = person_field(required=False, allow_null=True)
    parent = VisibleGrantField(required=False, allow_null=True)


class ApproveInputSerializer(StrictInputSerializer):
    """``comment`` (optional) and ``expires_at`` (optional, with offset): an approver may shorten
    the grant, never lengthen it."""

    read_only_names = GRANT_READ_ONLY
    comment = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    expires_at = StrictDateTimeField(required=False, allow_null=True)


class RenewInputSerializer(StrictInputSerializer):
    """Exactly one of ``duration_seconds`` (whole seconds from when the renewal starts) or
    ``expires_at`` (with offset) — there is no default length — and an optional ``justification``."""

    read_only_names = GRANT_READ_ONLY
    duration_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_DURATION_SECONDS, required=False, allow_null=True
    )
    expires_at = StrictDateTimeField(required=False, allow_null=True)
    justification = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")


class RenewBulkItemSerializer(StrictInputSerializer):
    """One grant to renew (``grant``: its id) and its length (``duration_seconds``; null or absent
    is refused for that item alone: there is no default length)."""

    grant = VisibleGrantField()
    duration_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_DURATION_SECONDS, required=False, allow_null=True, default=None
    )


class RenewBulkInputSerializer(StrictInputSerializer):
    """``items``: 1 to 500 grants, each named once, each with its own duration."""

    items = RenewBulkItemSerializer(many=True, allow_empty=False, max_length=MAX_BULK_ITEMS)

    def validate_items(self, items):
        seen = set()
        for item in items:
            if item["grant"].pk in seen:
                raise serializers.ValidationError(f"Grant #{item['grant'].pk} is named twice.")
            seen.add(item["grant"].pk)
        return items
