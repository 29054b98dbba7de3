"""Evidence for auditors: exports of a campaign's attestations, the risk assessments in force and
the findings with their history, as CSV or JSON; and the framework view's data.

Who: IAM admins and auditors only (``can_export_evidence``); an integration token also needs
the ``audit:read`` scope (checked by the API and again when the export is recorded). Every export is itself audited: one
``evidence.export`` event naming what was exported, in which format, with which filters and how
many rows, written by ``evidence_export_record`` before the first byte is sent.

Formats:

- CSV follows RFC 4180 (comma, double quotes doubled, CRLF line ends), UTF-8, one header row.
  Text cells that a spreadsheet would read as a formula — starting with ``=``, ``+``, ``-``,
  ``@``, a tab or a carriage return — are prefixed with a single quote (OWASP, CSV Injection).
  Timestamps are ISO 8601 in UTC (``2026-11-15T06:00:00Z``), dates ``YYYY-MM-DD``, booleans
  ``true`` / ``false``, nested data compact JSON.
- JSON is one object: ``export``, ``title``, ``generated_at``, ``scope`` (what was asked),
  ``count`` and ``items`` (plus ``campaign`` for a campaign's attestations).

Both are streamed (``StreamingHttpResponse``): rows are read in chunks of ``CHUNK`` with a
constant number of queries per chunk, so memory does not grow with the export.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import QueryDict, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header

from governance import frameworks, selectors
from governance.assessments import FACTORS, Factor, assessments_in_force
from governance.attestations import campaign_progress, campaign_team_breakdown
from governance.audit import Actor, audit_record
from governance.filters import FindingFilterSet
from governance.models import Attestation, AuditEvent, Campaign, Finding, IntegrationToken, RiskAssessment
from governance.roles import can_read_all
from inventory.models import Agent
from inventory.permissions import visible_agents_q

FORMATS = ("csv", "json")
CHUNK = 1000
#: The statuses the framework view counts as open (as the dashboard does).
OPEN_STATUSES = (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED)
#: First characters that make a spreadsheet read a text cell as a formula (OWASP, CSV Injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- who may ------------------------------------------------------------------------------------


def can_export_evidence(user) -> bool:
    """True for IAM admins and auditors (active people), who read and export evidence."""
    return can_read_all(user)


def require_evidence_reader(user) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may read and export evidence."""
    if not can_export_evidence(user):
        raise PermissionDenied("Only IAM admins and auditors read and export evidence.")


# --- cells --------------------------------------------------------------------------------------


def iso_utc(value: datetime | None) -> str | None:
    """``value`` (aware) as ISO 8601 in UTC with a ``Z``: ``2026-11-15T06:00:00Z``; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_date(value: date | None) -> str | None:
    """``value`` as ``YYYY-MM-DD``; None stays None."""
    return value.isoformat() if value is not None else None


def csv_cell(value) -> str:
    """One CSV cell: None → empty, booleans ``true``/``false``, numbers as written, datetimes ISO
    8601 UTC, dates ``YYYY-MM-DD``, lists and dicts compact JSON; text that starts like a formula
    is prefixed with ``'`` so that spreadsheets show it as text (OWASP, CSV Injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class CsvDialect(csv.Dialect):
    """RFC 4180: comma-separated, fields quoted with ``"`` when needed, quotes doubled, CRLF."""

    delimiter = ","
    quotechar = '"'
    escapechar = None
    doublequote = True
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL


class _Echo:
    """A file-like object whose ``write`` returns what it is given (for streaming ``csv.writer``)."""

    def write(self, value: str) -> str:
        return value


