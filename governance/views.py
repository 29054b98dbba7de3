"""Governance pages: the dashboard, the findings queue, integration tokens.

Views only parse, authorise and call: reads through ``governance.selectors`` /
``inventory.selectors`` and the shared ``FindingFilterSet``; writes through
``governance.services``. A refused action shows the service's own message: inline for htmx
(the finding's row, with status 400/403/409), else the error page.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import selectors, services
from governance.audit import Actor
from governance.errors import Conflict
from governance.filters import FindingFilterSet
from governance.findings import FINDING_KIND_CHOICES
from governance.forms import FindingAcceptRiskForm, FindingNoteForm, TokenIssueForm
from governance.models import Finding, IntegrationToken
from governance.roles import is_iam_admin
from inventory import selectors as inventory_selectors
from inventory.models import Agent
from inventory.views import (
    apply_service_errors,
    filter_errors,
    list_response,
    paginate,
    refusal,
    sort_columns,
    wants_partial,
    without_empty,
)

DASHBOARD_DUE_ROWS = 8
ROTATION_DUE_WITHIN_DAYS = 14
SEVERITY_ORDER = [Finding.Severity.CRITICAL, Finding.Severity.HIGH, Finding.Severity.MEDIUM, Finding.Severity.LOW]
#: The statuses the dashboard's "open findings" counts (``selectors.finding_severity_counts``), as a query.
OPEN_FINDINGS_QUERY = urlencode([("status", Finding.Status.OPEN), ("status", Finding.Status.ACKNOWLEDGED)])


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Agents by state and by risk tier, open findings by severity, credentials due for rotation.

    Everything is limited to what the viewer may see; a constant number of queries.
    """
    user = request.user
    now = timezone.now()
    by_state = inventory_selectors.agent_counts_by(user=user, field="state")
    by_tier = inventory_selectors.agent_counts_by(user=user, field="risk_tier")
    by_severity = selectors.finding_severity_counts(user=user)
    due = inventory_selectors.credential_rotation_due_list(user=user, now=now, within_days=ROTATION_DUE_WITHIN_DAYS)
    context = {
        "section": "dashboard",
        "now": now,
        "agents_total": sum(by_state.values()),
        "by_state": [(v, label, by_state.get(v, 0)) for v, label in Agent.State.choices],
        "by_tier": [(v, label, by_tier.get(v, 0)) for v, label in reversed(Agent.RiskTier.choices)],
        "findings_total": sum(by_severity.values()),
        "by_severity": [(s.value, s.label, by_severity.get(s, 0)) for s in SEVERITY_ORDER],
        "due_count": due.count(),
        "due_rows": list(due[:DASHBOARD_DUE_ROWS]),
        "due_within_days": ROTATION_DUE_WITHIN_DAYS,
        "open_findings_query": OPEN_FINDINGS_QUERY,
    }
    return render(request, "governance/dashboard.html", context)


# --- findings ------------------------------------------------------------------------------

FINDING_COLUMNS = [("first_seen", "First seen"), ("last_seen", "Last seen")]


def _workable_agent_ids(user) -> set[int] | None:
    """Ids of the agents whose findings ``user`` may work; ``None`` means all (IAM admins). One query."""
    if is_iam_admin(user):
        return None
    if not user.is_authenticated:
        return set()
    owned = inventory_selectors.agent_list(user=user).filter(Q(owner=user) | Q(backup_owner=user))
    return set(owned.values_list("pk", flat=True))


def _mark_workable(findings, workable: set[int] | None) -> None:
    for f in findings:
        f.can_work = f.status != Finding.Status.RESOLVED and (workable is None or f.agent_id in workable)


@login_required
@require_GET
def finding_list(request: HttpRequest) -> HttpResponse:
    """The findings queue: unresolved by default; filter by kind, severity, status, agent, framework.

    Unknown filters or values → 400 with the reason. IAM admins and owners act inline.
    """
    params = without_empty(request.GET)
    data = params.copy()
    if "status" not in data:
        data.setlist("status", [s.value for s in Finding.UNRESOLVED])
    filterset = FindingFilterSet(data, queryset=selectors.finding_list(user=request.user), request=request)
    errors = [] if filterset.is_valid() else filter_errors(filterset)
    page = None
    if not errors:
        page, errors = paginate(params, filterset.qs)
    if page is not None:
        _mark_workable(page.object_list, _workable_agent_ids(request.user))
    context = {
        "section": "findings",
        "page": page,
        "errors": errors,
        "params": params,
        "canonical_query": params.urlencode(),
        "columns": {c["key"]: c for c in sort_columns(params, FINDING_COLUMNS)},
        "kinds": FINDING_KIND_CHOICES,
        "severities": [(s.value, s.label) for s in SEVERITY_ORDER],
        "statuses": Finding.Status.choices,
        "frameworks": [f"NHI{i}" for i in range(1, 11)],
        "selected": {key: params.getlist(key) for key in ("kind", "severity", "status", "framework")},
        "any_status_query": _without(params, "status", "page"),
        "default_until": _default_until(),
    }
    return list_response(request, "governance/finding_list.html", context, status=400 if errors else 200)


