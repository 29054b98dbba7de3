"""Risk assessment pages: the questionnaire, an assessment's result, an agent's assessment history (the
agent page's "Risk assessment" section, loaded by htmx) and the list of assessments.

Views only parse, authorise and call: reads through ``governance.assessments`` (selectors and the shared
``AssessmentFilterSet``), the write through ``risk_assessment_record``. Refusals: an agent the viewer may
not see → 404; ``PermissionDenied`` → 403 and ``Conflict`` → 409, shown with the service's message (on the
questionnaire, above the answers given, so that nothing typed is lost); ``ValidationError`` → 400 with the
message under each factor.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from governance.assessments import (
    FACTORS,
    MAESTRO_LAYERS,
    MAX_SCORE,
    TIER_THRESHOLDS,
    TRIGGERS,
    AssessmentFilterSet,
    answers_suggested,
    assess_refusal,
    assessment_get,
    assessment_history,
    assessment_list,
    can_assess,
    risk_assessment_record,
    triggers_of,
)
from governance.audit import Actor
from governance.errors import Conflict
from governance.models import RiskAssessment, RiskTier
from inventory import selectors as inventory_selectors
from inventory.models import Agent
from inventory.views import apply_service_errors, list_page, list_response, refusal, wants_partial, without_empty

#: Assessments the agent page's section lists; the full history is the list page filtered by agent.
HISTORY_ROWS = 10


class AssessmentForm(forms.Form):
    """The questionnaire: one field per factor of ``FACTORS`` (radio buttons, or checkboxes for a
    factor with several answers) and notes. It only parses choices; whether every factor is answered
    is ``risk_assessment_record``'s to judge."""

    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=5000,
        help_text="What the answers rest on: design documents, reviews, exceptions agreed.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fields = {}
        for factor in FACTORS.values():
            choices = [(str(a.value), a.label) for a in factor.answers]
            if factor.multiple:
                fields[factor.code] = forms.MultipleChoiceField(
                    choices=choices, required=False, widget=forms.CheckboxSelectMultiple, label=factor.title
                )
            else:
                fields[factor.code] = forms.ChoiceField(
                    choices=choices, required=False, widget=forms.RadioSelect, label=factor.title
                )
        self.fields = {**fields, **self.fields}

    def answers(self) -> dict:
        """The answers as the service takes them: factor code → value (a list for a multiple factor)."""
        return {code: self.cleaned_data.get(code) for code in FACTORS}

    def factor_rows(self) -> list[dict]:
        """Per factor: the factor, its bound field and its choices paired with their answers (points, help)."""
        rows = []
        for factor in FACTORS.values():
            field = self[factor.code]
            rows.append({"factor": factor, "field": field, "choices": list(zip(field, factor.answers, strict=True))})
        return rows


def _agent_or_404(user, slug: str) -> Agent:
    try:
        return inventory_selectors.agent_get(user=user, slug=slug)
    except Agent.DoesNotExist:
        raise Http404("No agent with this name that you may see.") from None


def _assessment_or_404(user, pk: int) -> RiskAssessment:
    try:
        return assessment_get(user=user, pk=pk)
    except RiskAssessment.DoesNotExist:
        raise Http404("No risk assessment with this number that you may see.") from None


def _rules_context() -> dict:
    """How answers become a tier, for the questionnaire and the result pages."""
    bounds, upper = [], MAX_SCORE
    for tier, lowest in TIER_THRESHOLDS:
        bounds.append({"tier": tier, "label": RiskTier(tier).label, "low": lowest, "high": upper})
        upper = lowest - 1
    return {"tiers": list(reversed(bounds)), "triggers": TRIGGERS, "max_score": MAX_SCORE, "maestro": MAESTRO_LAYERS}


# --- the agent's history (the agent page's section) -----------------------------------------------


