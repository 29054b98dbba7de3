"""Django admin for the inventory: teams, agents, workload identities, credentials, tools, imports, people.

Every write calls the inventory service for that use case (``inventory.services``): adding an
agent registers it, field edits go through ``agent_update`` / ``tool_update`` / ``team_update``,
and lifecycle, ownership, rotation and revocation are admin actions that take a reason. So the
admin is permission-checked and audited like the web UI and the API. Refusals come back as
error messages and change nothing.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect

from governance.admin import (
    REFUSALS,
    ReadOnlyAdmin,
    ReasonActionForm,
    ServiceAdmin,
    ServiceRefused,
    action_reason,
    actor_for,
    refusal_message,
    run_service_for_each,
)
from inventory import identity_proof, services
from inventory.models import (
    AccessLevel,
    Agent,
    Credential,
    DataClass,
    ImportRun,
    Team,
    Tool,
    TrustedIssuer,
    WorkloadIdentity,
)

User = get_user_model()


def _changes(form, allowed) -> dict:
    """The cleaned values of the fields the person changed, limited to ``allowed``."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


class ChoiceListField(forms.MultipleChoiceField):
    """A JSON list of choice values edited as checkboxes."""

    def __init__(self, choices_cls, **kwargs):
        super().__init__(choices=choices_cls.choices, widget=forms.CheckboxSelectMultiple, required=False, **kwargs)

    def clean(self, value):
        return list(super().clean(value))


# --- teams ---------------------------------------------------------------------------------


@admin.register(Team)
class TeamAdmin(ServiceAdmin):
    """Teams are created and renamed through ``team_create`` / ``team_update`` (IAM admins)."""

    list_display = ("name", "slug", "agent_count")
    search_fields = ("name", "slug", "description")
    fields = ("name", "slug", "description", "members")
    filter_horizontal = ("members",)
    readonly_fields = ()
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(agent_count=Count("agents"))

    @admin.display(description="agents", ordering="agent_count")
    def agent_count(self, obj):
        return obj.agent_count

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if obj is None else {}

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        return self.fields if obj is not None else ("name", "slug", "description")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_through_service(self, request, obj, form, change):
        actor = actor_for(request)
        if not change:
            team = services.team_create(actor=actor, name=obj.name, slug=obj.slug, description=obj.description)
            obj.pk = team.pk
            return
        changes = _changes(form, ("name", "slug", "description"))
        if changes:
            services.team_update(actor=actor, team=obj, **changes)
        if "members" in form.changed_data:
            services.team_members_set(actor=actor, team=obj, members=form.cleaned_data["members"])


# --- agents --------------------------------------------------------------------------------


class AgentActionForm(ReasonActionForm):
    """Action bar for agents: a reason for lifecycle changes, a person for ownership changes."""

    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"), required=False, label="New owner"
    )


