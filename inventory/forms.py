"""Forms of the inventory pages. They parse input only; every rule is checked by the services.

Datetimes typed by a person are in their own timezone (the active one, see
``governance.middleware.ViewerTimezoneMiddleware``) and become aware datetimes, stored in UTC.
"""

import shlex

from django import forms

from governance.forms import LOCAL_DATETIME_FORMATS
from governance.roles import is_iam_admin

from .importers import SOURCES
from .importers.base import MAX_BYTES as IMPORT_MAX_BYTES
from .models import AccessLevel, Agent, Credential, DataClass, Tool, WorkloadIdentity
from .selectors import agent_list, person_list, team_list

IMPORT_MAX_MB = IMPORT_MAX_BYTES // (1024 * 1024)


def _local_datetime(*, label: str, required: bool = False, help_text: str = "") -> forms.DateTimeField:
    """A ``datetime-local`` input read in the viewer's timezone (an aware datetime, or ``None``)."""
    return forms.DateTimeField(
        required=required,
        label=label,
        help_text=help_text,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=LOCAL_DATETIME_FORMATS,
    )


def _choice_list(choices, *, label: str, help_text: str = "") -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=choices, required=False, widget=forms.CheckboxSelectMultiple, label=label, help_text=help_text
    )


def _person_field(*, user, required: bool, label: str, help_text: str = "") -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=person_list(user=user),
        to_field_name="username",
        required=required,
        label=label,
        help_text=help_text,
        empty_label="—",
    )


class AgentRegisterForm(forms.Form):
    """Register an agent. An agent owner registers agents they own; an IAM admin names the owner and
    may give a risk tier (the field is offered to IAM admins only; the service refuses it from others)."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100, required=False, help_text="Leave blank to derive it from the name.")
    purpose = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="What the agent does and for whom."
    )
    kind = forms.ChoiceField(choices=Agent.Kind.choices)
    platform = forms.CharField(max_length=100, required=False, help_text="e.g. langgraph, bedrock-agents, n8n.")
    environment = forms.ChoiceField(choices=Agent.Environment.choices, initial=Agent.Environment.PRODUCTION)
    autonomy_level = forms.ChoiceField(choices=Agent.Autonomy.choices, label="Autonomy")
    data_classes = forms.MultipleChoiceField(
        choices=DataClass.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The kinds of data the agent may touch.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if is_iam_admin(user):
            self.fields["owner"] = _person_field(user=user, required=True, label="Owner")
        self.fields["backup_owner"] = _person_field(
            user=user, required=False, label="Backup owner", help_text="Takes over if the owner leaves."
        )
        self.fields["team"] = forms.ModelChoiceField(
            queryset=team_list(user=user), to_field_name="slug", required=False, empty_label="—"
        )
        if is_iam_admin(user):
            self.fields["risk_tier"] = forms.ChoiceField(
                choices=Agent.RiskTier.choices,
                initial=Agent.RiskTier.UNASSESSED,
                required=False,
                label="Risk tier",
                help_text="Leave unassessed until the agent has been reviewed.",
            )


class ReasonForm(forms.Form):
    """A lifecycle action's reason, kept in the audit trail."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)


class AssignOwnerForm(forms.Form):
    """Assign or transfer an agent's owner and backup owner."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"] = _person_field(user=user, required=True, label="New owner")
        self.fields["backup_owner"] = _person_field(user=user, required=False, label="Backup owner")
        self.order_fields(["owner", "backup_owner", "reason"])


class ImportForm(forms.Form):
    """Upload an inventory source file: an AWS credential report or an MCP client configuration."""

    source = forms.ChoiceField(choices=list(SOURCES.items()))
    file = forms.FileField(help_text=f"At most {IMPORT_MAX_MB} MB.")
    observed_at = forms.DateTimeField(
        required=False,
        label="Observed at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text="When the source's usage data was true, in your timezone. Leave blank to use the "
        "report's own generation time.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"] = forms.ModelChoiceField(
            queryset=agent_list(user=user).exclude(state=Agent.State.DECOMMISSIONED),
            to_field_name="slug",
            required=False,
            empty_label="—",
            help_text="For an MCP configuration: the agent whose tools it declares.",
        )
        self.order_fields(["source", "file", "agent", "observed_at"])

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {IMPORT_MAX_MB} MB.")
        return upload


# --- managing an agent's description, credentials, workload identities and tools -----------


class AgentUpdateForm(forms.Form):
    """An agent's descriptive fields (``inventory.services.AGENT_EDITABLE``)."""

    name = forms.CharField(max_length=200)
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    kind = forms.ChoiceField(choices=Agent.Kind.choices)
    platform = forms.CharField(max_length=100, required=False, help_text="e.g. langgraph, bedrock-agents, n8n.")
    environment = forms.ChoiceField(choices=Agent.Environment.choices)
    autonomy_level = forms.ChoiceField(choices=Agent.Autonomy.choices, label="Autonomy")
    data_classes = _choice_list(DataClass.choices, label="Data classes", help_text="The kinds of data it may touch.")

    def __init__(self, *args, user, agent: Agent, **kwargs):
        kwargs.setdefault("auto_id", "agent_%s")
        kwargs.setdefault(
            "initial",
            {
                "name": agent.name,
                "purpose": agent.purpose,
                "kind": agent.kind,
                "platform": agent.platform,
                "environment": agent.environment,
                "autonomy_level": agent.autonomy_level,
                "team": agent.team.slug if agent.team_id else None,
                "data_classes": agent.data_classes,
            },
        )
        super().__init__(*args, **kwargs)
        self.agent = agent
        self.fields["team"] = forms.ModelChoiceField(
            queryset=team_list(user=user), to_field_name="slug", required=False, empty_label="—"
        )
        self.order_fields(["name", "kind", "platform", "environment", "team", "autonomy_level", "purpose"])

    def changes(self) -> dict:
        """The cleaned fields whose values differ from the agent's (data classes compared as sets)."""
        out = {}
        for name, value in self.cleaned_data.items():
            current = getattr(self.agent, name)
            if name == "data_classes":
                if set(value) != set(current or []):
                    out[name] = list(value)
            elif name == "team":
                if (value.pk if value else None) != self.agent.team_id:
                    out[name] = value
            elif value != current:
                out[name] = value
        return out