# --- exports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    """An evidence export, ready to stream.

    ``kind`` names it (``campaign-attestations``, ``assessments``, ``findings``); ``scope`` is
    what was asked (filters, the campaign), JSON-ready; ``count`` the number of items when it was
    built; ``columns`` the CSV header; ``items()`` yields the JSON items and ``rows()`` the CSV rows
    (a finding gives one row per history event). ``subject`` is ``(object_type, object_id,
    object_label)`` for the audit event; ``extra`` more top-level JSON (e.g. the campaign).
    """

    kind: str
    title: str
    generated_at: datetime
    scope: dict
    count: int
    columns: tuple[str, ...]
    items: Callable[[], Iterator[dict]]
    rows: Callable[[], Iterator[Sequence]]
    subject: tuple[str, str, str]
    extra: dict = field(default_factory=dict)

    def filename(self, fmt: str) -> str:
        """``warrant-<kind>-<UTC timestamp>.<fmt>``, the campaign's id included for its attestations."""
        stamp = self.generated_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = self.kind if self.subject[0] == "governance.evidence" else f"campaign-{self.subject[1]}-attestations"
        return f"warrant-{stem}-{stamp}.{fmt}"


def stream_csv(export: Export, *, batch: int = 200) -> Iterator[str]:
    """The export as CSV text (``CsvDialect``, header first), yielded ``batch`` rows at a time."""
    writer = csv.writer(_Echo(), dialect=CsvDialect)
    yield writer.writerow([csv_cell(c) for c in export.columns])
    buffer: list[str] = []
    for row in export.rows():
        buffer.append(writer.writerow([csv_cell(v) for v in row]))
        if len(buffer) >= batch:
            yield "".join(buffer)
            buffer = []
    if buffer:
        yield "".join(buffer)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def stream_json(export: Export) -> Iterator[str]:
    """The export as one JSON object, its ``items`` streamed one at a time."""
    head = {
        "export": export.kind,
        "title": export.title,
        "generated_at": iso_utc(export.generated_at),
        "scope": export.scope,
        **export.extra,
        "count": export.count,
    }
    yield _json(head)[:-1] + ',"items":['
    first = True
    for item in export.items():
        yield ("" if first else ",") + _json(item)
        first = False
    yield "]}\n"


def export_response(export: Export, fmt: str) -> StreamingHttpResponse:
    """A streamed download of ``export`` as ``fmt`` (``csv`` or ``json``), with its file name in
    ``Content-Disposition`` and ``Cache-Control: no-store``. Raises ``ValueError`` for another format."""
    if fmt == "csv":
        response = StreamingHttpResponse(stream_csv(export), content_type="text/csv; charset=utf-8")
    elif fmt == "json":
        response = StreamingHttpResponse(stream_json(export), content_type="application/json")
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=export.filename(fmt))
    response["Cache-Control"] = "no-store"
    return response


def evidence_export_record(*, actor: Actor, export: Export, fmt: str) -> AuditEvent:
    """Audit an evidence export: one ``evidence.export`` event, before the export is sent.

    The event names the campaign (``governance.campaign``) for its attestations, else
    ``governance.evidence`` with the export's kind as id; ``after`` holds ``export``, ``format``,
    ``scope``, ``rows`` and ``filename``. Raises ``PermissionDenied`` unless the actor's person is
    an IAM admin or an auditor (and, for an integration token, it holds ``audit:read``),
    ``ValidationError`` (on ``format``) for a format other than CSV or JSON; nothing is written then.
    """
    require_evidence_reader(actor.user)
    if actor.scopes is not None and IntegrationToken.Scope.AUDIT_READ not in actor.scopes:
        raise PermissionDenied("Evidence exports need a token with the audit:read scope.")
    if fmt not in FORMATS:
        raise ValidationError({"format": [f"Choose one of: {', '.join(FORMATS)}."]})
    object_type, object_id, object_label = export.subject
    with transaction.atomic():
        return audit_record(
            actor=actor,
            verb="evidence.export",
            object_type=object_type,
            object_id=object_id,
            object_label=object_label,
            after={
                "export": export.kind,
                "format": fmt,
                "scope": export.scope,
                "rows": export.count,
                "filename": export.filename(fmt),
            },
            at=export.generated_at,
        )