def _without(params, *keys: str) -> str:
    """``params`` as a query string without ``keys``."""
    q = params.copy()
    for key in keys:
        q.pop(key, None)
    return q.urlencode()


def _default_until() -> str:
    """A suggested end of a risk acceptance: 30 days ahead, in the viewer's timezone."""
    return (timezone.localtime() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")


def _finding_or_404(user, pk: int) -> Finding:
    try:
        return selectors.finding_get(user=user, pk=pk)
    except Finding.DoesNotExist:
        raise Http404("No finding with this number that you may see.") from None


def _finding_row(request: HttpRequest, pk: int, *, error: str = "", status: int = 200) -> HttpResponse:
    finding = _finding_or_404(request.user, pk)
    _mark_workable([finding], _workable_agent_ids(request.user))
    context = {
        "finding": finding,
        "row_error": error,
        "default_until": _default_until(),
    }
    return render(request, "governance/finding_list.html#finding-row", context, status=status)


def _messages_of(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(m for msgs in exc.message_dict.values() for m in msgs)
    return " ".join(exc.messages)


FINDING_ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved", "accept-risk": "risk accepted"}


@login_required
@require_POST
def finding_act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Acknowledge, resolve (with a note) or accept the risk of (until + note; IAM admins) one finding.

    htmx gets the finding's row back, with the service's message when it refused;
    a plain form post is redirected to the findings list, or shown the error page.
    """
    if action not in FINDING_ACTIONS:
        raise Http404("No such action on a finding.")
    finding = _finding_or_404(request.user, pk)
    actor = Actor.person(request.user)
    try:
        if action == "acknowledge":
            form = FindingNoteForm(request.POST)
            form.is_valid()
            services.finding_acknowledge(actor=actor, finding=finding, note=form.cleaned_data.get("note", ""))
        elif action == "resolve":
            form = FindingNoteForm(request.POST)
            form.is_valid()
            services.finding_resolve(actor=actor, finding=finding, note=form.cleaned_data.get("note", ""))
        else:
            form = FindingAcceptRiskForm(request.POST)
            form.is_valid()
            services.finding_accept_risk(
                actor=actor,
                finding=finding,
                until=form.cleaned_data.get("until"),
                note=form.cleaned_data.get("note", ""),
            )
    except (ValidationError, PermissionDenied, Conflict) as exc:
        status = 400 if isinstance(exc, ValidationError) else 403 if isinstance(exc, PermissionDenied) else 409
        message = _messages_of(exc) if isinstance(exc, ValidationError) else str(exc)
        if wants_partial(request):
            return _finding_row(request, pk, error=message, status=status)
        if status == 400:
            return render(request, "400.html", {"exception": message}, status=400)
        return refusal(request, exc, status)
    if wants_partial(request):
        return _finding_row(request, pk)
    messages.success(request, f"Finding {pk}: {FINDING_ACTIONS[action]}.")
    return redirect("finding-list")


# --- integration tokens --------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """A person's integration tokens; issue one for oneself (the clear token is shown once)."""
    form = TokenIssueForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                token, clear = services.integration_token_issue(
                    actor=Actor.person(request.user),
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at(),
                )
            except ValidationError as exc:
                exc = (
                    ValidationError(
                        {("expires_on" if k == "expires_at" else k): v for k, v in exc.message_dict.items()}
                    )
                    if hasattr(exc, "error_dict")
                    else exc
                )
                apply_service_errors(form, exc)
            else:
                issued = {"token": token, "clear": clear}
                form = TokenIssueForm()
                status = 200
    context = {
        "section": "tokens",
        "form": form,
        "issued": issued,
        "tokens": selectors.integration_token_list(user=request.user),
        "now": timezone.now(),
        "scope_labels": dict(IntegrationToken.Scope.choices),
        "show_user": is_iam_admin(request.user),
    }
    response = render(request, "governance/token_list.html", context, status=status)
    if issued:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the viewer's tokens at once (IAM admins: anyone's)."""
    try:
        token = selectors.integration_token_list(user=request.user).get(pk=pk)
    except IntegrationToken.DoesNotExist:
        raise Http404("No token with this number that you may see.") from None
    try:
        services.integration_token_revoke(actor=Actor.person(request.user), token=token)
    except Conflict as exc:
        return refusal(request, exc, 409)
    messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked.")
    return redirect("token-list")
