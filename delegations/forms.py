"""Forms of the delegation pages. They parse input only; every rule is checked by ``delegations.services``.

Datetimes typed by a person are read in their own timezone (the active one, see
``governance.middleware.ViewerTimezoneMiddleware``) and become aware datetimes, stored in UTC.
A local time that does not exist (skipped when the clocks go forward) or happens twice (when
they go back) is a field error naming the timezone, never a guess and never a server error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from governance.forms import LOCAL_DATETIME_FORMATS
from governance.models import MAX_DELEGATION_DEPTH
from inventory.models import AccessLevel, Agent, Tool

from .decisions import DecisionRequest
from .models import DelegationGrant, resource_problem, scope_label
from .services import ScopeRequest

#: Most grant requests one bulk approval may hold.
BULK_MAX = 100


def local_time_problem(value: datetime, zone) -> str:
    """Why the wall-clock time ``value`` (naive) cannot be read in ``zone`` (a ``tzinfo``): ``"missing"``
    (skipped when the clocks go forward), ``"repeated"`` (it happens twice when they go back) or ``""``."""
    first, second = value.replace(fold=0, tzinfo=zone), value.replace(fold=1, tzinfo=zone)
    if first.utcoffset() == second.utcoffset():
        return ""
    # In a gap, the wall time does not survive a round trip through UTC; in an overlap it does, twice.
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return "missing" if back != value else "repeated"


class LocalDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` input read in the viewer's timezone; an aware datetime or ``None``.

    A wall-clock time skipped or repeated by a daylight-saving change in that timezone is a
    field error that says so (Django would otherwise guess, or refuse with a vague message).
    """

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", LOCAL_DATETIME_FORMATS)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            naive = value if timezone.is_naive(value) else None
        else:
            naive = None
            for fmt in self.input_formats:
                try:
                    naive = datetime.strptime(str(value).strip(), fmt)
                    break
                except (ValueError, TypeError):
                    continue
            if naive is None:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if naive is not None:
            zone = timezone.get_current_timezone()
            problem = local_time_problem(naive, zone)
            shown = naive.strftime("%Y-%m-%d %H:%M")
            if problem == "missing":
                raise forms.ValidationError(
                    f"{shown} does not exist in {zone}: the clocks skip that hour (daylight saving). "
                    "Pick a time outside the change.",
                    code="nonexistent_time",
                )
            if problem == "repeated":
                raise forms.ValidationError(
                    f"{shown} happens twice in {zone}: the clocks go back that night (daylight saving), so it "
                    "is ambiguous. Pick a time outside the change.",
                    code="ambiguous_time",
                )
            return timezone.make_aware(naive, zone)
        return value


def _intents(raw: str) -> list[str]:
    return [t.strip() for t in (raw or "").split(",") if t.strip()]


def _people():
    return get_user_model().objects.filter(is_active=True).order_by("username", "id")