def _chunks_by_id(qs: QuerySet, size: int | None = None) -> Iterator[list]:
    """``qs`` in id order, ``size`` (default ``CHUNK``) rows per query (keyset pagination: stable while
    rows are added)."""
    size = size or CHUNK
    last = 0
    while True:
        chunk = list(qs.filter(pk__gt=last).order_by("pk")[:size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1].pk


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


# --- a campaign's attestations ------------------------------------------------------------------

ATTESTATION_COLUMNS = (
    "campaign_id", "campaign_name", "attestation_id", "agent_slug", "agent_name", "agent_state", "owner",
    "backup_owner", "team", "environment", "risk_tier", "due_on", "opened_at", "status", "still_needed",
    "owner_correct", "grants_appropriate", "credentials_rotated", "outcome", "comment", "attested_by", "attested_at",
    "reminded_14d_at", "reminded_3d_at", "reminded_1d_at", "escalated_at", "enforced_at", "enforcement", "closed_at",
    "close_reason",
)  # fmt: skip


def _attestation_item(a: Attestation) -> dict:
    agent = a.agent
    return {
        "campaign_id": a.campaign_id,
        "campaign_name": a.campaign.name if a.campaign_id else None,
        "attestation_id": a.pk,
        "agent_slug": agent.slug,
        "agent_name": agent.name,
        "agent_state": agent.state,
        "owner": _username(agent.owner),
        "backup_owner": _username(agent.backup_owner),
        "team": agent.team.slug if agent.team_id else None,
        "environment": agent.environment,
        "risk_tier": agent.risk_tier,
        "due_on": iso_date(a.due_on),
        "opened_at": iso_utc(a.opened_at),
        "status": a.status,
        "still_needed": a.still_needed,
        "owner_correct": a.owner_correct,
        "grants_appropriate": a.grants_appropriate,
        "credentials_rotated": a.credentials_rotated,
        "outcome": a.outcome or None,
        "comment": a.comment,
        "attested_by": _username(a.attested_by),
        "attested_at": iso_utc(a.attested_at),
        "reminded_14d_at": iso_utc(a.reminded_14d_at),
        "reminded_3d_at": iso_utc(a.reminded_3d_at),
        "reminded_1d_at": iso_utc(a.reminded_1d_at),
        "escalated_at": iso_utc(a.escalated_at),
        "enforced_at": iso_utc(a.enforced_at),
        "enforcement": a.enforcement or None,
        "closed_at": iso_utc(a.closed_at),
        "close_reason": a.close_reason,
    }


def campaign_summary(campaign: Campaign) -> dict:
    """The campaign as JSON with its progress as the campaign pages show it
    (``governance.attestations.campaign_progress`` and ``campaign_team_breakdown``): the agents it
    measures, those attested since its launch, the share attested (0–1), and the same per team."""
    progress = campaign_progress(campaign)
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "description": campaign.description,
        "scope_kind": campaign.scope_kind,
        "scope_value": campaign.scope_value,
        "deadline": iso_date(campaign.deadline),
        "launched_by": _username(campaign.launched_by),
        "launched_at": iso_utc(campaign.launched_at),
        "closed_at": iso_utc(campaign.closed_at),
        "progress": {"agents": progress.total, "attested": progress.attested, "share": round(progress.share, 4)},
        "teams": [
            {"team": t.slug or None, "name": t.name or None, "agents": t.total, "attested": t.attested}
            for t in campaign_team_breakdown(campaign)
        ],
    }


def campaign_attestations_export(*, user, campaign: Campaign, now: datetime) -> Export:
    """Every attestation of ``campaign`` (any status), in id order, with the agent's owner, team,
    environment and current tier, the checklist answers, the outcome and the follow-through
    (reminders, escalation, enforcement). The JSON adds the campaign and its progress.
    Raises ``PermissionDenied`` unless ``user`` is an IAM admin or an auditor."""
    require_evidence_reader(user)
    qs = Attestation.objects.filter(campaign=campaign).select_related(
        "campaign", "agent__owner", "agent__backup_owner", "agent__team", "attested_by"
    )

    def items() -> Iterator[dict]:
        for chunk in _chunks_by_id(qs):
            yield from (_attestation_item(a) for a in chunk)

    def rows() -> Iterator[list]:
        for item in items():
            yield [item[c] for c in ATTESTATION_COLUMNS]

    summary = campaign_summary(campaign)
    return Export(
        kind="campaign-attestations",
        title=f"Attestations of campaign {campaign.name}",
        generated_at=now,
        scope={"campaign": campaign.pk},
        count=qs.count(),
        columns=ATTESTATION_COLUMNS,
        items=items,
        rows=rows,
        subject=("governance.campaign", str(campaign.pk), campaign.name),
        extra={"campaign": summary},
    )


