"""Governance pages: the dashboard, the findings queue, integration tokens, the audit log, sign-in lockout.

Views only parse, authorise and call: reads through ``governance.selectors`` /
``inventory.selectors`` and the shared ``FindingFilterSet`` / ``AuditEventFilterSet``; writes through
``governance.services``. A refused action shows the service's own message: inline for htmx
(the finding's row, with status 400/403/409), else the error page.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from delegations import selectors as grant_selectors
from governance import charts, selectors, services
from governance.audit import Actor, audit_verify
from governance.errors import Conflict
from governance.filters import AuditEventFilterSet, FindingFilterSet
from governance.findings import FINDING_KIND_CHOICES
from governance.forms import FindingAcceptRiskForm, FindingNoteForm, PolicyForm, TokenIssueForm
from governance.models import AuditEvent, Finding, IntegrationToken, Policy
from governance.roles import can_read_all, is_iam_admin
from inventory import selectors as inventory_selectors
from inventory.models import Agent
from inventory.views import (
    apply_service_errors,
    list_page,
    list_response,
    refusal,
    sort_columns,
    wants_partial,
    without_empty,
)

DASHBOARD_DUE_ROWS = 8
DASHBOARD_GRANT_ROWS = 8
GRANTS_EXPIRING_WITHIN_DAYS = 7
ROTATION_DUE_WITHIN_DAYS = 14
SEVERITY_ORDER = [Finding.Severity.CRITICAL, Finding.Severity.HIGH, Finding.Severity.MEDIUM, Finding.Severity.LOW]
#: The statuses the dashboard's "open findings" counts (``selectors.finding_severity_counts``), as a query.
OPEN_FINDINGS_QUERY = urlencode([("status", Finding.Status.OPEN), ("status", Finding.Status.ACKNOWLEDGED)])


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Agents by state and by risk tier, open findings by severity, credentials due for rotation, grants
    expiring within 7 days (``delegations.selectors.grants_expiring_within``).

    Everything is limited to what the viewer may see; a constant number of queries.
    """
    user = request.user
    now = timezone.now()
    by_state = inventory_selectors.agent_counts_by(user=user, field="state")
    by_tier = inventory_selectors.agent_counts_by(user=user, field="risk_tier")
    by_severity = selectors.finding_severity_counts(user=user)
    due = inventory_selectors.credential_rotation_due_list(user=user, now=now, within_days=ROTATION_DUE_WITHIN_DAYS)
    expiring = (
        grant_selectors.grants_expiring_within(user=user, now=now, within=timedelta(days=GRANTS_EXPIRING_WITHIN_DAYS))
        .prefetch_related(None)
        .prefetch_related("scopes")
    )
    expiring_rows = list(expiring[:DASHBOARD_GRANT_ROWS])
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
        "expiring_rows": expiring_rows,
        "expiring_count": expiring.count() if len(expiring_rows) == DASHBOARD_GRANT_ROWS else len(expiring_rows),
        "expiring_within_days": GRANTS_EXPIRING_WITHIN_DAYS,
        **charts.dashboard_charts(user=user, now=now),
    }
    return render(request, "governance/dashboard.html", context)


# --- sign-in throttling ---------------------------------------------------------------------


