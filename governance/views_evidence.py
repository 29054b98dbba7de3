"""Evidence pages for auditors and IAM admins: the exports page, the downloads, the framework view.

Views only parse, authorise and call: the exports are built by ``governance.evidence`` (the same
builders as the API's), filtered by the shared ``FindingFilterSet``, and each download is audited
by ``evidence.evidence_export_record`` before it streams. Everyone else is refused (403); a
refused or invalid request writes nothing.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance import evidence, frameworks
from governance.attestations import campaign_get, campaign_list
from governance.audit import Actor
from governance.findings import FINDING_KIND_CHOICES
from governance.models import Campaign, Finding
from inventory.views import without_empty

CAMPAIGNS_PER_PAGE = 25


def _format_or_404(fmt: str) -> str:
    if fmt not in evidence.FORMATS:
        raise Http404("Exports come as CSV or JSON.")
    return fmt


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{key}: {m}" if key != "filters" else m for key, msgs in exc.message_dict.items() for m in msgs]
    return exc.messages


def _send(request: HttpRequest, export: evidence.Export, fmt: str) -> HttpResponse:
    evidence.evidence_export_record(actor=Actor.person(request.user), export=export, fmt=fmt)
    return evidence.export_response(export, fmt)


@login_required
@require_GET
def evidence_index(request: HttpRequest) -> HttpResponse:
    """What an auditor can export: findings with their history (filtered), the risk assessments in
    force, and each campaign's attestations (``attestations.campaign_list``: newest first, paginated,
    with progress);
    a link to the framework view. A constant number of queries."""
    evidence.require_evidence_reader(request.user)
    page = Paginator(campaign_list(user=request.user), CAMPAIGNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "section": "evidence",
        "campaigns": page,
        "kinds": FINDING_KIND_CHOICES,
        "severities": Finding.Severity.choices,
        "statuses": Finding.Status.choices,
        "framework_ids": [item.id for item in frameworks.items_of(frameworks.NHI)],
    }
    return render(request, "governance/evidence.html", context)


@login_required
@require_GET
def evidence_findings_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Download findings with their history as CSV or JSON, filtered like the findings queue
    (``kind``, ``severity``, ``status``, ``agent``, ``framework``; every status unless given).
    An invalid filter is a 400 naming it, and nothing is exported or audited."""
    _format_or_404(fmt)
    evidence.require_evidence_reader(request.user)
    try:
        export = evidence.findings_export(user=request.user, params=without_empty(request.GET), now=timezone.now())
    except ValidationError as exc:
        return render(request, "400.html", {"exception": " ".join(_messages(exc))}, status=400)
    return _send(request, export, fmt)


@login_required
@require_GET
def evidence_assessments_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Download the risk assessments in force (each live agent's latest, while it is valid)."""
    _format_or_404(fmt)
    evidence.require_evidence_reader(request.user)
    return _send(request, evidence.assessments_in_force_export(user=request.user, now=timezone.now()), fmt)


@login_required
@require_GET
def evidence_campaign_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """Download one campaign's attestations (404 for an unknown campaign)."""
    _format_or_404(fmt)
    evidence.require_evidence_reader(request.user)
    try:
        campaign = campaign_get(user=request.user, pk=pk)
    except Campaign.DoesNotExist:
        raise Http404("No campaign with this number.") from None
    export = evidence.campaign_attestations_export(user=request.user, campaign=campaign, now=timezone.now())
    return _send(request, export, fmt)


@login_required
@require_GET
def framework_list(request: HttpRequest) -> HttpResponse:
    """The framework view: for each OWASP NHI Top 10 (2025) and Agentic Top 10 (2026) item, the
    controls that answer it and its open findings (by kind, linked to the findings queue). One query."""
    views = evidence.framework_view(user=request.user)
    context = {"section": "evidence", "frameworks": views, "controls": frameworks.CONTROLS}
    return render(request, "governance/framework_list.html", context)