# --- the risk assessments in force ---------------------------------------------------------------

ASSESSMENT_COLUMNS = (
    "assessment_id", "agent_slug", "agent_name", "agent_state", "owner", "team", "environment", "assessed_at",
    "assessed_by", "score", "tier", "valid_until", "notes",
)  # fmt: skip


def _factor_item(factor: Factor | None, code: str, answer, points) -> dict:
    return {
        "code": code,
        "title": factor.title if factor else code,
        "answer": answer,
        "points": points,
        "owasp": list(factor.framework_refs) if factor else [],
        "nist_ai_rmf": list(factor.nist) if factor else [],
        "maestro": list(factor.maestro) if factor else [],
    }


def _assessment_item(a: RiskAssessment) -> dict:
    agent = a.agent
    answers = a.answers if isinstance(a.answers, dict) else {}
    scores = a.factor_scores if isinstance(a.factor_scores, dict) else {}
    codes = list(dict.fromkeys([*FACTORS, *answers, *scores]))
    return {
        "assessment_id": a.pk,
        "agent_slug": agent.slug,
        "agent_name": agent.name,
        "agent_state": agent.state,
        "owner": _username(agent.owner),
        "team": agent.team.slug if agent.team_id else None,
        "environment": agent.environment,
        "assessed_at": iso_utc(a.assessed_at),
        "assessed_by": _username(a.assessed_by),
        "score": a.score,
        "tier": a.tier,
        "valid_until": iso_utc(a.valid_until),
        "notes": a.notes,
        "factors": [_factor_item(FACTORS.get(c), c, answers.get(c), scores.get(c)) for c in codes],
    }


def assessments_in_force_export(*, user, now: datetime) -> Export:
    """The risk assessments in force at ``now`` (``governance.assessments.assessments_in_force``: each
    live agent's latest assessment while it is valid) in id order: score, tier, validity, and per
    factor the answer, the points and the framework references it answers (OWASP NHI and ASI, NIST
    AI RMF function, CSA MAESTRO layer). In CSV each factor has ``<code>_answer`` (several answers
    joined by ``;``) and ``<code>_points`` columns. Raises ``PermissionDenied`` unless ``user`` is an
    IAM admin or an auditor."""
    require_evidence_reader(user)
    qs = assessments_in_force(user=user, now=now).select_related("agent__owner", "agent__team", "assessed_by")
    codes = list(FACTORS)
    columns = ASSESSMENT_COLUMNS + tuple(c for code in codes for c in (f"{code}_answer", f"{code}_points"))

    def items() -> Iterator[dict]:
        for chunk in _chunks_by_id(qs):
            yield from (_assessment_item(a) for a in chunk)

    def rows() -> Iterator[list]:
        for item in items():
            by_code = {f["code"]: f for f in item["factors"]}
            cells = []
            for code in codes:
                answer, points = by_code[code]["answer"], by_code[code]["points"]
                cells += [";".join(map(str, answer)) if isinstance(answer, list) else answer, points]
            yield [item[c] for c in ASSESSMENT_COLUMNS] + cells

    return Export(
        kind="assessments",
        title="Risk assessments in force",
        generated_at=now,
        scope={"at": iso_utc(now)},
        count=qs.order_by().count(),
        columns=columns,
        items=items,
        rows=rows,
        subject=("governance.evidence", "assessments", "Risk assessments in force"),
    )


# --- findings with their history ----------------------------------------------------------------

FINDING_COLUMNS = (
    "finding_id", "kind", "title", "severity", "status", "agent_slug", "agent_name", "subject_type", "subject_id",
    "subject_label", "credential_external_id", "detail", "evidence", "framework_refs", "first_seen_at",
    "last_seen_at", "acknowledged_at", "acknowledged_by", "risk_accepted_until", "risk_accepted_by", "resolved_at",
    "resolved_by", "resolution_note",
)  # fmt: skip
HISTORY_COLUMNS = (
    "event_id", "event_at", "event_actor_type", "event_actor", "event_verb", "event_before", "event_after",
    "event_request_id", "event_hash",
)  # fmt: skip


