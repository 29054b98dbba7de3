"""Forms of the governance pages: working findings and issuing integration tokens.

They parse input only; the services check every rule. Datetimes typed by a person are in
their own timezone (the active one) and become aware datetimes, stored in UTC.
"""

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from governance.models import IntegrationToken

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