def login_locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The sign-in page saying that this username is locked out from this address (status 429).

    django-axes calls it (``AXES_LOCKOUT_CALLABLE``) for the web and the admin sign-in after
    ``AXES_FAILURE_LIMIT`` failures of one username from one IP address; every further attempt
    during the lockout restarts its ``AXES_COOLOFF_TIME`` (OWASP ASVS V2.2.1).
    """
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {
        "form": AuthenticationForm(request, initial={"username": request.POST.get("username", "")[:150]}),
        "next": request.POST.get("next", request.GET.get("next", "")),
        "locked_out": (
            f"Too many failed sign-ins for this username from your address: sign-in is locked for "
            f"{minutes} minutes. Each further attempt starts the wait again. An IAM admin can lift the lock."
        ),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


# --- findings ------------------------------------------------------------------------------

FINDING_COLUMNS = [("first_seen", "First seen"), ("last_seen", "Last seen")]


def _mark_workable(findings, user) -> None:
    workable = services.finding_workable_agent_ids(user)
    for f in findings:
        f.can_work = f.status != Finding.Status.RESOLVED and services.can_work_finding(user, f, workable)


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
    listing = list_page(params, filterset)
    if listing["page"] is not None:
        _mark_workable(listing["page"].object_list, request.user)
    context = {
        "section": "findings",
        **listing,
        "columns": {c["key"]: c for c in sort_columns(params, FINDING_COLUMNS)},
        "kinds": FINDING_KIND_CHOICES,
        "severities": [(s.value, s.label) for s in SEVERITY_ORDER],
        "statuses": Finding.Status.choices,
        "frameworks": [f"NHI{i}" for i in range(1, 11)],
        "selected": {key: params.getlist(key) for key in ("kind", "severity", "status", "framework")},
        "any_status_query": _without(params, "status", "page"),
        "default_until": _default_until(),
    }
    return list_response(request, "governance/finding_list.html", context, status=400 if listing["errors"] else 200)


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


def _finding_row(
    request: HttpRequest, pk: int, *, error: str = "", status: int = 200, submitted: dict | None = None
) -> HttpResponse:
    """The finding's table row; ``submitted`` (``{"action", "values", "errors"}``) re-opens a refused
    form with what was typed and the service's field messages."""
    finding = _finding_or_404(request.user, pk)
    _mark_workable([finding], request.user)
    context = {
        "finding": finding,
        "row_error": error,
        "submitted": submitted or {},
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
            submitted = None
            if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
                # Field messages go under their fields, with what was typed kept; no message twice.
                submitted = {
                    "action": action,
                    "values": {key: request.POST.get(key, "") for key in ("note", "until")},
                    "errors": exc.message_dict,
                }
                message = ""
            return _finding_row(request, pk, error=message, status=status, submitted=submitted)
        if status == 400:
            return render(request, "400.html", {"exception": message}, status=400)
        return refusal(request, exc, status)
    if wants_partial(request):
        return _finding_row(request, pk)
    messages.success(request, f"Finding {pk}: {FINDING_ACTIONS[action]}.")
    return redirect("finding-list")


# --- integration tokens --------------------------------------------------------------------


#: Session key holding a just-issued token for its one display (``{"id": pk, "clear": token}``).
ISSUED_TOKEN_SESSION_KEY = "warrant.issued_token"


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """A person's integration tokens; issue one for oneself.

    POST/redirect/GET: a token issued is kept in the session (never in the URL) and shown by the
    next GET only, which removes it and is not cached (``Cache-Control: no-store``); reloading
    the page neither issues another token nor shows the clear token again.
    """
    form = TokenIssueForm(request.POST or None, user=request.user)
    if request.method == "POST":
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
                apply_service_errors(form, exc, {"expires_at": "expires_on"})
            else:
                request.session[ISSUED_TOKEN_SESSION_KEY] = {"id": token.pk, "clear": clear}
                return redirect("token-list")
    tokens = selectors.integration_token_list(user=request.user)
    issued = None
    shown = request.session.pop(ISSUED_TOKEN_SESSION_KEY, None) if request.method == "GET" else None
    if shown:
        token = tokens.filter(pk=shown["id"]).first()
        issued = {"token": token, "clear": shown["clear"]} if token is not None else None
    context = {
        "section": "tokens",
        "form": form,
        "issued": issued,
        "tokens": tokens,
        "now": timezone.now(),
        "scope_labels": dict(IntegrationToken.Scope.choices),
        "show_user": is_iam_admin(request.user),
        "shown_once": bool(issued),
    }
    response = render(request, "governance/token_list.html", context, status=400 if form.is_bound else 200)
    if shown:
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


# --- audit log -----------------------------------------------------------------------------

AUDIT_TIME_PARAMS = ("since", "until")


def _audited_object_types() -> list[str]:
    """The object types the audit log's filter suggests: Warrant's models as ``app_label.model``."""
    models = [m for app in ("inventory", "governance") for m in apps.get_app_config(app).get_models()]
    return sorted(m._meta.label_lower for m in models if m is not AuditEvent)


def _require_audit_reader(user) -> None:
    if not can_read_all(user):
        raise PermissionDenied("Only IAM admins and auditors read the audit log; an agent's page shows its trail.")


def _aware_times(params) -> QueryDict:
    """``params`` with ``since`` / ``until`` typed without an offset read in the viewer's timezone.

    The page's date pickers send local times (``2026-11-15T07:00``); the shared FilterSet takes
    ISO 8601 with an offset only, so a local time gets the viewer's offset. Anything else is
    passed on unchanged for the FilterSet to accept or refuse.
    """
    data = params.copy()
    for key in AUDIT_TIME_PARAMS:
        raw = data.get(key, "")
        try:
            parsed = parse_datetime(raw) if raw else None
        except ValueError:
            parsed = None
        if parsed is not None and timezone.is_naive(parsed):
            data[key] = timezone.make_aware(parsed, timezone.get_current_timezone()).isoformat()
    return data


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    """The audit log (IAM admins and auditors): who did what to which object, newest first.

    Filters of ``AuditEventFilterSet`` — ``verb``, ``object_type``, ``object_id``, ``actor_type``,
    ``since`` / ``until`` (a local time in the viewer's timezone, or ISO 8601 with an offset);
    paginated; unknown filters or values → 400 with the reason. A constant number of queries.
    Raises PermissionDenied for everyone else (owners read their agents' trails on the agent page).
    """
    _require_audit_reader(request.user)
    params = without_empty(request.GET)
    filterset = AuditEventFilterSet(
        _aware_times(params), queryset=selectors.audit_event_list(user=request.user), request=request
    )
    context = {
        "section": "audit",
        **list_page(params, filterset),
        "actor_types": AuditEvent.ActorType.choices,
        "object_types": _audited_object_types(),
    }
    return list_response(request, "governance/audit_list.html", context, status=400 if context["errors"] else 200)


@login_required
@require_POST
def audit_verify_chain(request: HttpRequest) -> HttpResponse:
    """Verify the audit log's hash chain now (IAM admins and auditors); change nothing.

    Shows "intact" with the number of events walked, or the first broken row and what is wrong
    with it (``governance.audit.audit_verify``). htmx gets the result in place; a plain post is
    redirected to the audit log with the result as a message.
    """
    _require_audit_reader(request.user)
    events = selectors.audit_event_list(user=request.user)
    head_id = events.values_list("id", flat=True).first()
    broken = audit_verify()
    result = {"intact": broken is None, "events": 0, "broken": broken, "event": None}
    if broken is None:
        result["events"] = events.filter(id__lte=head_id).count() if head_id is not None else 0
    else:
        result["event"] = events.filter(pk=broken.event_id).first()
    if wants_partial(request):
        return render(request, "governance/audit_list.html#verify-result", {"verify": result})
    if broken is None:
        messages.success(request, f"Audit chain intact: {result['events']} events.")
    else:
        messages.error(request, f"Audit chain broken at event {broken.event_id}: {broken.problem}.")
    return redirect("audit-list")


# --- policy settings -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def policy_settings(request: HttpRequest) -> HttpResponse:
    """The governance policy on one page: the longest grant per risk tier, approvals required, chain
    depth, stale requests, expiry reminders, and the credential settings.

    IAM admins change it (through ``services.policy_update``, audited as ``policy.update`` with the
    values before and after; bad values are shown under their fields and change nothing); auditors
    read it; anyone else → 403. POST/redirect/GET.
    """
    user = request.user
    if not can_read_all(user):
        raise PermissionDenied("Only IAM admins (who set it) and auditors (who read it) see the policy settings.")
    editable = is_iam_admin(user)
    if request.method == "POST" and not editable:
        raise PermissionDenied("Only IAM admins may change the policy.")
    policy = Policy.current()
    form = PolicyForm(request.POST if request.method == "POST" else None, policy=policy, disabled=not editable)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            changes = form.changes()
            if not changes:
                messages.info(request, "Nothing was changed: the values are the same as before.")
                return redirect("policy-settings")
            try:
                services.policy_update(actor=Actor.person(user), **changes)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                names = ", ".join(form.label_of(k).lower() for k in changes)
                messages.success(request, f"Policy saved: {names}.")
                return redirect("policy-settings")
        status = 400
    context = {"section": "policy", "form": form, "editable": editable, "policy": policy}
    return render(request, "governance/policy.html", context, status=status)
