"""Forms of the inventory pages. They parse input only; every rule is checked by the services."""

from django import forms

from governance.roles import is_iam_admin

from .importers import SOURCES
from .models import Agent, DataClass
from .selectors import agent_list, person_list, team_list


def _person_field(*, user, required: bool, label: str, help_text: str = "") -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=person_list(user=user), to_field_name="username", required=required, label=label,
        help_text=help_text, empty_label="—",
    )


class AgentRegisterForm(forms.Form):
    """Register an agent. An agent owner registers agents they own; an IAM admin names the owner."""

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
        choices=DataClass.choices, required=False, widget=forms.CheckboxSelectMultiple,
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
    file = forms.FileField(help_text="At most 10 MB.")
    observed_at = forms.DateTimeField(
        required=False,
        label="Observed at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text="When the source's usage data was true, in your timezone. Leave blank to use the "
        "report's own generation time.",
    )

    MAX_BYTES = 10 * 1024 * 1024

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"] = forms.ModelChoiceField(
            queryset=agent_list(user=user).exclude(state=Agent.State.DECOMMISSIONED),
            to_field_name="slug", required=False, empty_label="—",
            help_text="For an MCP configuration: the agent whose tools it declares.",
        )
        self.order_fields(["source", "file", "agent", "observed_at"])

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 10 MB.")
        return upload
