"""Django admin for delegation grants: read-only rows, writes only through the services.

Grants, their scopes and approvals are shown, searched and filtered, never added, edited or
deleted here: a grant is requested, decided, cancelled, revoked and renewed only through
``delegations.services`` (separation of duties, caps, the audit trail). The two admin actions,
cancel and revoke, call those services with the reason typed in the action bar, so they are
permission-checked and audited like the web UI and the API; a refusal becomes an error message
and changes nothing. The ``state`` column is the grant's state now by the enforcement rule
(``DelegationGrant.objects.with_state_at``), not only its stored status.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from delegations import services, tokens
from delegations.models import Approval, DelegationGrant, GrantScope, SigningKey, TaskToken
from governance.admin import (
    REFUSALS,
    ReadOnlyAdmin,
    ReasonActionForm,
    action_reason,
    actor_for,
    refusal_message,
    run_service_for_each,
)


class ReadOnlyInline(admin.TabularInline):
    """An inline that only shows rows: no add, change or delete."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GrantScopeInline(ReadOnlyInline):
    model = GrantScope
    fields = ("tool_name", "access", "resource_pattern", "data_classes", "tool")
    readonly_fields = fields


class ApprovalInline(ReadOnlyInline):
    model = Approval
    fields = ("approver", "decision", "comment", "decided_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("approver")


@admin.register(DelegationGrant)
class DelegationGrantAdmin(ReadOnlyAdmin):
    """Delegation grants, read-only; cancel and revoke are actions that call the services."""

    list_display = (
        "__str__",
        "agent",
        "status",
        "state_now",
        "requested_by",
        "starts_at",
        "expires_at",
        "approvals_required",
        "depth",
        "decided_by",
    )
    list_filter = ("status", "agent__risk_tier", "approvals_required", "depth", "expires_at", "requested_at")
    search_fields = (
        "=id",
        "agent__name",
        "agent__slug",
        "purpose",
        "justification",
        "requested_by__username",
        "requested_via",
        "on_behalf_of__username",
        "scopes__tool_name",
    )
    list_select_related = ("agent", "requested_by", "decided_by")
    readonly_fields = ["state_now", *(f.name for f in DelegationGrant._meta.fields if f.name != "id")]
    inlines = (GrantScopeInline, ApprovalInline)
    date_hierarchy = "requested_at"
    action_form = ReasonActionForm
    actions = ("cancel", "revoke")
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).with_state_at(timezone.now())

    @admin.display(description="state now", ordering="state")
    def state_now(self, obj):
        return getattr(obj, "state", "") or obj.status

    @admin.action(description="Cancel selected pending requests (reason optional)")
    def cancel(self, request, queryset):
        actor = actor_for(request)
        reason = action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset.select_related("agent").order_by("pk"),
            lambda g: services.grant_cancel(actor=actor, grant=g, reason=reason),
            "Cancelled",
        )

    @admin.action(description="Revoke selected active grants and their descendants (reason required)")
    def revoke(self, request, queryset):
        actor = actor_for(request)
        reason = action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset.select_related("agent").order_by("depth", "pk"),
            lambda g: services.grant_revoke(actor=actor, grant=g, reason=reason),
            "Revoked (with their descendants)",
        )


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    """Task-token signing keys, read-only; the private key is never shown (it is stored encrypted).
    The action rotates the key through ``delegations.tokens.signing_key_rotate`` (IAM admins, audited);
    it acts on no row in particular — select any. The first key is made by the first token issued or
    by ``manage.py rotate_signing_key``."""

    list_display = ("kid", "status", "algorithm", "created_at", "retiring_since", "retired_at")
    list_filter = ("status",)
    search_fields = ("=kid",)
    fields = ("kid", "algorithm", "status", "public_jwk", "created_at", "retiring_since", "retired_at")
    readonly_fields = fields
    actions = ("rotate",)

    @admin.action(description="Rotate the signing key (select any key; a new one signs, the active one retires)")
    def rotate(self, request, queryset):
        try:
            key = tokens.signing_key_rotate(actor=actor_for(request), now=timezone.now())
        except REFUSALS as exc:
            self.message_user(request, refusal_message(exc), messages.ERROR)
            return
        self.message_user(request, f"Rotated: {key.kid} now signs task tokens.", messages.SUCCESS)


@admin.register(TaskToken)
class TaskTokenAdmin(ReadOnlyAdmin):
    """Issued task tokens, read-only: never the token itself, only its jti and what it said."""

    list_display = ("jti", "agent", "grant", "task_id", "issued_at", "expires_at", "revoked_at", "kid")
    list_filter = ("expires_at", "issued_at")
    list_select_related = ("agent", "grant__agent")
    search_fields = ("=jti", "task_id", "agent__slug", "subject", "=kid")
    readonly_fields = [f.name for f in TaskToken._meta.fields if f.name != "id"]
    date_hierarchy = "issued_at"
    show_full_result_count = False