@login_required
@require_GET
def agent_assessments(request: HttpRequest, slug: str) -> HttpResponse:
    """An agent's risk assessments, newest first: the one in force (score, tier, valid until) and the
    history, with a link to assess it for those who may. htmx (the agent page's section) gets the
    section alone; otherwise the page. A constant number of queries."""
    agent = _agent_or_404(request.user, slug)
    now = timezone.now()
    history = list(assessment_history(user=request.user, agent=agent)[: HISTORY_ROWS + 1])
    latest = history[0] if history else None
    context = {
        "section": "agents",
        "agent": agent,
        "history": history[:HISTORY_ROWS],
        "more": len(history) > HISTORY_ROWS,
        "latest": latest,
        "due": agent.is_live and (latest is None or latest.valid_until <= now),
        "can_assess": can_assess(request.user, agent),
        "now": now,
    }
    partial = wants_partial(request)
    template = "governance/assessment_history.html"
    response = render(request, f"{template}#history" if partial else template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- the questionnaire --------------------------------------------------------------------------


def _form_page(request: HttpRequest, agent: Agent, form: AssessmentForm, *, status: int = 200, refused: str = ""):
    context = {
        "section": "agents",
        "agent": agent,
        "form": form,
        "rows": form.factor_rows(),
        "refused": refused,
        **_rules_context(),
    }
    return render(request, "governance/assessment_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def assessment_create(request: HttpRequest, slug: str) -> HttpResponse:
    """The questionnaire for an agent (IAM admins; its owner or backup owner), prefilled from its last
    assessment and what the inventory knows (``answers_suggested``); POST records the assessment and
    shows its result. An owner whose answers would lower the tier is refused (403) on the form, the
    answers kept; a decommissioned agent is 409."""
    agent = _agent_or_404(request.user, slug)
    refused = assess_refusal(request.user, agent)
    if isinstance(refused, PermissionDenied):
        raise refused
    if refused is not None:
        return refusal(request, refused, 409)
    if request.method == "GET":
        return _form_page(request, agent, AssessmentForm(initial=answers_suggested(agent)))
    form = AssessmentForm(request.POST)
    if not form.is_valid():
        return _form_page(request, agent, form, status=400)
    try:
        assessment = risk_assessment_record(
            actor=Actor.person(request.user), agent=agent, answers=form.answers(), notes=form.cleaned_data["notes"]
        )
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return _form_page(request, agent, form, status=400)
    except (PermissionDenied, Conflict) as exc:
        status = 403 if isinstance(exc, PermissionDenied) else 409
        return _form_page(request, agent, form, status=status, refused=str(exc))
    messages.success(
        request, f"{agent.name} assessed: score {assessment.score} of {MAX_SCORE}, {assessment.tier} risk."
    )
    return redirect("assessment-detail", pk=assessment.pk)


# --- one assessment -----------------------------------------------------------------------------


def factor_breakdown(assessment: RiskAssessment) -> list[dict]:
    """Per factor of the questionnaire: the factor, the answers given (labels), the points scored and
    the most it can score. A factor missing from the assessment shows no answer and no points."""
    rows = []
    for factor in FACTORS.values():
        given = assessment.answers.get(factor.code)
        values = given if isinstance(given, list) else ([given] if given is not None else [])
        labels = [factor.answer(v).label if factor.answer(v) else str(v) for v in values]
        rows.append(
            {
                "factor": factor,
                "answers": labels,
                "points": assessment.factor_scores.get(factor.code),
                "max_points": factor.max_points,
            }
        )
    return rows


@login_required
@require_GET
def assessment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One assessment's result: score, tier, the points per factor with the answers and framework
    references, the critical combinations that held, who assessed when, until when it holds, and
    whether it is the one in force. Anyone who may see the agent."""
    assessment = _assessment_or_404(request.user, pk)
    now = timezone.now()
    latest_id = (
        RiskAssessment.objects.filter(agent_id=assessment.agent_id)
        .order_by("-assessed_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    is_latest = latest_id == assessment.pk
    context = {
        "section": "agents",
        "assessment": assessment,
        "agent": assessment.agent,
        "rows": factor_breakdown(assessment),
        "fired": triggers_of(assessment.answers),
        "is_latest": is_latest,
        "in_force": is_latest and assessment.agent.is_live and assessment.valid_until > now,
        "can_assess": can_assess(request.user, assessment.agent),
        "now": now,
        **_rules_context(),
    }
    return render(request, "governance/assessment_detail.html", context)


# --- all assessments ----------------------------------------------------------------------------


@login_required
@require_GET
def assessment_list_view(request: HttpRequest) -> HttpResponse:
    """Risk assessments the viewer may see, newest first: filter by ``agent`` (slug) and ``tier``
    (repeatable), sort (``ordering``), paginate. Unknown filters or values → 400 with the reason."""
    params = without_empty(request.GET)
    filterset = AssessmentFilterSet(params, queryset=assessment_list(user=request.user), request=request)
    context = {
        "section": "agents",
        **list_page(params, filterset),
        "tiers": RiskTier.choices,
        "selected": {"tier": params.getlist("tier"), "agent": params.get("agent", "")},
    }
    status = 400 if context["errors"] else 200
    return list_response(request, "governance/assessment_list.html", context, status=status)
