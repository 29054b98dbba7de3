"""Attestation and campaign pages: the owner's inbox, an attestation with its checklist form, the
list of all attestations, and campaigns (list with progress, launch form, detail with the per-team
breakdown).

Views only parse, authorise and call: reads through the selectors and the shared
``AttestationFilterSet`` / ``CampaignFilterSet`` of ``governance.attestations``; writes through its
services (``attestation_attest``, ``campaign_launch``). Refusals map to HTTP as everywhere:
``ValidationError`` → 400 with the form's field messages, ``PermissionDenied`` → 403,
``Conflict`` → 409, an object the viewer may not see → 404.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from governance import attestations as att
from governance.audit import Actor
from governance.errors import Conflict
from governance.models import Attestation, Campaign
from inventory.models import Agent, Team
from inventory.views import apply_service_errors, list_page, list_response, paginate, refusal, without_empty

YES_NO_CHOICES = [("yes", "Yes"), ("no", "No")]
OUTSTANDING_ROWS = 50


def _yes_no(label: str, help_text: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        help_text=help_text,
        choices=YES_NO_CHOICES,
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )


class AttestForm(forms.Form):
    """The owner's checklist and outcome; ``revoke_grants`` offers the agent's active grants."""

    still_needed = _yes_no("Is the agent still needed?", "If not, decommission it.")
    owner_correct = _yes_no("Are you its right owner?", "If not, transfer it to its right owner, who attests.")
    grants_appropriate = _yes_no(
        "Are its delegation grants still appropriate?", "If not, choose reduce and pick the grants to revoke."
    )
    credentials_rotated = _yes_no(
        "Have its credentials been rotated within their periods?", "If not, say in the comment when they will be."
    )
    outcome = forms.ChoiceField(label="Outcome", choices=Attestation.Outcome.choices, widget=forms.RadioSelect)
    revoke_grants = forms.TypedMultipleChoiceField(
        label="Grants to revoke (outcome reduce)",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    comment = forms.CharField(
        label="Comment", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, grants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["revoke_grants"].choices = [(g.pk, _grant_label(g)) for g in grants]
        if not grants:
            self.fields["revoke_grants"].help_text = "The agent holds no active grant."


def _grant_label(grant) -> str:
    """``#<id> <purpose> (<scopes>) until <expiry>``, the expiry in the viewer's timezone (the active one)."""
    scopes = ", ".join(str(s) for s in grant.scopes.all()) or "no scopes"
    until = timezone.localtime(grant.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    return f"#{grant.pk} {grant.purpose} ({scopes}) until {until}"


def _scope_choices() -> list:
    """The launch form's scopes: all agents, or one tier, team or environment, as ``kind:value``."""
    return [
        ("all", "All live agents"),
        ("Risk tier", [(f"tier:{v}", label) for v, label in Agent.RiskTier.choices]),
        ("Team", [(f"team:{t.slug}", t.name) for t in Team.objects.order_by("name", "id")]),
        ("Environment", [(f"environment:{v}", label) for v, label in Agent.Environment.choices]),
    ]


class CampaignLaunchForm(forms.Form):
    """Launch a campaign: a name, a scope (``all`` or ``kind:value``) and a deadline date."""

    name = forms.CharField(max_length=200)
    scope = forms.ChoiceField(label="Scope")
    deadline = forms.DateField(
        help_text="The last day to attest, in the organisation's calendar.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scope"].choices = _scope_choices()

    def scope_parts(self) -> tuple[str, str]:
        kind, _, value = self.cleaned_data["scope"].partition(":")
        return kind, value


# --- attestations --------------------------------------------------------------------------


def _today():
    return att.org_today(timezone.now())


def _mark(rows, user, today) -> None:
    for a in rows:
        a.overdue = a.status == Attestation.Status.OPEN and a.due_on < today
        a.days_left = (a.due_on - today).days
        a.days_overdue = max(0, -a.days_left)
        a.can_attest = a.status == Attestation.Status.OPEN and att.can_attest(user, a.agent)


@login_required
@require_GET
def attestation_inbox(request: HttpRequest) -> HttpResponse:
    """The viewer's inbox: open attestations of the agents they own or back up, most overdue first
    (``attestation_inbox``), paginated; each links to its checklist form."""
    params = without_empty(request.GET)
    unknown = sorted(set(params) - {"page", "page_size"})
    page, errors = (None, [f"Unknown parameter {k!r}. Allowed: page, page_size." for k in unknown])
    if not errors:
        page, errors = paginate(params, att.attestation_inbox(user=request.user))
    today = _today()
    if page is not None:
        _mark(page.object_list, request.user, today)
    context = {
        "section": "attestations",
        "page": page,
        "errors": errors,
        "params": params,
        "today": today,
        "zone": att.org_timezone().key,
        "canonical_query": params.urlencode(),
    }
    return list_response(request, "governance/attestation_inbox.html", context, status=400 if errors else 200)


@login_required
@require_GET
def attestation_list(request: HttpRequest) -> HttpResponse:
    """Every attestation the viewer may see (all for IAM admins and auditors, their agents' for
    owners), with the filters of ``AttestationFilterSet``; unknown filters or values → 400."""
    params = without_empty(request.GET)
    filterset = att.AttestationFilterSet(params, queryset=att.attestation_list(user=request.user), request=request)
    listing = list_page(params, filterset)
    today = _today()
    if listing["page"] is not None:
        _mark(listing["page"].object_list, request.user, today)
    context = {
        "section": "attestations",
        **listing,
        "today": today,
        "statuses": Attestation.Status.choices,
        "selected": {key: params.getlist(key) for key in ("status", "overdue")},
    }
    return list_response(request, "governance/attestation_list.html", context, status=400 if listing["errors"] else 200)


def _attestation_or_404(user, pk: int) -> Attestation:
    try:
        return att.attestation_get(user=user, pk=pk)
    except Attestation.DoesNotExist:
        raise Http404("No attestation with this number that you may see.") from None


def _detail(request: HttpRequest, attestation: Attestation, *, form=None, status: int = 200) -> HttpResponse:
    today = _today()
    _mark([attestation], request.user, today)
    grants = list(att.active_grants_of(attestation.agent)) if attestation.can_attest else []
    if attestation.can_attest and form is None:
        form = AttestForm(grants=grants)
    context = {
        "section": "attestations",
        "attestation": attestation,
        "agent": attestation.agent,
        "form": form if attestation.can_attest else None,
        "grants": grants,
        "today": today,
        "zone": att.org_timezone().key,
    }
    template = "governance/attestation_detail.html"
    if request.method == "POST" and getattr(request, "htmx", False):
        template += "#attest-panel"
    return render(request, template, context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def attestation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One attestation; its owner or backup owner answers the checklist here (POST).

    A valid answer goes to ``attestation_attest`` and redirects to the inbox; invalid answers
    come back with field messages (400); a second decision is 409; anyone but the agent's owner
    or backup owner is refused (403). htmx gets the checklist panel back in place.
    """
    attestation = _attestation_or_404(request.user, pk)
    if request.method == "GET":
        return _detail(request, attestation)
    if not att.can_attest(request.user, attestation.agent):
        raise PermissionDenied(
            "Only the agent's owner or backup owner attests to it; nobody attests an agent they do not own."
        )
    grants = list(att.active_grants_of(attestation.agent))
    form = AttestForm(request.POST, grants=grants)
    if form.is_valid():
        data = form.cleaned_data
        try:
            att.attestation_attest(
                actor=Actor.person(request.user),
                attestation=attestation,
                still_needed=data["still_needed"],
                owner_correct=data["owner_correct"],
                grants_appropriate=data["grants_appropriate"],
                credentials_rotated=data["credentials_rotated"],
                outcome=data["outcome"],
                comment=data["comment"],
                revoke_grants=data["revoke_grants"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        except Conflict as exc:
            return refusal(request, exc, 409)
        else:
            agent = attestation.agent
            messages.success(request, f"Attested {agent.name}: {Attestation.Outcome(data['outcome']).label.lower()}.")
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(reverse("attestation-inbox"))
            return redirect("attestation-inbox")
    return _detail(request, _attestation_or_404(request.user, pk), form=form, status=400)


# --- campaigns -----------------------------------------------------------------------------


def _require_campaign_reader(user) -> None:
    if not att.can_read_campaigns(user):
        raise PermissionDenied(
            "Campaigns are launched by IAM admins and read by auditors; your attestations are in your inbox."
        )


@login_required
@require_http_methods(["GET", "POST"])
def campaign_list(request: HttpRequest) -> HttpResponse:
    """Campaigns with their progress (IAM admins and auditors); IAM admins launch one here (POST).

    Filters of ``CampaignFilterSet``; unknown filters or values → 400. A launch refused for its
    input comes back with the form's field messages (400); owners are refused (403).
    """
    _require_campaign_reader(request.user)
    form = None
    status = 200
    if att.can_launch_campaign(request.user):
        form = CampaignLaunchForm(request.POST or None)
    if request.method == "POST":
        if form is None:
            raise PermissionDenied("Only IAM admins launch attestation campaigns.")
        if form.is_valid():
            kind, value = form.scope_parts()
            try:
                campaign = att.campaign_launch(
                    actor=Actor.person(request.user),
                    name=form.cleaned_data["name"],
                    scope_kind=kind,
                    scope_value=value,
                    deadline=form.cleaned_data["deadline"],
                    description=form.cleaned_data["description"],
                )
            except ValidationError as exc:
                apply_service_errors(form, exc, {"scope_kind": "scope", "scope_value": "scope"})
            else:
                messages.success(request, f"Campaign {campaign.name} launched.")
                return redirect("campaign-detail", pk=campaign.pk)
        status = 400
    params = without_empty(request.GET)
    filterset = att.CampaignFilterSet(params, queryset=att.campaign_list(user=request.user), request=request)
    listing = list_page(params, filterset)
    if listing["page"] is not None:
        for c in listing["page"].object_list:
            c.progress = att.campaign_progress(c)
    context = {
        "section": "campaigns",
        **listing,
        "form": form,
        "form_open": status == 400,
        "today": _today(),
        "zone": att.org_timezone().key,
    }
    if listing["errors"]:
        status = 400
    return list_response(request, "governance/campaign_list.html", context, status=status)


@login_required
@require_GET
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One campaign (IAM admins and auditors): its scope, deadline, progress bar, the per-team
    breakdown and the agents not attested yet (the first ``OUTSTANDING_ROWS``)."""
    _require_campaign_reader(request.user)
    try:
        campaign = att.campaign_get(user=request.user, pk=pk)
    except Campaign.DoesNotExist:
        raise Http404("No campaign with this number.") from None
    progress = att.campaign_progress(campaign)
    outstanding = att.campaign_outstanding(campaign)
    context = {
        "section": "campaigns",
        "campaign": campaign,
        "progress": progress,
        "teams": att.campaign_team_breakdown(campaign),
        "outstanding": list(outstanding[:OUTSTANDING_ROWS]),
        "outstanding_count": progress.total - progress.attested,
        "today": _today(),
    }
    return render(request, "governance/campaign_detail.html", context)