def _finding_item(f: Finding) -> dict:
    return {
        "finding_id": f.pk,
        "kind": f.kind,
        "title": f.title,
        "severity": f.severity,
        "status": f.status,
        "agent_slug": getattr(f, "agent_slug", None),
        "agent_name": getattr(f, "agent_name", None),
        "subject_type": f"{f.subject_type.app_label}.{f.subject_type.model}",
        "subject_id": f.subject_id,
        "subject_label": f.subject_label,
        "credential_external_id": getattr(f, "credential_external_id", None),
        "detail": f.detail,
        "evidence": f.evidence,
        "framework_refs": list(f.framework_refs or []),
        "first_seen_at": iso_utc(f.first_seen_at),
        "last_seen_at": iso_utc(f.last_seen_at),
        "acknowledged_at": iso_utc(f.acknowledged_at),
        "acknowledged_by": f.acknowledged_by or None,
        "risk_accepted_until": iso_utc(f.risk_accepted_until),
        "risk_accepted_by": f.risk_accepted_by or None,
        "resolved_at": iso_utc(f.resolved_at),
        "resolved_by": f.resolved_by or None,
        "resolution_note": f.resolution_note,
    }


def _event_item(e: AuditEvent) -> dict:
    return {
        "event_id": e.pk,
        "event_at": iso_utc(e.occurred_at),
        "event_actor_type": e.actor_type,
        "event_actor": e.actor_label,
        "event_verb": e.verb,
        "event_before": e.before,
        "event_after": e.after,
        "event_request_id": e.request_id or None,
        "event_hash": e.hash,
    }


def _history(findings: Sequence[Finding]) -> dict[int, list[AuditEvent]]:
    """The audit events of ``findings``, oldest first, by finding id; one query."""
    out: dict[int, list[AuditEvent]] = defaultdict(list)
    events = AuditEvent.objects.filter(
        object_type="governance.finding", object_id__in=[str(f.pk) for f in findings]
    ).order_by("id")
    for e in events:
        out[int(e.object_id)].append(e)
    return out


def findings_export(*, user, params: QueryDict, now: datetime) -> Export:
    """The findings visible to ``user`` (``selectors.finding_list``) that match ``params`` — the
    findings queue's filters (``FindingFilterSet``: ``kind``, ``severity``, ``status``, ``agent``,
    ``framework``; every status unless ``status`` is given) — in id order, each with its history:
    its audit events, oldest first. In CSV a finding takes one row per event (the finding's
    columns repeated; a finding without events one row with empty event columns). Two queries per
    ``CHUNK`` findings. Raises ``PermissionDenied`` unless ``user`` is an IAM admin or an auditor,
    ``ValidationError`` keyed by filter (``filters`` for unknown parameters) for a filter refused."""
    require_evidence_reader(user)
    filterset = FindingFilterSet(params, queryset=selectors.finding_list(user=user))
    if not filterset.is_valid():
        errors = {("filters" if k == "__all__" else k): v for k, v in filterset.errors.items()}
        raise ValidationError(errors)
    qs = filterset.qs

    def chunks() -> Iterator[tuple[list[Finding], dict[int, list[AuditEvent]]]]:
        for chunk in _chunks_by_id(qs):
            yield chunk, _history(chunk)

    def items() -> Iterator[dict]:
        for chunk, history in chunks():
            for f in chunk:
                yield {**_finding_item(f), "history": [_event_item(e) for e in history.get(f.pk, [])]}

    def rows() -> Iterator[list]:
        empty = [None] * len(HISTORY_COLUMNS)
        for chunk, history in chunks():
            for f in chunk:
                base = [_finding_item(f)[c] for c in FINDING_COLUMNS]
                events = history.get(f.pk, [])
                if not events:
                    yield base + empty
                for e in events:
                    item = _event_item(e)
                    yield base + [item[c] for c in HISTORY_COLUMNS]

    return Export(
        kind="findings",
        title="Findings with their history",
        generated_at=now,
        scope=scope_of(params),
        count=qs.order_by().count(),
        columns=FINDING_COLUMNS + HISTORY_COLUMNS,
        items=items,
        rows=rows,
        subject=("governance.evidence", "findings", "Findings with their history"),
    )


