"""Runtime decision pages: test a decision, the decision log, an agent's recent decisions.

- **Test a decision** (``/decisions/test/``) asks ``delegations.decisions.decide`` — the function
  ``POST /api/v1/decisions`` answers with — about one agent, as of now, with the viewer as the one
  asking (``viewer=``): an agent they may not see reads ``identity_unknown``, never its real
  answer. Nothing is written: no decision-log entry, no finding, no audit event.
- **The decision log** (``/decisions/``) lists what the API kept (``DecisionLog``: every denial and a
  sample of allows), newest first, through ``DecisionLogFilterSet``.
- **Recent decisions** of an agent: a section the agent page loads (a page of its own without
  JavaScript), so that the agent page's own queries do not grow.

Who sees what: IAM admins and auditors every decision and every agent; an agent owner those of
the agents they own or back up; anyone else no logged decision, and the test page refuses them
(403). As everywhere in Warrant, htmx gets the part of the page it swaps and the same URL answers
a full page without it; times are shown in the viewer's timezone.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from governance.models import Policy
from governance.roles import can_read_all
from inventory import selectors as inventory_selectors
from inventory.models import Agent
from inventory.views import list_page, list_response, wants_partial, without_empty

from .decisions import REASONS, decide
from .filters import DecisionLogFilterSet
from .forms import DecisionTestForm
from .models import DecisionLog, DelegationGrant
from .permissions import may_test_decisions, visible_grants_q
from .selectors import decision_log_visible

#: Logged decisions an agent's section shows (the rest are in the log, filtered by the agent).
RECENT_DECISIONS = 10
#: Allows shown beside them: a burst of sampled allows never pushes the denials off the agent page.
RECENT_ALLOWS = 5
TEST_TEMPLATE = "delegations/decision_test.html"
LIST_TEMPLATE = "delegations/decision_list.html"
AGENT_TEMPLATE = "delegations/decision_agent.html"
TEST_REFUSED = (
    "Only IAM admins, auditors and agent owners test decisions (an owner for the agents they own or back up)."
)


def _explain(entries) -> None:
    """Set ``reason_items`` (``{"code", "message"}`` per reason code) on each entry, without a query."""
    for entry in entries:
        entry.reason_items = [{"code": code, "message": REASONS.get(code, code)} for code in entry.reasons or []]


def _testable_agents(user) -> QuerySet[Agent]:
    """The agents ``user`` may see, active ones first, then by name."""
    first = Case(When(state=Agent.State.ACTIVE, then=Value(0)), default=Value(1), output_field=IntegerField())
    return (
        inventory_selectors.agent_list(user=user)
        .select_related(None)
        .annotate(inactive=first)
        .order_by("inactive", "name", "id")
    )


def _tool_names(user, slug: str) -> list[str]:
    """The tool names of the agent ``slug`` if ``user`` may see it (none otherwise), for the form's datalist."""
    if not slug:
        return []
    tools = inventory_selectors.tool_list(user=user).filter(agent__slug=slug).order_by("name")
    return list(tools.values_list("name", flat=True))


def _result(user, decision) -> dict:
    """What the page shows of ``decision``: the grant chain, each id marked ``viewable`` when ``user``
    may open that grant's page (one query, only when there is a chain)."""
    chain = list(decision.grant_chain)
    viewable = set()
    if chain:
        viewable = set(
            DelegationGrant.objects.filter(visible_grants_q(user), pk__in=chain).values_list("pk", flat=True)
        )
    return {"chain": [{"pk": pk, "viewable": pk in viewable} for pk in chain]}


