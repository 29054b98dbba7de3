"""Django admin for the governance kernel: audit events, findings, policy, integration tokens.

The admin is one more front end over the services: every write calls the same service as the
web UI and the API (``governance.services``), so it is permission-checked and audited the same
way. Audit events are read-only. Refusals (``PermissionDenied``, ``Conflict``,
``ValidationError``) come back as admin error messages and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from governance import services
from governance.audit import Actor
from governance.errors import Conflict
from governance.models import AuditEvent, Finding, IntegrationToken, Policy

REFUSALS = (PermissionDenied, Conflict, ValidationError)


def refusal_message(exc: Exception) -> str:
    """A one-line, human-readable text for a service refusal."""
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(
                f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
                for field, msgs in exc.message_dict.items()
            )
        return " ".join(exc.messages)
    return str(exc) or exc.__class__.__name__


def actor_for(request) -> Actor:
    """The audit actor for the person using the admin."""
    return Actor.person(request.user)


def run_service_for_each(modeladmin: admin.ModelAdmin, request, objects: Iterable, call: Callable, done: str) -> None:
    """Call ``call(obj)`` (a service call) for each object; report successes and refusals as messages.

    Each call runs in the service's own transaction, so one refusal does not undo the others.
    """
    ok = 0
    for obj in objects:
        try:
            call(obj)
            ok += 1
        except REFUSALS as exc:
            modeladmin.message_user(request, f"{obj}: {refusal_message(exc)}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{done}: {ok}.", messages.SUCCESS)


class ServiceRefused(Exception):
    """A service refused an admin write; carries the refusal's message."""


class ServiceAdmin(admin.ModelAdmin):
    """Base for admins whose writes go through services.

    Subclasses write in ``save_through_service`` / ``delete_through_service``. A refusal raised
    there (``PermissionDenied``, ``Conflict``, ``ValidationError``) becomes an error message
    and a redirect back to the same page; the admin's own transaction rolls back, so nothing
    is written.
    """

    def save_through_service(self, request, obj, form, change):
        raise NotImplementedError

    def delete_through_service(self, request, obj):
        raise PermissionDenied("This object cannot be deleted.")

    def save_model(self, request, obj, form, change):
        try:
            self.save_through_service(request, obj, form, change)
        except REFUSALS as exc:
            raise ServiceRefused(refusal_message(exc)) from exc

    def save_related(self, request, form, formsets, change):
        """Related objects change only through their own services."""

    def delete_model(self, request, obj):
        try:
            self.delete_through_service(request, obj)
        except REFUSALS as exc:
            raise ServiceRefused(refusal_message(exc)) from exc

    def delete_queryset(self, request, queryset):
        run_service_for_each(self, request, queryset, lambda obj: self.delete_through_service(request, obj), "Deleted")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReasonActionForm(ActionForm):
    """The admin action bar with a free-text reason or note, kept in the audit trail."""

    reason = forms.CharField(
        required=False, label="Reason / note", max_length=500, widget=forms.TextInput(attrs={"size": 40})
    )


class FindingActionForm(ReasonActionForm):
    days = forms.IntegerField(required=False, min_value=1, max_value=365, initial=30, label="Accept risk for (days)")


def action_reason(request) -> str:
    """The reason or note typed in the action bar (``ReasonActionForm``), stripped; ``""`` when none."""
    return (request.POST.get("reason") or "").strip()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Base for admins that only show rows: no add, change or delete (writes happen elsewhere)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail, read-only: no add, change or delete (the table is append-only)."""

    list_display = ("occurred_at", "actor_label", "actor_type", "verb", "object_type", "object_label", "request_id")
    list_filter = ("actor_type", "object_type", "verb")
    search_fields = ("actor_label", "object_label", "object_id", "verb", "request_id")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_per_page = 100
    show_full_result_count = False


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    """Findings are opened and resolved by jobs and services; people work them through actions."""

    list_display = ("title", "subject_label", "kind", "severity", "status", "first_seen_at", "last_seen_at")
    list_filter = ("status", "severity", "kind")
    search_fields = ("title", "subject_label", "detail")
    readonly_fields = [f.name for f in Finding._meta.fields if f.name != "id"]
    action_form = FindingActionForm
    actions = ("acknowledge", "resolve", "accept_risk")

    def _work(self, request, queryset, service: Callable, done: str, **extra) -> None:
        """Call ``service(actor=…, finding=…, note=<the action bar's note>, **extra)`` for each finding."""
        actor = actor_for(request)
        note = action_reason(request)
        run_service_for_each(
            self, request, queryset, lambda f: service(actor=actor, finding=f, note=note, **extra), done
        )

    @admin.action(description="Acknowledge selected findings")
    def acknowledge(self, request, queryset):
        self._work(request, queryset, services.finding_acknowledge, "Acknowledged")

    @admin.action(description="Resolve selected findings (note required)")
    def resolve(self, request, queryset):
        self._work(request, queryset, services.finding_resolve, "Resolved")

    @admin.action(description="Accept the risk of selected findings (note and days required)")
    def accept_risk(self, request, queryset):
        try:
            days = int(request.POST.get("days") or 30)
        except ValueError:
            self.message_user(request, "Give the number of days as a whole number.", messages.ERROR)
            return
        until = timezone.now() + timedelta(days=days)
        self._work(request, queryset, services.finding_accept_risk, "Risk accepted", until=until)


@admin.register(Policy)
class PolicyAdmin(ServiceAdmin):
    """The single policy row; each save goes through ``policy_update`` (IAM admins, audited)."""

    fields = services.POLICY_FIELDS + ("updated_at",)
    readonly_fields = ("updated_at",)
    list_display = ("__str__",) + services.POLICY_FIELDS + ("updated_at",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        policy = Policy.current()
        return HttpResponseRedirect(reverse("admin:governance_policy_change", args=[policy.pk]))

    def save_through_service(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.POLICY_FIELDS}
        if changes:
            services.policy_update(actor=actor_for(request), **changes)


class IntegrationTokenIssueForm(forms.ModelForm):
    """Issue a token: name, the person it acts for, scopes, expiry (UTC stored)."""

    scopes = forms.MultipleChoiceField(choices=IntegrationToken.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = IntegrationToken
        fields = ("name", "user", "scopes", "expires_at")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].initial = lambda: timezone.now() + timedelta(days=90)


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(ServiceAdmin):
    """Tokens are issued through ``integration_token_issue`` (clear text shown once) and revoked
    through ``integration_token_revoke``; only their SHA-256 digest is stored."""

    list_display = ("name", "user", "prefix", "scope_list", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user", "created_by")
    readonly_fields = (
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_by",
    )
    exclude = ("digest",)
    actions = ("revoke",)

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = IntegrationTokenIssueForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "user", "scopes", "expires_at"]
        return list(self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_through_service(self, request, obj, form, change):
        data = form.cleaned_data
        token, clear = services.integration_token_issue(
            actor=actor_for(request),
            user=data["user"],
            name=data["name"],
            scopes=list(data["scopes"]),
            expires_at=data["expires_at"],
        )
        obj.pk = token.pk
        obj.prefix = token.prefix
        self.message_user(
            request,
            f"Token for {token.name}: {clear} — copy it now; it is shown only once and stored only as a digest.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        actor = actor_for(request)
        run_service_for_each(
            self, request, queryset, lambda t: services.integration_token_revoke(actor=actor, token=t), "Revoked"
        )
