"""Forms of the governance pages: working findings, issuing integration tokens, the policy settings.

They parse input only; the services check every rule. Datetimes typed by a person are in
their own timezone (the active one) and become aware datetimes, stored in UTC.
"""

from datetime import datetime, time, timedelta

from django import forms
from django.forms.models import fields_for_model
from django.utils import timezone

from governance.models import IntegrationToken, Policy

LOCAL_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class FindingNoteForm(forms.Form):
    """A note on a finding (optional when acknowledging, required to resolve: the service says so)."""

    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)


class FindingAcceptRiskForm(forms.Form):
    """Accept a finding's risk until a time (in the viewer's timezone), with a reason."""

    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=LOCAL_DATETIME_FORMATS,
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)


class TokenIssueForm(forms.Form):
    """Issue an integration token for oneself: name, scopes, and the date it stops working."""

    name = forms.CharField(max_length=100, help_text="The integration that will use it, e.g. SIEM export.")
    scopes = forms.MultipleChoiceField(
        choices=IntegrationToken.Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    expires_on = forms.DateField(
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The token stops working at 00:00 on this day, in your timezone.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("expires_on", timezone.localdate() + timedelta(days=90))
        if user is not None:
            from governance.services import token_scopes_for

            allowed = token_scopes_for(user)
            self.fields["scopes"].choices = [(v, label) for v, label in IntegrationToken.Scope.choices if v in allowed]

    def expires_at(self) -> datetime:
        """The chosen day's start in the active timezone, as an aware datetime."""
        day = self.cleaned_data["expires_on"]
        return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class PolicyForm(forms.Form):
    """Every governance policy setting (``governance.services.POLICY_FIELDS``), grouped as the page shows them.

    Parses values only; the bounds (at least two elevated approvers, a depth of 1 to 5, …) are the
    model's, checked by ``policy_update``. ``disabled`` shows the values read-only.
    """

    #: The page's groups, in order: a setting goes to the first group whose prefix it starts with; the
    #: credential settings (and any setting no prefix claims) to the last.
    GROUPS = (
        ("Delegation grants: longest grant per risk tier", "grant_max_hours_"),
        ("Delegation grants: approvals, chains, stale requests, reminders", "grant_"),
        ("Attestations", "attestation_"),
        ("Risk assessments", "assessment_"),
        ("Runtime decisions", "decision_"),
        ("Task tokens", "task_token_"),
        ("Credentials", ""),
    )
    LABELS = {
        "grant_max_hours_critical": "Critical tier (hours)",
        "grant_max_hours_high": "High tier and unassessed (hours)",
        "grant_max_hours_medium": "Medium tier (hours)",
        "grant_max_hours_low": "Low tier (hours)",
        "grant_approvals_elevated": "Approvers for elevated grants",
        "grant_approvals_standard": "Approvers for other grants",
        "grant_max_depth": "Longest delegation chain (grants)",
        "grant_request_stale_days": "Cancel pending requests after (days)",
        "grant_expiry_reminder_hours": "Remind before expiry (hours)",
        "decision_allow_sample_percent": "Allowed decisions logged (%)",
        "decision_out_of_scope_threshold": "Out-of-scope denials that raise a finding",
        "decision_out_of_scope_window_minutes": "Counted over (minutes)",
        "decision_log_retention_days": "Keep the decision log (days)",
        "task_token_default_seconds": "Default lifetime (seconds)",
        "task_token_max_seconds": "Longest lifetime (seconds)",
        "rotation_period_days": "Rotation period (days)",
        "unused_after_days": "Unused after (days)",
        "never_used_grace_days": "Never used: grace (days)",
        "expiring_within_days": "Expiring within (days)",
    }

    def __init__(self, *args, policy, disabled: bool = False, **kwargs):
        from governance.services import POLICY_FIELDS

        kwargs.setdefault("initial", {name: getattr(policy, name) for name in POLICY_FIELDS})
        super().__init__(*args, **kwargs)
        self.policy = policy
        for name, field in fields_for_model(Policy, fields=POLICY_FIELDS, labels=self.LABELS).items():
            field.disabled = disabled
            self.fields[name] = field

    def groups(self) -> list[tuple[str, list]]:
        """``(title, [bound fields])`` in the page's order; groups with no setting are left out."""
        grouped: dict[str, list] = {title: [] for title, _ in self.GROUPS}
        for name in self.fields:
            title = next(t for t, prefix in self.GROUPS if name.startswith(prefix))
            grouped[title].append(self[name])
        return [(title, fields) for title, fields in grouped.items() if fields]

    def label_of(self, name: str) -> str:
        """The label the page shows for setting ``name``."""
        return str(self.fields[name].label or name)

    def changes(self) -> dict:
        """The cleaned settings whose values differ from the policy's."""
        return {k: v for k, v in self.cleaned_data.items() if v != getattr(self.policy, k)}