@login_required
@require_http_methods(["GET", "POST"])
def decision_test(request: HttpRequest) -> HttpResponse:
    """Test a decision: agent, tool, access, resource, intent, on behalf of, grant chain → allow or deny
    with each reason code and its message, the grant used (with its chain) and when its authority ends.

    ``?agent=<slug>`` alone prefills the agent (and offers its tools); any other field in the query
    (or a POST) asks the question, so that a result can be linked. Decided by ``decide(…,
    viewer=request.user)`` as of now — the API's function — and never logged. Bad input → 400 with
    the form's errors and nothing decided. htmx gets the form with its result (``#tester``), or the
    tool list of the agent chosen (``#tool-options``). IAM admins, auditors and agent owners; anyone
    else → 403.
    """
    user = request.user
    if not may_test_decisions(user):
        raise PermissionDenied(TEST_REFUSED)
    asked = request.method == "POST" or any(key != "agent" for key in request.GET)
    data = request.POST if request.method == "POST" else request.GET
    form = DecisionTestForm(
        data if asked else None, agents=_testable_agents(user), initial={"agent": request.GET.get("agent", "")}
    )
    form.fields["agent"].widget.attrs.update(
        {
            "hx-get": request.path,
            "hx-trigger": "change",
            "hx-target": "#tool-options",
            "hx-swap": "outerHTML",
            "hx-push-url": "false",
        }
    )
    decision, status, result, link = None, 200, {}, ""
    if asked:
        if form.is_valid():
            decision = decide(form.decision_request(), now=timezone.now(), viewer=user)
            result = _result(user, decision)
            link = f"{request.path}?{urlencode(form.query())}"
        else:
            status = 400
    context = {
        "section": "decisions",
        "form": form,
        "tools": _tool_names(user, str(form["agent"].value() or "")),
        "decision": decision,
        "link": link,
        **result,
    }
    part = ""
    if wants_partial(request):
        part = "#tool-options" if request.htmx.target == "tool-options" else "#tester"
    response = render(request, TEST_TEMPLATE + part, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
def decision_list(request: HttpRequest) -> HttpResponse:
    """The decision log, newest first: time, agent, tool:access, resource, outcome, reason codes, grant,
    who asked (the integration token's name and its person).

    Filters of ``DecisionLogFilterSet`` (``agent``, ``outcome``, ``reason``, ``out_of_scope``,
    ``tool``); paginated. Unknown filters or values → 400 with the reason. IAM admins and auditors
    read every entry, agent owners those of their agents, anyone else none. A constant number of
    queries.
    """
    params = without_empty(request.GET)
    filterset = DecisionLogFilterSet(params, queryset=decision_log_visible(user=request.user), request=request)
    listing = list_page(params, filterset)
    if listing["page"] is not None:
        _explain(listing["page"].object_list)
    context = {
        "section": "decisions",
        **listing,
        "policy": Policy.current(),
        "outcomes": DecisionLog.Outcome.choices,
        "reason_codes": [(code, code) for code in REASONS],
        "selected": {key: params.getlist(key) for key in ("outcome", "reason")},
        "sees_all": can_read_all(request.user),
        "may_test": may_test_decisions(request.user),
    }
    return list_response(request, LIST_TEMPLATE, context, status=400 if context["errors"] else 200)


@login_required
@require_GET
def agent_decisions(request: HttpRequest, slug: str) -> HttpResponse:
    """An agent's last ``RECENT_DECISIONS`` logged denials and last ``RECENT_ALLOWS`` logged allows,
    newest first (the agent page loads this section; without JavaScript it is a page of its own),
    with links to the log filtered by the agent and to the test form prefilled with it. Only agents
    the viewer may see (404 otherwise)."""
    try:
        agent = inventory_selectors.agent_get(user=request.user, slug=slug)
    except Agent.DoesNotExist:
        raise Http404("No agent with this name that you may see.") from None
    logged = decision_log_visible(user=request.user).filter(agent=agent)
    entries = list(logged.filter(outcome="deny")[:RECENT_DECISIONS]) + list(
        logged.filter(outcome="allow")[:RECENT_ALLOWS]
    )
    entries.sort(key=lambda e: (e.decided_at, e.pk), reverse=True)
    _explain(entries)
    context = {
        "section": "agents",
        "agent": agent,
        "entries": entries,
        "limit": RECENT_DECISIONS,
        "allows": RECENT_ALLOWS,
        "may_test": may_test_decisions(request.user),
    }
    response = render(request, f"{AGENT_TEMPLATE}#decisions" if wants_partial(request) else AGENT_TEMPLATE, context)
    patch_vary_headers(response, ("HX-Request",))
    return response
