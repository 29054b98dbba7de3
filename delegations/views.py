"""Delegation pages: the approval queue, requesting a grant, a grant's page, the grant lists and an
agent's grants.

Views only parse, authorise and call: reads through ``delegations.selectors`` and the shared
``GrantFilterSet``; who may do what is asked of ``delegations.permissions``; every write is one
call of a ``delegations.services`` function (which checks everything again, under a row lock).
Refusals map to HTTP as everywhere in Warrant: ``ValidationError`` → 400 (field messages under
their fields), ``PermissionDenied`` → 403, ``Conflict`` → 409, a grant or agent the viewer may
not see → 404. htmx gets the part of the page it swaps (a queue row, the grant's body, the list's
results); a plain form post is redirected (POST/redirect/GET) or shown the page with the errors.

Who sees the approval queue: IAM admins, who decide, and auditors, who read it without acting;
anyone else is refused (403) — their own requests are under "My grants".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance.audit import Actor
from governance.errors import Conflict
from governance.models import Policy
from governance.roles import can_read_all, is_agent_owner, is_iam_admin
from inventory import selectors as inventory_selectors
from inventory.models import Agent, DataClass
from inventory.views import list_page, list_response, refusal, sort_columns, wants_partial, without_empty

from . import selectors, services
from .filters import GrantFilterSet
from .forms import ApproveForm, BulkApproveForm, GrantRequestForm, ReasonForm, RenewForm, local_time_problem
from .models import Approval, DelegationGrant
from .permissions import (
    can_cancel_grant,
    can_renew_grant,
    can_request_grant,
    can_revoke_grant,
    can_view_grant,
    decision_refusal,
    grant_actions,
)

#: Grants shown in an agent page's section (the rest are one link away, in the filtered list).
AGENT_GRANT_ROWS = 20
#: Default length offered by the request form: this, or the tier's cap if shorter.
DEFAULT_REQUEST_LENGTH = timedelta(hours=24)
QUEUE_TEMPLATE = "delegations/approval_queue.html"
DETAIL_TEMPLATE = "delegations/grant_detail.html"
LIST_TEMPLATE = "delegations/grant_list.html"
PENDING = DelegationGrant.Status.PENDING
#: States as of now of a grant inside its window (its list row shows the time left).
LIVE_WINDOW_STATES = ("active", "blocked")
#: States of a grant that will authorise once approved or started (its list row shows its length).
FUTURE_STATES = ("pending", "scheduled")
QUEUE_REFUSED = (
    "Only IAM admins (who decide) and auditors (who read) see the approval queue; your own requests are "
    "under My grants."
)


# --- helpers -------------------------------------------------------------------------------


def _grant_or_404(user, pk: int, now: datetime) -> DelegationGrant:
    try:
        return selectors.grant_get(user=user, pk=pk, now=now)
    except DelegationGrant.DoesNotExist:
        raise Http404("No grant with this number that you may see.") from None


def _agent_or_404(user, slug: str) -> Agent:
    try:
        return inventory_selectors.agent_get(user=user, slug=slug)
    except Agent.DoesNotExist:
        raise Http404("No agent with this name that you may see.") from None


def _decorate(grants, user, policy: Policy) -> None:
    """Set on each grant (from ``selectors.grant_list``: scopes and approvals prefetched) what its row or
    page shows, without a query: ``approved`` (approvals so far), ``cap`` (the policy's longest grant for
    its agent's tier) and ``over_cap``, ``may_decide`` and, for an IAM admin who may not, ``refusal``
    (``permissions.decision_refusal``'s reason)."""
    admin = is_iam_admin(user)
    for g in grants:
        approvals = list(g.approvals.all())
        g.approved = sum(1 for a in approvals if a.decision == Approval.Decision.APPROVE)
        g.cap = services.grant_cap(g.agent, policy)
        g.over_cap = g.duration > g.cap
        refused = decision_refusal(user, g, approvals) if g.status == PENDING else None
        g.may_decide = g.status == PENDING and refused is None
        g.refusal = str(refused) if refused is not None and admin and g.status == PENDING else ""


def _errors_of(exc: ValidationError, renames: dict[str, str] | None = None) -> dict[str, list[str]]:
    """A service's ``ValidationError`` as ``{field: [messages]}`` (``all`` for messages of no field: templates
    cannot read a key that starts with an underscore)."""
    if not hasattr(exc, "error_dict"):
        return {"all": list(exc.messages)}
    out: dict[str, list[str]] = {}
    for field, msgs in exc.message_dict.items():
        field = "all" if field == NON_FIELD_ERRORS else (renames or {}).get(field, field)
        out.setdefault(field, []).extend(msgs)
    return out


def _apply_errors(form, errors: dict[str, list[str]]) -> None:
    """Attach ``_errors_of``'s messages to ``form``: under their field, or form-wide."""
    for field, msgs in errors.items():
        form.add_error(field if field in form.fields else None, msgs)


def _local_times(params: QueryDict, keys: tuple[str, ...]) -> tuple[QueryDict, list[str]]:
    """``params`` with the local times typed in ``keys`` (``2026-11-15T07:00``, from a date picker) given
    the viewer's UTC offset, for the shared FilterSet (which takes ISO 8601 with an offset only).

    A local time skipped or repeated by a daylight-saving change is an error naming the parameter,
    never a guess. Anything else is passed on for the FilterSet to accept or refuse.
    """
    data, errors = params.copy(), []
    zone = timezone.get_current_timezone()
    for key in keys:
        raw = data.get(key, "")
        try:
            parsed = parse_datetime(raw) if raw else None
        except ValueError:
            parsed = None
        if parsed is None or timezone.is_aware(parsed):
            continue
        problem = local_time_problem(parsed, zone)
        if problem:
            what = "does not exist" if problem == "missing" else "happens twice"
            errors.append(f"{key}: {raw} {what} in {zone} (a daylight-saving change); pick another time.")
            data.pop(key)
        else:
            data[key] = timezone.make_aware(parsed, zone).isoformat()
    return data, errors


def _approved_notice(grant: DelegationGrant) -> str:
    """What an approval of ``grant`` led to, worded by its state as of now (``with_state_at``): active,
    approved but not started (with its start in the viewer's timezone), blocked, or still waiting."""
    if grant.status == DelegationGrant.Status.ACTIVE:
        now = timezone.now()
        state = DelegationGrant.objects.filter(pk=grant.pk).with_state_at(now).values_list("state", flat=True).get()
        if state == "scheduled":
            starts = timezone.localtime(grant.starts_at).strftime("%Y-%m-%d %H:%M %Z")
            return (
                f"Approved: grant #{grant.pk} starts at {starts} (approved, not started); "
                "it does not authorise before then."
            )
        if state == "blocked":
            return f"Approved: grant #{grant.pk} is blocked: its agent or a grant up its chain is not active."
        if state == "expired":
            return f"Approved: grant #{grant.pk} has already expired."
        return f"Approved: grant #{grant.pk} is active."
    approved = grant.approvals.filter(decision=Approval.Decision.APPROVE).count()
    return (
        f"Approved ({approved} of {grant.approvals_required} approvals): grant #{grant.pk} waits for another approver."
    )


# --- the approval queue --------------------------------------------------------------------


def _require_queue_reader(user) -> None:
    if not can_read_all(user):
        raise PermissionDenied(QUEUE_REFUSED)


def _queue_context(request: HttpRequest, params: QueryDict, *, outcomes=None, bulk_error: str = "") -> dict:
    now = timezone.now()
    filterset = GrantFilterSet(params, queryset=selectors.approval_queue(user=request.user, now=now), request=request)
    listing = list_page(params, filterset)
    if listing["page"] is not None:
        _decorate(listing["page"].object_list, request.user, Policy.current())
    return {
        "section": "approvals",
        **listing,
        "now": now,
        "may_decide": is_iam_admin(request.user),
        "bulk_outcomes": outcomes or [],
        "bulk_error": bulk_error,
    }


@login_required
@require_GET
def approval_queue(request: HttpRequest) -> HttpResponse:
    """Pending requests, oldest first: agent, risk tier, owner, requester, scopes, requested length against
    the tier's cap, chain, justification, approvals so far of those required; approve (optionally
    shorter) or deny with a reason, one row at a time or several approved at once.

    IAM admins decide; auditors read (no actions); anyone else → 403. Filters of ``GrantFilterSet``
    (``agent``, ``tool``, ``requested_by``); paginated; a constant number of queries.
    """
    _require_queue_reader(request.user)
    params = without_empty(request.GET)
    context = _queue_context(request, params)
    return list_response(request, QUEUE_TEMPLATE, context, status=400 if context["errors"] else 200)


def _queue_row(
    request: HttpRequest, pk: int, *, status: int = 200, error: str = "", notice: str = "", submitted=None
) -> HttpResponse:
    """One row of the queue, re-rendered after an action: the grant as it is now, with the outcome (and,
    out of band, the navigation's count of waiting requests)."""
    now = timezone.now()
    grant = _grant_or_404(request.user, pk, now)
    _decorate([grant], request.user, Policy.current())
    context = {
        "grant": grant,
        "now": now,
        "may_decide": is_iam_admin(request.user),
        "row_error": error,
        "row_notice": notice,
        "submitted": submitted or {},
    }
    return render(request, f"{QUEUE_TEMPLATE}#grant-row-swap", context, status=status)


@login_required
@require_POST
def approval_bulk_approve(request: HttpRequest) -> HttpResponse:
    """Approve several requests at once (IAM admins), each through ``services.grant_approve`` in its own
    transaction — the same separation of duties as one at a time: a request the viewer made, whose
    agent they own or back up, or that they already decided is refused, and the others still go
    through. Shows one outcome per request: in place for htmx, as messages after a redirect otherwise.
    """
    if not is_iam_admin(request.user):
        raise PermissionDenied("Only IAM admins approve grant requests.")
    form = BulkApproveForm(request.POST)
    partial = wants_partial(request)
    if not form.is_valid():
        message = " ".join(form.non_field_errors()) or " ".join(m for msgs in form.errors.values() for m in msgs)
        if partial:
            context = _queue_context(request, QueryDict(), bulk_error=message)
            return render(request, f"{QUEUE_TEMPLATE}#results-swap", context, status=400)
        return render(request, "400.html", {"exception": message}, status=400)
    actor = Actor.person(request.user)
    now = timezone.now()
    visible = {g.pk: g for g in selectors.grant_list(user=request.user, now=now).filter(pk__in=form.grant_ids)}
    outcomes = []
    for pk in form.grant_ids:
        grant = visible.get(pk)
        outcome = {"pk": pk, "grant": grant, "ok": False}
        if grant is None:
            outcome["message"] = "No grant with this number that you may see."
        else:
            try:
                approved = services.grant_approve(actor=actor, grant=grant, comment=form.cleaned_data["comment"])
            except ValidationError as exc:
                outcome["message"] = " ".join(exc.messages)
            except (PermissionDenied, Conflict) as exc:
                outcome["message"] = str(exc)
            else:
                outcome.update(ok=True, message=_approved_notice(approved))
        outcomes.append(outcome)
    if partial:
        context = _queue_context(request, QueryDict(), outcomes=outcomes)
        response = render(request, f"{QUEUE_TEMPLATE}#results-swap", context)
        patch_vary_headers(response, ("HX-Request",))
        return response
    for o in outcomes:
        (messages.success if o["ok"] else messages.error)(request, f"#{o['pk']}: {o['message']}")
    return redirect("approval-queue")


# --- acting on one grant -------------------------------------------------------------------

#: Each action: its form and the fields a refused form shows again. Who may take it is asked of
#: ``delegations.permissions`` first (``_require_may``), so that a forged post is refused as such
#: whatever it holds; the service asks again under its row lock.
ACTIONS = {
    "approve": (ApproveForm, ("expires_at", "comment")),
    "deny": (ReasonForm, ("reason",)),
    "cancel": (ReasonForm, ("reason",)),
    "revoke": (ReasonForm, ("reason",)),
    "renew": (RenewForm, ("length", "unit", "expires_at", "justification")),
}


def _require_may(user, grant: DelegationGrant, action: str) -> None:
    """Raise the refusal (``PermissionDenied`` or ``Conflict``) if ``user`` may not take ``action`` on ``grant``."""
    if action in ("approve", "deny"):
        refused = decision_refusal(user, grant)
        if refused is not None:
            raise refused
    elif action == "cancel" and not can_cancel_grant(user, grant):
        raise PermissionDenied("Only the requester, the agent's owner and IAM admins may cancel a request.")
    elif action == "revoke" and not can_revoke_grant(user, grant):
        raise PermissionDenied("Only the agent's owner, the requester and IAM admins may revoke a grant.")
    elif action == "renew" and not can_renew_grant(user, grant):
        raise PermissionDenied("You may renew grants only for agents you own or back up.")


def _perform(action: str, actor: Actor, grant: DelegationGrant, data: dict, form) -> tuple[str, DelegationGrant | None]:
    """Call the action's service; return the notice to show and, for a renewal, the new request."""
    if action == "approve":
        approved = services.grant_approve(
            actor=actor, grant=grant, comment=data.get("comment", ""), expires_at=data.get("expires_at")
        )
        return _approved_notice(approved), None
    if action == "deny":
        services.grant_deny(actor=actor, grant=grant, reason=data.get("reason", ""))
        return f"Denied: grant #{grant.pk}. The requester is told who decided and why.", None
    if action == "cancel":
        services.grant_cancel(actor=actor, grant=grant, reason=data.get("reason", ""))
        return f"Request #{grant.pk} cancelled.", None
    if action == "revoke":
        ended = services.grant_revoke(actor=actor, grant=grant, reason=data.get("reason", ""))
        more = len(ended) - 1
        below = f" With it, {more} grant{'s' if more != 1 else ''} down its chain ended." if more else ""
        return f"Grant #{grant.pk} revoked.{below}", None
    renewal = services.grant_renew(
        actor=actor,
        grant=grant,
        duration=form.duration(),
        expires_at=data.get("expires_at"),
        justification=data.get("justification", ""),
    )
    return f"Renewal requested as grant #{renewal.pk}; it needs approval like any request.", renewal


#: Where a service's field errors go on an action's form.
RENAMES = {"renew": {"duration": "length"}}


@login_required
@require_POST
def grant_act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Approve (optionally shortening the expiry; with a comment), deny (reason required), cancel,
    revoke (reason required; cascades down the chain) or renew (a length or an expiry) one grant.

    ``from=queue`` marks a post from the approval queue: htmx then gets that row back, re-rendered
    with the outcome; otherwise htmx gets the grant page's body. Without htmx: redirected to the
    queue or the grant's page (a renewal: the new request's page) with a message; a refused form
    shows the grant's page again with its field errors (400); 403 / 409 show the refusal page.
    Nothing is written on a refusal.
    """
    if action not in ACTIONS:
        raise Http404("No such action on a grant.")
    now = timezone.now()
    grant = _grant_or_404(request.user, pk, now)
    form_class, fields = ACTIONS[action]
    origin = "queue" if request.POST.get("from") == "queue" else "detail"
    status, errors, refused, notice, renewal = 200, {}, None, "", None
    try:
        _require_may(request.user, grant, action)
        form = form_class(request.POST)
        if form.is_valid():
            notice, renewal = _perform(action, Actor.person(request.user), grant, form.cleaned_data, form)
        else:
            status, errors = 400, {("all" if k == NON_FIELD_ERRORS else k): list(v) for k, v in form.errors.items()}
    except ValidationError as exc:
        status, errors = 400, _errors_of(exc, RENAMES.get(action))
    except (PermissionDenied, Conflict) as exc:
        status, refused = (403 if isinstance(exc, PermissionDenied) else 409), exc
    submitted = None
    if status == 400:
        submitted = {"action": action, "values": {k: request.POST.get(k, "") for k in fields}, "errors": errors}
    if wants_partial(request):
        if origin == "queue":
            response = _queue_row(
                request, pk, status=status, error=str(refused or ""), notice=notice, submitted=submitted
            )
        else:
            context = _detail_context(request, pk, submitted=submitted, refused=str(refused or ""), notice=notice)
            response = render(request, f"{DETAIL_TEMPLATE}#grant-body-swap", context, status=status)
        patch_vary_headers(response, ("HX-Request",))
        return response
    if status == 200:
        messages.success(request, notice)
        if renewal is not None:
            return redirect("grant-detail", pk=renewal.pk)
        if origin == "queue":
            return redirect("approval-queue")
        return redirect("grant-detail", pk=pk)
    if status == 400:
        return render(request, DETAIL_TEMPLATE, _detail_context(request, pk, submitted=submitted), status=400)
    return refusal(request, refused, status)


# --- a grant's page ------------------------------------------------------------------------


def _detail_context(
    request: HttpRequest, pk: int, *, submitted: dict | None = None, refused: str = "", notice: str = ""
) -> dict:
    """Everything the grant's page shows: its state as of now, scopes, chain (root first) and the
    children the viewer may see, renewals, approvals, its audit history, and the actions the viewer
    may take (``submitted`` re-opens a refused form with what was typed and its field errors)."""
    user = request.user
    now = timezone.now()
    grant = _grant_or_404(user, pk, now)
    _decorate([grant], user, Policy.current())
    chain = selectors.grant_chain(grant)
    for node in chain:
        node.viewable = can_view_grant(user, node)
    visible = selectors.grant_list(user=user, now=now)
    Status = DelegationGrant.Status
    allowed = grant_actions(user, grant, now=now, approvals=list(grant.approvals.all()))
    actions = {
        "decide": grant.may_decide,
        "cancel": "cancel" in allowed,
        "revoke": "revoke" in allowed,
        "renew": "renew" in allowed,
    }
    renew_from = grant.expires_at if grant.status == Status.ACTIVE and grant.expires_at > now else now
    return {
        "section": "grants",
        "grant": grant,
        "now": now,
        "chain": chain,
        "children": list(visible.filter(parent=grant).order_by("requested_at", "id")),
        "renewals": list(visible.filter(renewal_of=grant).order_by("requested_at", "id")),
        "history": list(selectors.grant_history(grant)),
        "actions": actions,
        "any_action": any(actions.values()),
        "renew_from": renew_from,
        "may_hand_on": grant.state == "active" and (is_iam_admin(user) or is_agent_owner(user)),
        "submitted": submitted or {},
        "refused": refused,
        "notice": notice,
    }


@login_required
@require_GET
def grant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One grant: its state as of now, scopes, chain and children, approvals, history, and the actions
    the viewer may take (cancel a pending request; revoke an active grant; renew; approve or deny)."""
    return render(request, DETAIL_TEMPLATE, _detail_context(request, pk))


# --- requesting a grant --------------------------------------------------------------------


def _requestable_agents(user) -> list[Agent]:
    return [
        a
        for a in inventory_selectors.agent_list(user=user).filter(state=Agent.State.ACTIVE)
        if can_request_grant(user, a)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def grant_create(request: HttpRequest) -> HttpResponse:
    """Request a grant for the agent ``?agent=<slug>`` (its owner or backup owner; IAM admins).

    Without an agent: the agents the viewer may request for. The form offers the agent's tools ×
    the access levels each offers, each with an optional resource pattern; the expiry is typed in
    the viewer's timezone and the tier's cap is shown next to it (a longer request is refused by
    the service, not trimmed). On success: the new request's page.
    """
    user = request.user
    slug = request.GET.get("agent", "").strip()
    if not slug:
        if not (is_iam_admin(user) or is_agent_owner(user)):
            raise PermissionDenied("Only IAM admins and agents' owners request grants.")
        if request.method == "POST":
            return render(request, "400.html", {"exception": "Choose the agent the grant is for."}, status=400)
        parent = request.GET.get("parent", "")
        context = {
            "section": "grants",
            "agents": _requestable_agents(user),
            "parent": parent if parent.isdigit() else "",
        }
        return render(request, "delegations/grant_pick_agent.html", context)
    agent = _agent_or_404(user, slug)
    if not can_request_grant(user, agent):
        raise PermissionDenied("You may request grants only for agents you own or back up.")
    now = timezone.now()
    policy = Policy.current()
    cap = services.grant_cap(agent, policy)
    tools = list(inventory_selectors.tool_list(user=user).filter(agent=agent))
    parents = (
        selectors.grant_list(user=user, now=now)
        .in_state_at(["active"], now)
        .exclude(agent=agent)
        .order_by("expires_at", "id")
    )
    initial = {"expires_at": now + min(cap, DEFAULT_REQUEST_LENGTH)}
    if request.GET.get("parent", "").isdigit():
        initial["parent"] = int(request.GET["parent"])
    form = GrantRequestForm(request.POST or None, agent=agent, tools=tools, parents=parents, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                grant = services.grant_request(
                    actor=Actor.person(user),
                    agent=agent,
                    scopes=form.scope_requests(),
                    purpose=data["purpose"],
                    justification=data["justification"],
                    expires_at=data["expires_at"],
                    intents=form.intent_list(),
                    on_behalf_of=data["on_behalf_of"],
                    parent=data["parent"],
                )
            except ValidationError as exc:
                _apply_errors(form, _errors_of(exc))
            except (PermissionDenied, Conflict) as exc:
                return refusal(request, exc, 403 if isinstance(exc, PermissionDenied) else 409)
            else:
                n = grant.approvals_required
                messages.success(
                    request,
                    f"Grant #{grant.pk} requested for {agent.name}; it needs {n} approval{'s' if n != 1 else ''} "
                    "from IAM admins other than you.",
                )
                return redirect("grant-detail", pk=grant.pk)
        status = 400
    context = {
        "section": "grants",
        "agent": agent,
        "form": form,
        "grid": form.scope_grid(),
        "cap": cap,
        "cap_until": now + cap,
        "agent_active": agent.state == Agent.State.ACTIVE,
        "elevated_tier": agent.risk_tier in services.ELEVATED_TIERS,
        "elevated_classes": sorted(services.ELEVATED_DATA_CLASSES),
        "elevated_labels": [DataClass(c).label.lower() for c in sorted(services.ELEVATED_DATA_CLASSES)],
        "policy": policy,
    }
    return render(request, "delegations/grant_form.html", context, status=status)


# --- lists ---------------------------------------------------------------------------------

GRANT_COLUMNS = [("requested", "Requested"), ("expires", "Expires"), ("agent", "Agent")]
LIST_TIME_PARAMS = ("expires_before", "expires_after")
TRUE_VALUES = ("1", "true", "yes", "on")


@login_required
@require_GET
def grant_list(request: HttpRequest, mine: bool = False) -> HttpResponse:
    """Grants the viewer may see (``/grants/``), or "my grants" (``/grants/mine/`` or ``?mine=1``: those
    they requested and those of agents they own or back up), newest request first.

    Filters of ``GrantFilterSet``: ``status`` (the state as of now), ``agent``, ``tool``,
    ``expires_after`` / ``expires_before`` (a local time in the viewer's timezone, or ISO 8601 with an
    offset), ``requested_by``; ``ordering``; paginated. Unknown filters or values → 400 with the
    reason. A row shows the time left for a grant active or blocked now, the length of one pending or
    scheduled, and nothing more for one that has ended. A constant number of queries.
    """
    params = without_empty(request.GET)
    mine = mine or params.get("mine", "").lower() in TRUE_VALUES
    data, time_errors = _local_times(params, LIST_TIME_PARAMS)
    data.pop("mine", None)
    now = timezone.now()
    base = (selectors.grant_list_mine if mine else selectors.grant_list)(user=request.user, now=now)
    filterset = GrantFilterSet(data, queryset=base, request=request)
    listing = list_page(data, filterset)
    if time_errors:
        listing.update(page=None, errors=time_errors + listing["errors"])
    listing["params"] = params
    listing["canonical_query"] = params.urlencode()
    if listing["page"] is not None:
        _decorate(listing["page"].object_list, request.user, Policy.current())
        for g in listing["page"].object_list:
            # Time left only for a grant in its window; an ended one has none, a future one its length.
            g.time_left = g.expires_at - now if g.state in LIVE_WINDOW_STATES else None
    any_status = params.copy()
    for key in ("status", "page"):
        any_status.pop(key, None)
    context = {
        "section": "grants",
        **listing,
        "mine": mine,
        "now": now,
        "columns": {c["key"]: c for c in sort_columns(params, GRANT_COLUMNS)},
        "states": DelegationGrant.STATES,
        "future_states": FUTURE_STATES,
        "selected_status": params.getlist("status"),
        "any_status_query": any_status.urlencode(),
        "may_request": is_iam_admin(request.user) or is_agent_owner(request.user),
    }
    return list_response(request, LIST_TEMPLATE, context, status=400 if context["errors"] else 200)


@login_required
@require_GET
def agent_grants(request: HttpRequest, slug: str) -> HttpResponse:
    """An agent's grants, newest request first (the agent page loads this section; without JavaScript
    it is a page of its own). Only agents the viewer may see (404 otherwise)."""
    agent = _agent_or_404(request.user, slug)
    now = timezone.now()
    grants = selectors.grant_list(user=request.user, now=now).filter(agent=agent)
    rows = list(grants[:AGENT_GRANT_ROWS])
    _decorate(rows, request.user, Policy.current())
    context = {
        "section": "agents",
        "agent": agent,
        "grants": rows,
        "total": grants.count() if len(rows) == AGENT_GRANT_ROWS else len(rows),
        "now": now,
        "may_request": agent.state == Agent.State.ACTIVE and can_request_grant(request.user, agent),
    }
    template = "delegations/agent_grants.html"
    response = render(request, f"{template}#grants" if wants_partial(request) else template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response