class ParentChoiceField(forms.ModelChoiceField):
    """A grant that authorises now, offered as the parent of a new grant (one agent handing work on)."""

    def label_from_instance(self, obj: DelegationGrant) -> str:
        scopes = ", ".join(str(s) for s in obj.scopes.all()) or "no scopes"
        until = timezone.localtime(obj.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        return f"#{obj.pk} to {obj.agent.name} ({scopes}) until {until}"


class GrantRequestForm(forms.Form):
    """Request a grant for ``agent``: scopes from a grid of its tools × the access levels each offers
    (each with an optional resource pattern), purpose, intents, justification, optionally on
    behalf of a person and a parent grant, and the expiry in the viewer's timezone.

    Scopes, purpose, justification and expiry are required (with ``services.grant_request``'s
    messages), and an expiry already past is refused, so that these errors show at once; the
    service checks everything again.

    ``scopes`` holds ``"<tool id>:<access>"`` values; ``pattern_<tool id>_<access>`` the pattern
    of that scope. ``scope_requests()`` gives the ``ScopeRequest`` list for ``services.grant_request``.
    """

    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        error_messages={"required": "Ask for at least one scope (a tool and an access level)."},
    )
    purpose = forms.CharField(
        max_length=300,
        help_text="What the grant is for, in a line.",
        error_messages={"required": "Say what the grant is for."},
    )
    intents = forms.CharField(
        max_length=500,
        required=False,
        label="Intents",
        help_text="Comma-separated tags of the intents it serves (e.g. triage, reporting). Blank: any intent.",
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        help_text="Why the agent needs this now; approvers read it.",
        error_messages={"required": "Justify the request; approvers read it."},
    )
    on_behalf_of = forms.ModelChoiceField(
        queryset=_people(),
        to_field_name="username",
        required=False,
        empty_label="—",
        label="On behalf of",
        help_text="The person the agent acts for, if any.",
    )
    expires_at = LocalDateTimeField(
        label="Expires at",
        help_text="In your timezone. Once approved, the grant runs from the time of the request until then.",
        error_messages={"required": "Every grant ends: give its expiry."},
    )

    def __init__(self, *args, agent: Agent, tools: list[Tool], parents, **kwargs):
        super().__init__(*args, **kwargs)
        self.agent = agent
        self.fields["on_behalf_of"].queryset = _people()
        self.cells: list[tuple[Tool, str]] = []
        choices = []
        for tool in tools:
            for access in tool.access_levels or AccessLevel.values:
                if access not in AccessLevel.values:
                    continue
                key = f"{tool.pk}:{access}"
                choices.append((key, scope_label(tool.name, access)))
                self.cells.append((tool, access))
                self.fields[f"pattern_{tool.pk}_{access}"] = forms.CharField(
                    max_length=300,
                    required=False,
                    label=f"{tool.name}: {access} — resource pattern",
                )
        self.fields["scopes"].choices = choices
        self.fields["parent"] = ParentChoiceField(
            queryset=parents,
            required=False,
            empty_label="— none: a grant of its own —",
            label="Parent grant",
            help_text="Only to hand on part of a grant another agent holds: the scopes must be within it and "
            "it cannot outlive it.",
        )
        self.order_fields(["scopes", "purpose", "intents", "justification", "on_behalf_of", "parent", "expires_at"])

    def clean_expires_at(self):
        """An expiry already past is refused here too, so that it shows with the other field errors on
        the first submit (``services.grant_request`` checks it again, with the cap)."""
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry is already past.", code="past")
        return expires_at

    def scope_grid(self) -> list[dict]:
        """The scope checkboxes as rows (one per tool) of cells (one per access level the tool offers):
        ``{"tool", "cells": [{"access", "value", "checked", "pattern"} | None, …]}`` in read, write,
        execute order, ``pattern`` being the bound pattern field."""
        chosen = set(self["scopes"].value() or [])
        rows: dict[int, dict] = {}
        for tool, access in self.cells:
            row = rows.setdefault(tool.pk, {"tool": tool, "cells": {a: None for a in AccessLevel.values}})
            value = f"{tool.pk}:{access}"
            row["cells"][access] = {
                "access": access,
                "value": value,
                "checked": value in chosen,
                "pattern": self[f"pattern_{tool.pk}_{access}"],
            }
        return [{"tool": r["tool"], "cells": [r["cells"][a] for a in AccessLevel.values]} for r in rows.values()]

    def scope_requests(self) -> list[ScopeRequest]:
        """The chosen scopes, each with its pattern (stripped), in the grid's order."""
        chosen = set(self.cleaned_data.get("scopes") or [])
        out = []
        for tool, access in self.cells:
            if f"{tool.pk}:{access}" in chosen:
                pattern = (self.cleaned_data.get(f"pattern_{tool.pk}_{access}") or "").strip()
                out.append(ScopeRequest(tool.name, access, pattern))
        return out

    def intent_list(self) -> list[str]:
        """The intents typed, comma-separated, as a list of stripped, non-empty tags."""
        return _intents(self.cleaned_data.get("intents", ""))


class ApproveForm(forms.Form):
    """Approve a request: optionally shorten its expiry (viewer's timezone), optionally comment."""

    expires_at = LocalDateTimeField(required=False, label="Shorter expiry (optional)")
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)