def scope_of(params: QueryDict) -> dict:
    """The filters given (a ``QueryDict``) as JSON for the audit event and the export: each
    parameter's non-blank values (a list when repeated); ``format`` and blank parameters left out."""
    scope = {}
    for key, values in sorted(params.lists()):
        kept = [v for v in values if v.strip()]
        if key != "format" and kept:
            scope[key] = kept if len(kept) > 1 else kept[0]
    return scope


# --- the framework view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KindCount:
    """A finding kind that evidences an item, its open findings and the findings-queue link to them."""

    code: str
    title: str
    open: int
    url: str


@dataclass(frozen=True)
class ItemView:
    """One framework item on the framework view: what answers it and its open findings."""

    item: frameworks.FrameworkItem
    controls: tuple[frameworks.Control, ...]
    kinds: tuple[KindCount, ...]
    factors: tuple[frameworks.FactorRef, ...]
    open: int
    url: str


@dataclass(frozen=True)
class FrameworkView:
    """One list (NHI or ASI) with its items in published order."""

    framework: frameworks.Framework
    items: tuple[ItemView, ...]


def _findings_url(kinds: Iterable[str]) -> str:
    query = [("kind", k) for k in kinds] + [("status", s) for s in OPEN_STATUSES]
    return f"{reverse('finding-list')}?{urlencode(query)}"


def open_finding_counts(*, user) -> dict[str, int]:
    """Open and acknowledged findings visible to ``user``, by kind; one query."""
    qs = Finding.objects.filter(status__in=OPEN_STATUSES)
    if not can_read_all(user):
        qs = qs.filter(agent_id__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
    return dict(qs.order_by().values_list("kind").annotate(n=Count("id")))


def framework_view(*, user) -> list[FrameworkView]:
    """For each OWASP NHI Top 10 (2025) and Agentic Top 10 (2026) item: the controls that answer it,
    the finding kinds that evidence it with their open findings (open or acknowledged) and links to
    them in the findings queue, the assessment factors that answer it, and its open total (each
    finding counted once per item). One query. Raises ``PermissionDenied`` unless ``user`` is an IAM
    admin or an auditor."""
    require_evidence_reader(user)
    counts = open_finding_counts(user=user)
    by_framework: dict[str, list[ItemView]] = defaultdict(list)
    for cov in frameworks.coverage():
        kinds = tuple(
            KindCount(k.code, k.title, counts.get(k.code, 0), _findings_url([k.code])) for k in cov.finding_kinds
        )
        by_framework[cov.item.framework].append(
            ItemView(
                item=cov.item,
                controls=cov.controls,
                kinds=kinds,
                factors=cov.factors,
                open=sum(k.open for k in kinds),
                url=_findings_url(k.code for k in kinds) if kinds else "",
            )
        )
    return [FrameworkView(fw, tuple(by_framework[code])) for code, fw in frameworks.FRAMEWORKS.items()]


def framework_view_data(views: list[FrameworkView]) -> list[dict]:
    """The framework view as JSON (the API's answer): frameworks, items, controls, kinds, factors, counts."""
    return [
        {
            "framework": v.framework.code,
            "name": v.framework.name,
            "edition": v.framework.edition,
            "items": [
                {
                    "id": iv.item.id,
                    "title": iv.item.title,
                    "note": iv.item.note,
                    "open_findings": iv.open,
                    "controls": [{"code": c.code, "name": c.name, "description": c.description} for c in iv.controls],
                    "finding_kinds": [{"kind": k.code, "title": k.title, "open_findings": k.open} for k in iv.kinds],
                    "assessment_factors": [{"code": f.code, "label": f.label} for f in iv.factors],
                }
                for iv in v.items
            ],
        }
        for v in views
    ]