class CredentialRecordForm(forms.Form):
    """Record a credential an agent holds: its provider's id or a fingerprint, never the secret."""

    kind = forms.ChoiceField(choices=Credential.Kind.choices)
    provider = forms.CharField(max_length=64, help_text="e.g. aws, github, openai.")
    external_id = forms.CharField(
        max_length=300, label="External id", help_text="The provider's id for it (key id, ARN, client id)."
    )
    fingerprint = forms.CharField(
        max_length=100, required=False, help_text="sha256:<hex> of the public part or key id; never the secret."
    )
    label = forms.CharField(max_length=200, required=False)
    created_at = _local_datetime(label="Created at", required=True)
    last_rotated_at = _local_datetime(label="Last rotated")
    last_used_at = _local_datetime(label="Last used")
    expires_at = _local_datetime(label="Expires at")
    rotation_period_days = forms.IntegerField(
        required=False, min_value=1, label="Rotation period (days)", help_text="Blank: the policy's period."
    )
    usage_tracked = forms.BooleanField(
        required=False,
        initial=True,
        label="Provider reports usage",
        help_text="Untick if it does not: a blank last use then means unknown, not never used.",
    )
    ephemeral = forms.BooleanField(required=False, help_text="Short-lived, issued per task.")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "cred_%s")
        super().__init__(*args, **kwargs)


class CredentialRotateForm(forms.Form):
    """When a credential was rotated (default now, in the viewer's timezone); optional new fingerprint/expiry."""

    rotated_at = _local_datetime(label="Rotated at", help_text="Blank: now.")
    fingerprint = forms.CharField(max_length=100, required=False, label="New fingerprint")
    expires_at = _local_datetime(label="New expiry")


class CredentialRevokeForm(forms.Form):
    """Why a credential was revoked at its provider (kept in the audit trail)."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        error_messages={"required": "Give a reason; it is kept in the audit trail."},
    )


class WorkloadIdentityForm(forms.Form):
    """Bind a workload identity: its type, the issuer (OIDC only) and the identifier."""

    type = forms.ChoiceField(choices=WorkloadIdentity.Type.choices)
    issuer = forms.CharField(max_length=300, required=False, help_text="OIDC only: the issuer URL.")
    identifier = forms.CharField(
        max_length=500, help_text="e.g. spiffe://example.org/ns/prod/sa/triage, an OIDC subject, an ARN."
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "wi_%s")
        super().__init__(*args, **kwargs)


class ToolAccessForm(forms.Form):
    """A tool's access levels, data classes and destination."""

    access_levels = _choice_list(AccessLevel.choices, label="Access")
    data_classes = _choice_list(DataClass.choices, label="Data classes")
    destination = forms.ChoiceField(
        choices=Tool.Destination.choices,
        initial=Tool.Destination.INTERNAL,
        help_text="External: calls leave the organisation.",
    )


class ToolAddForm(ToolAccessForm):
    """Add a tool: its name, transport, the command that starts it (stdio) or its URL."""

    name = forms.CharField(max_length=100)
    transport = forms.ChoiceField(choices=Tool.Transport.choices)
    endpoint = forms.CharField(
        max_length=1000,
        label="Command or URL",
        error_messages={"required": "Give the command line that starts it (stdio) or its URL."},
        help_text="stdio: the command line that starts it. Otherwise: its URL.",
    )
    #: Where a service's field errors belong on this form.
    SERVICE_FIELDS = {"command": "endpoint", "url": "endpoint", "args": "endpoint"}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "tool_%s")
        kwargs.setdefault("initial", {"access_levels": [AccessLevel.READ]})
        super().__init__(*args, **kwargs)
        self.order_fields(["name", "transport", "endpoint", "access_levels", "data_classes", "destination"])

    def clean(self):
        data = super().clean()
        endpoint = data.get("endpoint", "")
        data["command"], data["args"], data["url"] = "", [], ""
        if data.get("transport") == Tool.Transport.STDIO:
            try:
                words = shlex.split(endpoint)
            except ValueError as exc:
                raise forms.ValidationError({"endpoint": f"The command line cannot be read: {exc}."}) from None
            data["command"], data["args"] = (words[0], words[1:]) if words else ("", [])
        else:
            data["url"] = endpoint
        return data