class AgentRegisterForm(forms.ModelForm):
    data_classes = ChoiceListField(DataClass)

    class Meta:
        model = Agent
        fields = (
            "name",
            "slug",
            "kind",
            "purpose",
            "platform",
            "environment",
            "owner",
            "backup_owner",
            "team",
            "autonomy_level",
            "data_classes",
            "risk_tier",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        self.fields["slug"].help_text = "Leave blank to derive it from the name."
        self.fields["owner"].required = True


class AgentChangeForm(forms.ModelForm):
    data_classes = ChoiceListField(DataClass)

    class Meta:
        model = Agent
        fields = services.AGENT_EDITABLE


@admin.register(Agent)
class AgentAdmin(ServiceAdmin):
    """Agents: registering, editing, lifecycle and ownership all go through the inventory services."""

    list_display = (
        "name",
        "slug",
        "state",
        "owner",
        "backup_owner",
        "team",
        "risk_tier",
        "environment",
        "kind",
        "source",
    )
    list_filter = ("state", "risk_tier", "environment", "kind", "source", "autonomy_level", "team")
    search_fields = ("name", "slug", "purpose", "platform", "external_ref", "owner__username", "backup_owner__username")
    list_select_related = ("owner", "backup_owner", "team")
    action_form = AgentActionForm
    actions = ("activate", "reactivate", "suspend", "decommission", "assign_owner")
    readonly_after_create = (
        "slug",
        "state",
        "state_reason",
        "state_changed_at",
        "owner",
        "backup_owner",
        "risk_tier",
        "source",
        "external_ref",
        "next_attestation_due",
        "created_at",
        "updated_at",
    )
    autocomplete_fields = ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = AgentChangeForm if obj is not None else AgentRegisterForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(AgentRegisterForm.Meta.fields)
        return [
            "name",
            "slug",
            "purpose",
            "kind",
            "platform",
            "environment",
            "team",
            "autonomy_level",
            "data_classes",
            *[f for f in self.readonly_after_create if f != "slug"],
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.state == Agent.State.DECOMMISSIONED:
            return self.get_fields(request, obj)
        return self.readonly_after_create

    def has_delete_permission(self, request, obj=None):
        return False

    def save_through_service(self, request, obj, form, change):
        actor = actor_for(request)
        if not change:
            data = form.cleaned_data
            agent = services.agent_register(
                actor=actor,
                name=data["name"],
                kind=data["kind"],
                owner=data["owner"],
                slug=data.get("slug") or "",
                purpose=data["purpose"],
                platform=data["platform"],
                environment=data["environment"],
                backup_owner=data["backup_owner"],
                team=data["team"],
                autonomy_level=data["autonomy_level"],
                data_classes=data["data_classes"],
                risk_tier=data["risk_tier"],
            )
            obj.pk, obj.slug = agent.pk, agent.slug
            return
        changes = _changes(form, services.AGENT_EDITABLE)
        if changes:
            services.agent_update(actor=actor, agent=obj, **changes)

    def _transition(self, request, queryset, service, done: str):
        actor = actor_for(request)
        reason = action_reason(request)
        run_service_for_each(self, request, queryset, lambda a: service(actor=actor, agent=a, reason=reason), done)

    @admin.action(description="Activate selected agents (proposed → active)")
    def activate(self, request, queryset):
        self._transition(request, queryset, services.agent_activate, "Activated")

    @admin.action(description="Reactivate selected agents (suspended → active; reason required)")
    def reactivate(self, request, queryset):
        self._transition(request, queryset, services.agent_reactivate, "Reactivated")

    @admin.action(description="Suspend selected agents (reason required)")
    def suspend(self, request, queryset):
        self._transition(request, queryset, services.agent_suspend, "Suspended")

    @admin.action(description="Decommission selected agents (terminal; reason required)")
    def decommission(self, request, queryset):
        self._transition(request, queryset, services.agent_decommission, "Decommissioned")

    @admin.action(description="Assign the chosen owner to selected agents")
    def assign_owner(self, request, queryset):
        try:
            owner = AgentActionForm.base_fields["owner"].clean(request.POST.get("owner") or None)
        except ValidationError:
            owner = None
        if owner is None:
            self.message_user(request, "Choose an active person as the new owner in the action bar.", messages.ERROR)
            return
        actor = actor_for(request)
        reason = action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset,
            lambda a: services.agent_assign_owner(actor=actor, agent=a, owner=owner, reason=reason),
            f"Owner set to {owner.get_username()}",
        )


# --- workload identities -------------------------------------------------------------------


@admin.register(WorkloadIdentity)
class WorkloadIdentityAdmin(ServiceAdmin):
    """Bound through ``workload_identity_add`` and unbound through ``workload_identity_remove``."""

    list_display = ("identifier", "type", "issuer", "agent", "created_at")
    list_filter = ("type",)
    search_fields = ("identifier", "issuer", "agent__name", "agent__slug")
    list_select_related = ("agent",)
    fields = ("agent", "type", "issuer", "identifier")

    def has_change_permission(self, request, obj=None):
        return False

    def save_through_service(self, request, obj, form, change):
        data = form.cleaned_data
        identity = services.workload_identity_add(
            actor=actor_for(request),
            agent=data["agent"],
            type=data["type"],
            identifier=data["identifier"],
            issuer=data.get("issuer") or "",
        )
        obj.pk = identity.pk

    def delete_through_service(self, request, obj):
        services.workload_identity_remove(actor=actor_for(request), identity=obj)


# --- credentials ---------------------------------------------------------------------------


class CredentialRecordForm(forms.ModelForm):
    class Meta:
        model = Credential
        fields = tuple(name for name in services.CREDENTIAL_FIELDS if name != "status")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "observed_at" in self.fields:
            self.fields["observed_at"].required = False
            self.fields["observed_at"].help_text = "As of when the usage data was true; blank means now."


@admin.register(Credential)
class CredentialAdmin(ServiceAdmin):
    """Recorded through ``credential_record``; rotated and revoked through admin actions."""

    list_display = (
        "__str__",
        "agent",
        "kind",
        "provider",
        "status",
        "created_at",
        "last_rotated_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = ("status", "kind", "provider", "ephemeral", "usage_tracked")
    search_fields = ("external_id", "fingerprint", "label", "agent__name", "agent__slug")
    list_select_related = ("agent",)
    fields = CredentialRecordForm.Meta.fields
    form = CredentialRecordForm
    action_form = ReasonActionForm
    actions = ("rotate_now", "revoke")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        return (*self.fields, "status", "status_changed_at", "recorded_at")

    def save_through_service(self, request, obj, form, change):
        data = {name: form.cleaned_data.get(name) for name in self.fields}
        credential = services.credential_record(
            actor=actor_for(request),
            agent=data["agent"],
            kind=data["kind"],
            provider=data["provider"],
            external_id=data["external_id"],
            created_at=data["created_at"],
            fingerprint=data["fingerprint"] or "",
            label=data["label"] or "",
            last_rotated_at=data["last_rotated_at"],
            last_used_at=data["last_used_at"],
            usage_tracked=bool(data["usage_tracked"]),
            observed_at=data["observed_at"],
            expires_at=data["expires_at"],
            rotation_period_days=data["rotation_period_days"],
            ephemeral=bool(data["ephemeral"]),
        )
        obj.pk = credential.pk

    @admin.action(description="Record that selected credentials were rotated now")
    def rotate_now(self, request, queryset):
        actor = actor_for(request)
        run_service_for_each(
            self,
            request,
            queryset.select_related("agent"),
            lambda c: services.credential_rotate(actor=actor, credential=c),
            "Rotated",
        )

    @admin.action(description="Mark selected credentials revoked (reason required)")
    def revoke(self, request, queryset):
        actor = actor_for(request)
        reason = action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset.select_related("agent"),
            lambda c: services.credential_revoke(actor=actor, credential=c, reason=reason),
            "Revoked",
        )


# --- tools ---------------------------------------------------------------------------------


class ToolForm(forms.ModelForm):
    access_levels = ChoiceListField(AccessLevel)
    data_classes = ChoiceListField(DataClass)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # compare edits with the stored values, not with the fields' defaults
            for f in self.fields.values():
                f.show_hidden_initial = False

    class Meta:
        model = Tool
        fields = services.TOOL_FIELDS


@admin.register(Tool)
class ToolAdmin(ServiceAdmin):
    """Added, changed and removed through ``tool_add`` / ``tool_update`` / ``tool_remove``."""

    form = ToolForm
    list_display = ("name", "agent", "transport", "destination", "access_list", "source")
    list_filter = ("transport", "destination")
    search_fields = ("name", "command", "url", "agent__name", "agent__slug")
    list_select_related = ("agent",)

    @admin.display(description="access")
    def access_list(self, obj):
        return ", ".join(obj.access_levels)

    def get_readonly_fields(self, request, obj=None):
        return ("agent", "created_at", "updated_at") if obj is not None else ()

    def save_through_service(self, request, obj, form, change):
        actor = actor_for(request)
        data = form.cleaned_data
        if not change:
            tool = services.tool_add(
                actor=actor,
                agent=data["agent"],
                name=data["name"],
                transport=data["transport"],
                command=data["command"],
                args=data["args"],
                url=data["url"],
                env_keys=data["env_keys"],
                access_levels=data["access_levels"],
                data_classes=data["data_classes"],
                destination=data["destination"],
                source=data["source"],
            )
            obj.pk = tool.pk
            return
        changes = _changes(form, set(services.TOOL_FIELDS) - {"agent"})
        if changes:
            services.tool_update(actor=actor, tool=obj, **changes)

    def delete_through_service(self, request, obj):
        services.tool_remove(actor=actor_for(request), tool=obj)


# --- imports -------------------------------------------------------------------------------


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    """The record of each import, read-only (imports run from the import page, the API or the CLI)."""

    list_display = ("created_at", "source", "filename", "agent", "actor_label", "observed_at", "short_sha256")
    list_filter = ("source",)
    search_fields = ("filename", "sha256", "actor_label", "agent__name")
    list_select_related = ("agent",)
    readonly_fields = [f.name for f in ImportRun._meta.fields if f.name != "id"]

    @admin.display(description="sha256")
    def short_sha256(self, obj):
        return obj.sha256[:12]


# --- trusted issuers -----------------------------------------------------------------------


@admin.register(TrustedIssuer)
class TrustedIssuerAdmin(ServiceAdmin):
    """Issuers of identity tokens, through ``trusted_issuer_create`` / ``_update`` / ``_delete``
    (``inventory.identity_proof``; IAM admins, audited). The kind is fixed once registered."""

    list_display = ("name", "kind", "issuer", "key_source", "enabled", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "issuer", "jwks_url")
    fields = identity_proof.TRUSTED_ISSUER_FIELDS

    @admin.display(description="keys")
    def key_source(self, obj):
        return obj.jwks_url or "static JWK Set"

    def get_readonly_fields(self, request, obj=None):
        return ("kind", "created_at", "updated_at") if obj is not None else ()

    def get_fields(self, request, obj=None):
        return self.fields if obj is None else (*self.fields, "created_at", "updated_at")

    def save_through_service(self, request, obj, form, change):
        actor = actor_for(request)
        data = form.cleaned_data
        if not change:
            issuer = identity_proof.trusted_issuer_create(
                actor=actor,
                name=data["name"],
                kind=data["kind"],
                issuer=data["issuer"],
                jwks_url=data.get("jwks_url") or "",
                jwks=data.get("jwks"),
                audiences=data.get("audiences"),
                algorithms=data.get("algorithms"),
                clock_skew_seconds=data["clock_skew_seconds"],
                enabled=data["enabled"],
            )
            obj.pk = issuer.pk
            return
        changes = _changes(form, identity_proof.TRUSTED_ISSUER_EDITABLE)
        if changes:
            identity_proof.trusted_issuer_update(actor=actor, trusted_issuer=obj, **changes)

    def delete_through_service(self, request, obj):
        identity_proof.trusted_issuer_delete(actor=actor_for(request), trusted_issuer=obj)


# --- people --------------------------------------------------------------------------------


class PersonChangeForm(UserChangeForm):
    """Django's user form with the reason a person is deactivated or reactivated (kept in the audit trail)."""

    status_reason = forms.CharField(
        required=False,
        max_length=500,
        label="Reason for the change of active",
        help_text="Required when you switch active on or off: it is kept in the audit trail.",
    )

    def clean(self):
        cleaned = super().clean()
        if "is_active" in self.changed_data and not (cleaned.get("status_reason") or "").strip():
            self.add_error("status_reason", "Say why this person is deactivated or reactivated.")
        return cleaned


def _with_status_reason(fieldsets):
    out = []
    for name, options in fieldsets:
        fields = tuple(options.get("fields", ()))
        if "is_active" in fields:
            i = fields.index("is_active") + 1
            fields = (*fields[:i], "status_reason", *fields[i:])
        out.append((name, {**options, "fields": fields}))
    return tuple(out)


class PersonAdmin(DjangoUserAdmin):
    """People: Django's user admin, except that switching *active* off or on goes through
    ``inventory.services.person_deactivate`` / ``person_reactivate`` (IAM admins; audited), so that a
    person deactivated here orphans their agents and cancels their pending requests exactly as
    anywhere else. The changelist has the same two actions, with the reason in the action bar.
    A refusal is an error message and changes nothing."""

    form = PersonChangeForm
    fieldsets = _with_status_reason(DjangoUserAdmin.fieldsets)
    action_form = ReasonActionForm
    actions = ("deactivate", "reactivate")

    def save_model(self, request, obj, form, change):
        if not change or "is_active" not in form.changed_data:
            super().save_model(request, obj, form, change)
            return
        wanted = obj.is_active
        obj.is_active = not wanted  # the other changes are saved as usual; active changes through its service
        super().save_model(request, obj, form, change)
        service = services.person_reactivate if wanted else services.person_deactivate
        try:
            service(actor=actor_for(request), user=obj, reason=form.cleaned_data.get("status_reason", ""))
        except REFUSALS as exc:
            raise ServiceRefused(refusal_message(exc)) from exc
        obj.is_active = wanted

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(description="Deactivate selected people (reason required; their agents become orphaned)")
    def deactivate(self, request, queryset):
        actor, reason = actor_for(request), action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset,
            lambda u: services.person_deactivate(actor=actor, user=u, reason=reason),
            "Deactivated",
        )

    @admin.action(description="Reactivate selected people (reason required)")
    def reactivate(self, request, queryset):
        actor, reason = actor_for(request), action_reason(request)
        run_service_for_each(
            self,
            request,
            queryset,
            lambda u: services.person_reactivate(actor=actor, user=u, reason=reason),
            "Reactivated",
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, PersonAdmin)
