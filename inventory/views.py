"""Inventory pages: the agent list, an agent's page, registering an agent, importing inventory.

Views only parse, authorise and call: reads go through ``inventory.selectors`` and the shared
``AgentFilterSet``; writes through ``inventory.services`` (and ``inventory.importers``).
Refusals map to HTTP as everywhere in Warrant: ``ValidationError`` → 400 (the form shows the
field messages), ``PermissionDenied`` → 403, ``Conflict`` → 409, an object the viewer may not
see → 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from governance.audit import Actor
from governance.errors import Conflict
from governance.findings import KINDS
from governance.models import Finding, Policy
from governance.roles import is_iam_admin
from governance.selectors import audit_events_for_agent, finding_list

from . import selectors, services
from .filters import AgentFilterSet
from .forms import (
    AgentRegisterForm,
    AgentUpdateForm,
    AssignOwnerForm,
    CredentialRecordForm,
    CredentialRevokeForm,
    CredentialRotateForm,
    ImportForm,
    ReasonForm,
    ToolAccessForm,
    ToolAddForm,
    WorkloadIdentityForm,
)
from .importers import run_import
from .models import Agent, Credential
from .permissions import allowed_transitions, can_change_agent, can_register_agent, can_transfer_ownership

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

# --- helpers shared by Warrant's pages ---------------------------------------------------------


def wants_partial(request: HttpRequest) -> bool:
    """True for an htmx request that swaps part of a page (not a history restore, which needs the page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def without_empty(params: QueryDict) -> QueryDict:
    """``params`` without blank values: an empty filter box means "any", not "the empty value"."""
    cleaned = QueryDict(mutable=True)
    for key, values in params.lists():
        kept = [v for v in values if v.strip() != ""]
        if kept:
            cleaned.setlist(key, kept)
    return cleaned


def filter_errors(filterset) -> list[str]:
    """The messages of an invalid FilterSet, each naming its parameter."""
    out = []
    for field, msgs in filterset.errors.items():
        prefix = "" if field == "__all__" else f"{field}: "
        out.extend(prefix + m for m in msgs)
    return out


def paginate(params: QueryDict, qs) -> tuple[Page | None, list[str]]:
    """One page of ``qs`` (``page``, ``page_size`` ≤ 100 from ``params``) and any parameter errors."""
    raw = params.get("page_size", "")
    size = PAGE_SIZE
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            return None, [f"page_size: give a whole number from 1 to {MAX_PAGE_SIZE}."]
        size = int(raw)
    raw_page = params.get("page", "1")
    if not raw_page.isdigit() or int(raw_page) < 1:
        return None, ["page: give a page number from 1."]
    return Paginator(qs, size).get_page(raw_page), []


def list_page(params: QueryDict, filterset) -> dict:
    """The part of a list page's context every list shares: one ``page`` of ``filterset``'s rows
    (``None`` when a filter or paging parameter is refused), the parameter ``errors``, the
    ``params`` as given and their ``canonical_query``."""
    errors = [] if filterset.is_valid() else filter_errors(filterset)
    page = None
    if not errors:
        page, errors = paginate(params, filterset.qs)
    return {"page": page, "errors": errors, "params": params, "canonical_query": params.urlencode()}


def sort_columns(params: QueryDict, columns: list[tuple[str, str]]) -> list[dict]:
    """Header links that sort by each column, toggling ascending/descending; the page resets."""
    current = params.get("ordering", "")
    out = []
    for key, label in columns:
        state = "asc" if current == key else "desc" if current == f"-{key}" else ""
        q = params.copy()
        q.pop("page", None)
        q["ordering"] = f"-{key}" if state == "asc" else key
        out.append({"key": key, "label": label, "state": state, "url": f"?{q.urlencode()}"})
    return out


def list_response(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    """Render a list page, or only its ``#results`` partial for htmx (with the page's URL pushed)."""
    partial = wants_partial(request)
    response = render(request, f"{template}#results" if partial else template, context, status=status)
    if partial:
        query = context.get("canonical_query", "")
        push_url(response, request.path + (f"?{query}" if query else ""))
    patch_vary_headers(response, ("HX-Request",))
    return response


def apply_service_errors(form, exc: ValidationError, renames: dict[str, str] | None = None) -> None:
    """Attach a service's field-keyed ``ValidationError`` to ``form`` (unknown keys as form-wide errors).

    ``renames`` maps a service's field name to the form field that carries it.
    """
    items = exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]
    for field, msgs in items:
        field = (renames or {}).get(field, field)
        form.add_error(field if field in form.fields else None, msgs)


def refusal(request: HttpRequest, exc: Exception, status: int) -> HttpResponse:
    """The error page for a refused action (403 or 409), saying what was refused and why."""
    return render(request, f"{status}.html", {"exception": str(exc)}, status=status)


def _agent_or_404(user, slug: str) -> Agent:
    try:
        return selectors.agent_get(user=user, slug=slug)
    except Agent.DoesNotExist:
        raise Http404("No agent with this name that you may see.") from None


# --- agent list ----------------------------------------------------------------------------

AGENT_COLUMNS = [
    ("name", "Agent"),
    ("state", "State"),
    ("risk_tier", "Risk tier"),
    ("environment", "Environment"),
    ("owner", "Owner"),
    ("team", "Team"),
]


@login_required
@require_GET
def agent_list(request: HttpRequest) -> HttpResponse:
    """Agents the viewer may see: search ``q``; filter by state, owner, team, risk tier, environment, kind;
    sort (``ordering``); paginate. Unknown filters or values → 400 with the reason."""
    params = without_empty(request.GET)
    filterset = AgentFilterSet(params, queryset=selectors.agent_list(user=request.user), request=request)
    context = {
        "section": "agents",
        **list_page(params, filterset),
        "columns": sort_columns(params, AGENT_COLUMNS),
        "states": Agent.State.choices,
        "tiers": Agent.RiskTier.choices,
        "environments": Agent.Environment.choices,
        "kinds": Agent.Kind.choices,
        "teams": selectors.team_list(user=request.user) if not wants_partial(request) else (),
        "selected": {key: params.getlist(key) for key in ("state", "risk_tier", "environment", "kind", "team")},
        "can_register": can_register_agent(request.user),
    }
    return list_response(request, "inventory/agent_list.html", context, status=400 if context["errors"] else 200)


# --- agent detail and its actions ---------------------------------------------------------

TRANSITIONS = {
    "activate": (services.agent_activate, "Activate", "The agent may act once activated."),
    "reactivate": (services.agent_reactivate, "Reactivate", "Return the suspended agent to active."),
    "suspend": (services.agent_suspend, "Suspend", "Blocks every decision for this agent at once."),
    "decommission": (
        services.agent_decommission,
        "Decommission",
        "Terminal. Every credential still active raises a finding.",
    ),
}


def _detail_context(
    request: HttpRequest,
    agent: Agent,
    *,
    transition_errors=None,
    owner_form=None,
    bound=None,
    refused: dict | None = None,
    notice: dict | None = None,
) -> dict:
    """Everything the agent page shows, in a constant number of queries.

    ``bound`` holds forms that failed, by key (``"agent"``, ``"credential"``, ``"identity"``,
    ``"tool"``, ``("rotate", pk)``, ``("revoke", pk)``, ``("tool", pk)``) so that they are shown
    again, open, with their errors. ``refused`` / ``notice`` are ``{"section": …, "message": …}``:
    a refusal (403/409) or a success message shown at the top of that section.
    """
    user = request.user
    bound = bound or {}
    actions = [
        {
            "name": name,
            "label": TRANSITIONS[name][1],
            "help": TRANSITIONS[name][2],
            "errors": (transition_errors or {}).get(name, []),
        }
        for name in allowed_transitions(user, agent)
    ]
    may_assign = agent.state != Agent.State.DECOMMISSIONED and can_transfer_ownership(user, agent)
    if may_assign and owner_form is None:
        owner_form = AssignOwnerForm(
            user=user,
            initial={
                "owner": agent.owner.username if agent.owner_id else None,
                "backup_owner": agent.backup_owner.username if agent.backup_owner_id else None,
            },
        )
    manage = _manage_rights(user, agent)
    findings = finding_list(user=user).filter(agent_id=agent.pk, status__in=Finding.UNRESOLVED)
    credentials = list(selectors.credential_list(user=user).filter(agent=agent))
    policy = Policy.current()
    now = timezone.now()
    default_rotated_at = timezone.localtime(now).replace(second=0, microsecond=0)
    for c in credentials:
        c.age_days = (now - c.rotated_or_created_at).days
        c.period_days = c.rotation_period_days or policy.rotation_period_days
        c.overdue = c.status == c.Status.ACTIVE and c.age_days > c.period_days
        live = c.status != Credential.Status.REVOKED
        c.rotate_form = None
        c.revoke_form = None
        if manage["rotate"] and live:
            c.rotate_form = bound.get(("rotate", c.pk)) or CredentialRotateForm(
                auto_id=f"rot{c.pk}_%s", initial={"rotated_at": default_rotated_at}
            )
        if manage["revoke"] and live:
            c.revoke_form = bound.get(("revoke", c.pk)) or CredentialRevokeForm(auto_id=f"rev{c.pk}_%s")
    tools = list(selectors.tool_list(user=user).filter(agent=agent))
    for t in tools:
        t.access_form = None
        if manage["change"]:
            t.access_form = bound.get(("tool", t.pk)) or ToolAccessForm(
                auto_id=f"tool{t.pk}_%s",
                initial={
                    "access_levels": t.access_levels,
                    "data_classes": t.data_classes,
                    "destination": t.destination,
                },
            )
    forms = {}
    if manage["change"]:
        forms = {
            "agent": bound.get("agent") or AgentUpdateForm(user=user, agent=agent),
            "credential": bound.get("credential") or CredentialRecordForm(),
            "identity": bound.get("identity") or WorkloadIdentityForm(),
            "tool": bound.get("tool") or ToolAddForm(),
        }
    return {
        "section": "agents",
        "agent": agent,
        "actions": actions,
        "owner_form": owner_form if may_assign else None,
        "manage": manage,
        "forms": forms,
        "refused": refused or {},
        "notice": notice or {},
        "identities": selectors.workload_identity_list(user=user).filter(agent=agent),
        "credentials": credentials,
        "tools": tools,
        "findings": findings,
        "finding_kinds": KINDS,
        "audit_events": audit_events_for_agent(agent=agent)[:50],
        "now": now,
    }


@login_required
@require_GET
def agent_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One agent: owner, state, tier, data classes, the lifecycle actions the viewer may take, its
    identities, credentials with their age, tools, unresolved findings and audit trail."""
    agent = _agent_or_404(request.user, slug)
    return render(request, "inventory/agent_detail.html", _detail_context(request, agent))


@login_required
@require_POST
def agent_transition(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    """Take a lifecycle action (activate, reactivate, suspend, decommission) with a reason."""
    if action not in TRANSITIONS:
        raise Http404("No such lifecycle action.")
    agent = _agent_or_404(request.user, slug)
    form = ReasonForm(request.POST)
    form.is_valid()
    service = TRANSITIONS[action][0]
    try:
        service(actor=Actor.person(request.user), agent=agent, reason=form.cleaned_data.get("reason", ""))
    except ValidationError as exc:
        errors = {
            action: [m for msgs in exc.message_dict.values() for m in msgs]
            if hasattr(exc, "error_dict")
            else exc.messages
        }
        agent = _agent_or_404(request.user, slug)
        return render(
            request,
            "inventory/agent_detail.html",
            _detail_context(request, agent, transition_errors=errors),
            status=400,
        )
    except Conflict as exc:
        return refusal(request, exc, 409)
    messages.success(request, f"{agent.name}: {TRANSITIONS[action][1].lower()} done.")
    return redirect("agent-detail", slug=agent.slug)


@login_required
@require_POST
def agent_assign_owner(request: HttpRequest, slug: str) -> HttpResponse:
    """Assign or transfer the agent's owner (IAM admins; an owner may transfer their own agent)."""
    agent = _agent_or_404(request.user, slug)
    if not can_transfer_ownership(request.user, agent):
        raise PermissionDenied(
            "Only IAM admins and the agent's owner may transfer it (its backup owner may once the owner has left)."
        )
    form = AssignOwnerForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            services.agent_assign_owner(
                actor=Actor.person(request.user),
                agent=agent,
                owner=form.cleaned_data["owner"],
                backup_owner=form.cleaned_data["backup_owner"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        except Conflict as exc:
            return refusal(request, exc, 409)
        else:
            messages.success(request, f"{agent.name} is now owned by {form.cleaned_data['owner'].username}.")
            if not selectors.agent_list(user=request.user).filter(pk=agent.pk).exists():
                return redirect("agent-list")
            return redirect("agent-detail", slug=agent.slug)
    agent = _agent_or_404(request.user, slug)
    return render(request, "inventory/agent_detail.html", _detail_context(request, agent, owner_form=form), status=400)


@login_required
@require_http_methods(["GET", "POST"])
def agent_create(request: HttpRequest) -> HttpResponse:
    """Register an agent (IAM admins and agent owners; an owner registers agents they own).

    IAM admins may give its risk tier; the form offers the field to them only.
    """
    if not can_register_agent(request.user):
        raise PermissionDenied("Only IAM admins and agent owners may register agents.")
    form = AgentRegisterForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            # Offered to IAM admins only; anyone else who sends one is refused by the service (403).
            tier = data["risk_tier"] if "risk_tier" in form.fields else request.POST.get("risk_tier", "")
            try:
                agent = services.agent_register(
                    actor=Actor.person(request.user),
                    name=data["name"],
                    slug=data["slug"],
                    purpose=data["purpose"],
                    kind=data["kind"],
                    platform=data["platform"],
                    environment=data["environment"],
                    owner=data.get("owner", request.user),
                    backup_owner=data["backup_owner"],
                    team=data["team"],
                    autonomy_level=data["autonomy_level"],
                    data_classes=data["data_classes"],
                    risk_tier=tier or Agent.RiskTier.UNASSESSED,
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"{agent.name} is registered and proposed; an IAM admin activates it.")
                return redirect("agent-detail", slug=agent.slug)
        status = 400
    return render(request, "inventory/agent_form.html", {"section": "agents", "form": form}, status=status)


# --- managing an agent: its description, credentials, workload identities and tools ---------

CHANGE_REFUSED = "You may change only agents you own or back up."


def _manage_rights(user, agent: Agent) -> dict[str, bool]:
    """Which management controls the agent page offers ``user``: only what the services allow.

    ``change`` (describe the agent; record credentials; bind identities; add, edit, remove tools)
    needs a live or proposed agent; on a decommissioned agent what remains is the remedy:
    ``revoke`` a credential still active and ``unbind`` an identity so another agent may use it.
    """
    allowed = can_change_agent(user, agent)
    live = allowed and agent.state != Agent.State.DECOMMISSIONED
    return {"any": allowed, "change": live, "rotate": live, "revoke": allowed, "unbind": allowed}


# Sections of the agent page an action answers with (a partial of ``agent_detail.html``).
SECTION_PARTIALS = {
    "profile": "profile-swap",  # the description, with the page head out of band
    "credentials": "credentials-swap",  # the credentials, with the findings out of band
    "identities": "identities",
    "tools": "tools",
}


def _manage(
    request: HttpRequest,
    slug: str,
    *,
    section: str,
    call,
    form=None,
    key=None,
    done: str,
    renames: dict[str, str] | None = None,
) -> HttpResponse:
    """Authorise, parse ``form``, run ``call(cleaned_data)`` (one service call) and answer.

    htmx gets the updated section (with the service's field errors, or its 403/409 message in
    place, and the matching status); a plain form post is redirected to the agent's page, or
    shown the page again with the errors (400), or the refusal page (403/409).
    """
    agent = _agent_or_404(request.user, slug)
    status, refused = 200, None
    try:
        if not can_change_agent(request.user, agent):
            raise PermissionDenied(CHANGE_REFUSED)
        if form is None or form.is_valid():
            outcome = call(agent, form.cleaned_data if form is not None else {})
            if outcome is not None:
                done = outcome
        else:
            status = 400
    except ValidationError as exc:
        status = 400
        if form is not None:
            apply_service_errors(form, exc, renames)
        else:
            status, refused = 400, " ".join(exc.messages)
    except (PermissionDenied, Conflict) as exc:
        status = 403 if isinstance(exc, PermissionDenied) else 409
        refused = str(exc)
    partial = wants_partial(request)
    if status == 200 and not partial:
        messages.success(request, done)
        return redirect(f"{reverse('agent-detail', args=[slug])}#{section}")
    if refused and not partial:
        return render(request, f"{status}.html", {"exception": refused}, status=status)
    agent = _agent_or_404(request.user, slug)
    context = _detail_context(
        request,
        agent,
        bound={key: form} if status == 400 and form is not None else None,
        refused={"section": section, "message": refused} if refused else None,
        notice={"section": section, "message": done} if status == 200 else None,
    )
    template = "inventory/agent_detail.html"
    response = render(
        request, f"{template}#{SECTION_PARTIALS[section]}" if partial else template, context, status=status
    )
    patch_vary_headers(response, ("HX-Request",))
    return response


def _manage_add(request: HttpRequest, slug: str, form, service, *, section: str, key: str, done: str) -> HttpResponse:
    """``_manage`` for a form whose cleaned data are exactly ``service``'s arguments:
    ``service(actor=<the viewer>, agent=<the agent>, **form.cleaned_data)``."""

    def call(agent, data):
        service(actor=Actor.person(request.user), agent=agent, **data)

    return _manage(request, slug, section=section, form=form, key=key, call=call, done=done)


def _item_or_404(queryset, pk: int, agent: Agent, what: str):
    try:
        return queryset.get(pk=pk, agent=agent)
    except queryset.model.DoesNotExist:
        raise Http404(f"No {what} with this number on this agent.") from None


@login_required
@require_POST
def agent_update(request: HttpRequest, slug: str) -> HttpResponse:
    """Change the agent's name, purpose, kind, platform, environment, team, autonomy or data classes."""
    agent = _agent_or_404(request.user, slug)
    form = AgentUpdateForm(request.POST, user=request.user, agent=agent)

    def call(agent, data):
        changes = form.changes()
        if not changes:
            return "Nothing was changed: the values are the same as before."
        services.agent_update(actor=Actor.person(request.user), agent=agent, **changes)
        return None

    return _manage(
        request, slug, section="profile", form=form, key="agent", call=call, done=f"{agent.name}: description updated."
    )


@login_required
@require_POST
def credential_record(request: HttpRequest, slug: str) -> HttpResponse:
    """Record a credential the agent holds (kind, provider, external id, optional fingerprint, dates)."""
    form = CredentialRecordForm(request.POST)
    return _manage_add(
        request,
        slug,
        form,
        services.credential_record,
        section="credentials",
        key="credential",
        done="Credential recorded.",
    )


@login_required
@require_POST
def credential_rotate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Record that a credential was rotated (default now); resolves its rotation and expiry findings."""
    form = CredentialRotateForm(request.POST, auto_id=f"rot{pk}_%s")

    def call(agent, data):
        credential = _item_or_404(selectors.credential_list(user=request.user), pk, agent, "credential")
        services.credential_rotate(
            actor=Actor.person(request.user),
            credential=credential,
            rotated_at=data["rotated_at"],
            fingerprint=data["fingerprint"],
            expires_at=data["expires_at"],
        )
        return f"{credential}: rotation recorded."

    return _manage(request, slug, section="credentials", form=form, key=("rotate", pk), call=call, done="")


@login_required
@require_POST
def credential_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Mark a credential revoked at its provider, with a reason; resolves every finding on it."""
    form = CredentialRevokeForm(request.POST, auto_id=f"rev{pk}_%s")

    def call(agent, data):
        credential = _item_or_404(selectors.credential_list(user=request.user), pk, agent, "credential")
        services.credential_revoke(actor=Actor.person(request.user), credential=credential, reason=data["reason"])
        return f"{credential}: revoked."

    return _manage(request, slug, section="credentials", form=form, key=("revoke", pk), call=call, done="")


@login_required
@require_POST
def workload_identity_add(request: HttpRequest, slug: str) -> HttpResponse:
    """Bind a workload identity (SPIFFE ID, OIDC issuer + subject, cloud identity) to the agent."""
    form = WorkloadIdentityForm(request.POST)
    return _manage_add(
        request,
        slug,
        form,
        services.workload_identity_add,
        section="identities",
        key="identity",
        done="Workload identity bound.",
    )


@login_required
@require_POST
def workload_identity_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Unbind a workload identity from the agent."""

    def call(agent, data):
        identity = _item_or_404(selectors.workload_identity_list(user=request.user), pk, agent, "workload identity")
        services.workload_identity_remove(actor=Actor.person(request.user), identity=identity)
        return f"{identity}: unbound."

    return _manage(request, slug, section="identities", call=call, done="")


@login_required
@require_POST
def tool_add(request: HttpRequest, slug: str) -> HttpResponse:
    """Add a tool the agent can call: name, transport, command or URL, access, data classes, destination."""
    form = ToolAddForm(request.POST)

    def call(agent, data):
        services.tool_add(
            actor=Actor.person(request.user),
            agent=agent,
            name=data["name"],
            transport=data["transport"],
            command=data["command"],
            args=data["args"],
            url=data["url"],
            access_levels=data["access_levels"],
            data_classes=data["data_classes"],
            destination=data["destination"],
            source="entered by hand",
        )
        return f"Tool {data['name']} added."

    return _manage(
        request, slug, section="tools", form=form, key="tool", call=call, done="", renames=ToolAddForm.SERVICE_FIELDS
    )


@login_required
@require_POST
def tool_update(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Change a tool's access levels, data classes and destination."""
    form = ToolAccessForm(request.POST, auto_id=f"tool{pk}_%s")

    def call(agent, data):
        tool = _item_or_404(selectors.tool_list(user=request.user), pk, agent, "tool")
        services.tool_update(actor=Actor.person(request.user), tool=tool, **data)
        return f"Tool {tool.name} updated."

    return _manage(request, slug, section="tools", form=form, key=("tool", pk), call=call, done="")


@login_required
@require_POST
def tool_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Remove a tool from the agent."""

    def call(agent, data):
        tool = _item_or_404(selectors.tool_list(user=request.user), pk, agent, "tool")
        services.tool_remove(actor=Actor.person(request.user), tool=tool)
        return f"Tool {tool.name} removed."

    return _manage(request, slug, section="tools", call=call, done="")


# --- imports and the stale-credential check -------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def import_create(request: HttpRequest) -> HttpResponse:
    """Upload an AWS credential report or an MCP configuration (IAM admins); show recent imports.

    A malformed file changes nothing; its ``ImportFailed`` message (naming line and column)
    is shown as the importer wrote it.
    """
    if not is_iam_admin(request.user):
        raise PermissionDenied("Only IAM admins may import inventory.")
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                run = run_import(
                    actor=Actor.person(request.user),
                    source=form.cleaned_data["source"],
                    content=upload.read(),
                    filename=upload.name,
                    agent=form.cleaned_data["agent"],
                    observed_at=form.cleaned_data["observed_at"],
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            except Conflict as exc:
                return refusal(request, exc, 409)
            else:
                messages.success(request, f"Imported {run.filename}.")
                return redirect(f"{reverse('import-create')}?run={run.pk}")
        status = 400
    runs = list(selectors.import_run_list(user=request.user)[:20])
    shown = None
    if request.GET.get("run", "").isdigit():
        shown = next((r for r in runs if r.pk == int(request.GET["run"])), None)
    return render(
        request,
        "inventory/import_form.html",
        {"section": "imports", "form": form, "runs": runs, "shown": shown},
        status=status,
    )


@login_required
@require_POST
def stale_check_run(request: HttpRequest) -> HttpResponse:
    """Run the stale-credential check now (IAM admins) and go to the open findings."""
    results = services.credentials_flag_stale_now(actor=Actor.person(request.user))
    opened = sum(r.get("opened", 0) for r in results.values())
    resolved = sum(r.get("resolved", 0) for r in results.values())
    messages.success(request, f"Stale-credential check done: {opened} finding(s) opened, {resolved} resolved.")
    return redirect("finding-list")