class ReasonForm(forms.Form):
    """A reason kept in the audit trail and sent to the requester (deny, revoke: the service requires
    it; cancel: optional)."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)


class RenewForm(forms.Form):
    """Ask to renew a grant: a length (a number of hours or days) or an expiry in the viewer's
    timezone — exactly one, no default (the service says so) — and an optional justification."""

    UNITS = {"hours": timedelta(hours=1), "days": timedelta(days=1)}

    length = forms.IntegerField(required=False, min_value=1, max_value=24 * 366, label="Length")
    unit = forms.ChoiceField(
        choices=[("hours", "hours"), ("days", "days")], initial="hours", required=False, label="Unit"
    )
    expires_at = LocalDateTimeField(required=False, label="Or until")
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=4000,
        help_text="Blank: the original justification, marked as a renewal.",
    )

    def duration(self) -> timedelta | None:
        """The length chosen (``length`` × ``unit``, hours when no unit is given), or ``None`` if none was typed."""
        length = self.cleaned_data.get("length")
        if length is None:
            return None
        return length * self.UNITS[self.cleaned_data.get("unit") or "hours"]


class BulkApproveForm(forms.Form):
    """The requests chosen in the approval queue (``grant`` repeated: their ids) and one optional comment."""

    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)

    def __init__(self, data=None, **kwargs):
        super().__init__(data, **kwargs)
        self.grant_ids: list[int] = []
        if data is not None:
            seen = set()
            for raw in data.getlist("grant"):
                if raw.isdigit() and int(raw) not in seen:
                    seen.add(int(raw))
                    self.grant_ids.append(int(raw))

    def clean(self):
        data = super().clean()
        if not self.grant_ids:
            raise forms.ValidationError("Select at least one request to approve.")
        if len(self.grant_ids) > BULK_MAX:
            raise forms.ValidationError(f"Approve at most {BULK_MAX} requests at once.")
        return data


# --- runtime decisions: the test form and the decision log's filters ----------------------------

#: Query parameters a form post carries besides its fields.
FORM_EXTRAS = frozenset({"csrfmiddlewaretoken"})
_GRANT_ID = re.compile(r"[0-9]+")


class AgentChoiceField(forms.ModelChoiceField):
    """An agent by slug, labelled ``Name (slug)`` and, when it is not active, its state."""

    def label_from_instance(self, obj: Agent) -> str:
        label = f"{obj.name} ({obj.slug})"
        return label if obj.state == Agent.State.ACTIVE else f"{label} — {obj.get_state_display().lower()}"


class DecisionTestForm(forms.Form):
    """One question for ``delegations.decisions.decide``, as the REST API takes it but naming the agent
    from a list (``agents``: the agents the viewer may test, a queryset) instead of by its workload
    identity: tool, access (``read`` / ``write`` / ``execute``), resource, intent, the username acted
    for, and the grant chain claimed as comma-separated grant ids, own grant first.

    The lengths are the API's (``DecisionInputSerializer``); an agent outside ``agents``, an unknown
    access level, a chain that is not whole numbers ≥ 1 (at most ``MAX_DELEGATION_DEPTH``, none twice)
    and a parameter the form does not have are field (or form-wide) errors.
    ``decision_request()`` gives the ``DecisionRequest``.
    """

    agent = AgentChoiceField(
        queryset=Agent.objects.none(),
        to_field_name="slug",
        empty_label="— choose an agent —",
        error_messages={
            "required": "Choose the agent to ask about.",
            "invalid_choice": "No agent with this name that you may test.",
        },
    )
    tool = forms.CharField(max_length=100, help_text="The tool's name in the agent's inventory.")
    access = forms.ChoiceField(choices=AccessLevel.choices, label="Access")
    resource = forms.CharField(
        max_length=500, required=False, help_text="The exact resource, e.g. repo:acme/docs. Blank: none."
    )
    intent = forms.CharField(max_length=200, required=False, help_text="The purpose of the call, e.g. triage.")
    on_behalf_of = forms.CharField(
        max_length=150, required=False, label="On behalf of", help_text="Username of the person the agent acts for."
    )
    grant_chain = forms.CharField(
        max_length=200,
        required=False,
        label="Grant chain",
        help_text="Grant ids the agent claims to act under, own grant first, comma-separated (e.g. 12, 7). Blank: any.",
    )

    def __init__(self, data=None, *, agents, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["agent"].queryset = agents
        self.fields["tool"].widget.attrs.update({"list": "tool-options", "autocomplete": "off"})

    def clean_resource(self) -> str:
        value = self.cleaned_data["resource"]
        problem = resource_problem(value)
        if problem:
            raise forms.ValidationError(problem, code="resource")
        return value

    def clean_grant_chain(self) -> tuple[int, ...]:
        raw = self.cleaned_data["grant_chain"]
        if not raw:
            return ()
        parts = [p.strip() for p in raw.split(",")]
        if not all(_GRANT_ID.fullmatch(p) and int(p) >= 1 for p in parts):
            raise forms.ValidationError(
                "Give grant ids as whole numbers from 1, separated by commas (e.g. 12, 7).", code="invalid"
            )
        chain = tuple(int(p) for p in parts)
        if len(chain) > MAX_DELEGATION_DEPTH:
            raise forms.ValidationError(f"A chain holds at most {MAX_DELEGATION_DEPTH} grants.", code="too_long")
        if len(set(chain)) != len(chain):
            raise forms.ValidationError("A grant appears twice in the chain.", code="repeated")
        return chain

    def clean(self):
        data = super().clean()
        unknown = sorted(set(self.data) - set(self.fields) - FORM_EXTRAS)
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise forms.ValidationError(
                f"Unknown field {names}. Allowed: {', '.join(self.fields)}.", code="unknown_field"
            )
        return data

    def decision_request(self) -> DecisionRequest:
        """The valid form as a ``DecisionRequest`` naming the agent by ``agent_id``."""
        data = self.cleaned_data
        return DecisionRequest(
            tool=data["tool"],
            access=data["access"],
            agent_id=data["agent"].pk,
            resource=data["resource"],
            intent=data["intent"],
            on_behalf_of=data["on_behalf_of"],
            grant_chain=data["grant_chain"],
        )

    def query(self) -> dict[str, str]:
        """The valid form as query parameters (the chain normalised), to link to its result."""
        data = self.cleaned_data
        params = {
            "agent": data["agent"].slug,
            "tool": data["tool"],
            "access": data["access"],
            "resource": data["resource"],
            "intent": data["intent"],
            "on_behalf_of": data["on_behalf_of"],
            "grant_chain": ", ".join(str(pk) for pk in data["grant_chain"]),
        }
        return {key: value for key, value in params.items() if value}
