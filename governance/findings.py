"""Findings kernel: the catalogue of finding kinds and the set-based open/refresh/resolve writer.

Part of the kernel: subjects are named generically (any model instance), so inventory,
delegations and the governance domain all raise findings through these functions.

Rules kept here (DESIGN.md invariant 8): at most one unresolved finding per (kind, subject)
— also a database constraint; a rerun for the same state changes nothing but ``last_seen_at``;
a finding whose condition has cleared resolves itself; an expired risk acceptance reopens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Greatest

from governance.audit import Actor, PendingEvent, audit_record_many, object_type_of
from governance.bulk import insert_rows
from governance.models import Finding

S = Finding.Severity


@dataclass(frozen=True)
class FindingKind:
    """One kind of finding: its title, default severity and the framework items it answers.

    ``framework_refs`` use OWASP Non-Human Identities Top 10 (2025) ids, ``NHI1``–``NHI10``.
    """

    code: str
    title: str
    severity: str
    framework_refs: tuple[str, ...]
    remedy: str


KINDS: dict[str, FindingKind] = {
    k.code: k
    for k in [
        FindingKind(
            "unowned_agent",
            "Agent has no owner",
            S.HIGH,
            ("NHI1",),
            "Assign an owner; an agent cannot be activated without one.",
        ),
        FindingKind(
            "orphaned_agent",
            "Agent's owner is no longer active",
            S.HIGH,
            ("NHI1",),
            "Transfer ownership to an active person.",
        ),
        FindingKind(
            "unused_credential",
            "Credential unused",
            S.MEDIUM,
            ("NHI1", "NHI7"),
            "Revoke the credential if the agent no longer needs it.",
        ),
        FindingKind(
            "unrotated_credential",
            "Credential not rotated within its period",
            S.MEDIUM,
            ("NHI7",),
            "Rotate the credential, or replace it with a short-lived one.",
        ),
        FindingKind(
            "expiring_credential",
            "Credential expires soon",
            S.LOW,
            ("NHI7",),
            "Rotate before it expires, or let it lapse if unneeded.",
        ),
        FindingKind(
            "expired_credential_active",
            "Credential expired but still active",
            S.HIGH,
            ("NHI7",),
            "Deactivate or revoke the credential at its provider.",
        ),
        FindingKind(
            "credential_on_decommissioned_agent",
            "Active credential on a decommissioned agent",
            S.CRITICAL,
            ("NHI1",),
            "Revoke the credential at its provider now.",
        ),
        FindingKind(
            "console_password_on_nhi",
            "Console password on a non-human identity",
            S.HIGH,
            ("NHI10", "NHI4"),
            "Remove the console password; agents authenticate with workload credentials.",
        ),
        FindingKind(
            "literal_secret_in_config",
            "Literal secret in a tool configuration",
            S.HIGH,
            ("NHI2",),
            "Move the secret to a secret manager or an input variable and rotate it.",
        ),
        FindingKind(
            "reassessment_due",
            "Risk assessment out of date",
            S.MEDIUM,
            ("NHI1",),
            "Reassess the agent's risk; its tier sets grant caps and the attestation cadence.",
        ),
        FindingKind(
            "attestation_overdue",
            "Owner attestation overdue",
            S.HIGH,
            ("NHI1",),
            "The owner (or backup owner) answers the attestation; past grace the agent is suspended or flagged.",
        ),
        FindingKind(
            "shared_workload_identity",
            "Workload identity shared by several agents",
            S.HIGH,
            ("NHI9",),
            "Give each agent its own workload identity.",
        ),
        FindingKind(
            "out_of_scope_actions",
            "Agent repeatedly asked beyond its grants",
            S.HIGH,
            ("NHI5",),
            "Review the denied attempts in the agent's decision log: narrow what the agent is told to do, request "
            "a grant if the need is real, or suspend the agent if it is acting on its own.",
        ),
    ]
}

FINDING_KIND_CHOICES = [(k.code, k.title) for k in KINDS.values()]


def finding_kind(code: str) -> FindingKind:
    """The catalogue entry for ``code``; raises ``KeyError`` for an unknown kind."""
    return KINDS[code]


@dataclass(frozen=True)
class Condition:
    """A finding condition that holds now for one subject, as a job or importer observed it."""

    subject: models.Model
    agent_id: int | None
    detail: str = ""
    evidence: Mapping = field(default_factory=dict)
    severity: str | None = None


def _finding_for(kind: FindingKind, cond: Condition, ct: ContentType, now: datetime) -> Finding:
    return Finding(
        kind=kind.code,
        severity=cond.severity or kind.severity,
        status=Finding.Status.OPEN,
        subject_type=ct,
        subject_id=cond.subject.pk,
        subject_label=str(cond.subject)[:300],
        agent_id=cond.agent_id,
        title=kind.title,
        detail=cond.detail,
        evidence=dict(cond.evidence),
        framework_refs=list(kind.framework_refs),
        first_seen_at=now,
        last_seen_at=now,
    )


def _opened_event(f: Finding) -> PendingEvent:
    return PendingEvent(
        verb="finding.open",
        object_type=object_type_of(f),
        object_id=str(f.pk),
        object_label=f"{f.title} — {f.subject_label}",
        after={"kind": f.kind, "severity": f.severity, "subject": f.subject_label, "detail": f.detail},
    )


_CHUNK = 5000
_FINDING_ROW_FIELDS = (
    "kind",
    "severity",
    "status",
    "subject_type_id",
    "subject_id",
    "subject_label",
    "agent_id",
    "title",
    "detail",
    "evidence",
    "framework_refs",
    "first_seen_at",
    "last_seen_at",
    "acknowledged_by",
    "risk_accepted_by",
    "resolved_by",
    "resolution_note",
)


def _finding_row(kind: FindingKind, cond: Condition, ct: ContentType, now: datetime) -> tuple:
    """The values of a new open finding in ``_FINDING_ROW_FIELDS`` order (as ``_finding_for`` builds it)."""
    return (
        kind.code, cond.severity or kind.severity, Finding.Status.OPEN.value, ct.pk, cond.subject.pk,
        str(cond.subject)[:300], cond.agent_id, kind.title, cond.detail, dict(cond.evidence),
        list(kind.framework_refs), now, now, "", "", "", "",
    )  # fmt: skip


def _chunks(items: list, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _lock_kind(kind: str) -> None:
    """Serialise runs of the same kind (PostgreSQL advisory lock held until the transaction ends)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"findings:{kind}"])


def findings_sync(
    *,
    actor: Actor,
    kind: str,
    subject_model: type[models.Model],
    now: datetime,
    conditions: Iterable[Condition] | None = None,
    subjects: QuerySet | None = None,
    describe: Callable[[models.Model], Condition] | None = None,
    scope: Q | None = None,
) -> dict[str, int]:
    """Make the unresolved findings of ``kind`` on ``subject_model`` match the current condition, set-based.

    Give either ``conditions`` (every subject for which the condition holds at ``now``, UTC) or
    ``subjects`` (a queryset of those subjects) with ``describe(subject) -> Condition``, which is
    called only for subjects that have no unresolved finding yet — so a rerun reads ids only.
    ``scope`` (a ``Q`` over Finding) limits which existing findings this run judges (default: all
    of that kind and subject type). Findings are dated ``now`` (the instant judged); their audit
    events carry the time they are written, so the trail's times follow its order.

    New subjects get a finding; present ones have ``last_seen_at`` refreshed (never moved back); unresolved findings
    whose subject no longer meets the condition are resolved; risk acceptances that ended at or
    before ``now`` reopen. One audit event per opened, resolved or reopened finding. Runs of the
    same kind are serialised; a rerun for the same state changes nothing but ``last_seen_at``
    (DESIGN.md invariant 8). Memory is bounded by the number of subject ids, not by rows written.
    Returns counts ``{"opened", "refreshed", "resolved", "reopened"}``.
    """
    if (conditions is None) == (subjects is None) or (subjects is not None and describe is None):
        raise TypeError("give either conditions, or subjects with describe")
    spec = finding_kind(kind)
    ct = ContentType.objects.get_for_model(subject_model)
    with transaction.atomic():
        _lock_kind(kind)
        if conditions is not None:
            by_subject = {c.subject.pk: c for c in conditions}
            holding = set(by_subject)
        else:
            by_subject = None
            holding = set(subjects.values_list("pk", flat=True))
        base = Finding.objects.filter(kind=kind, subject_type=ct)
        if scope is not None:
            base = base.filter(scope)
        existing = {
            row["subject_id"]: row
            for row in base.filter(status__in=Finding.UNRESOLVED)
            .select_for_update()
            .values("id", "subject_id", "status", "risk_accepted_until", "title", "subject_label")
        }
        present = [row["id"] for sid, row in existing.items() if sid in holding]
        gone = [row for sid, row in existing.items() if sid not in holding]
        lapsed = [
            row
            for sid, row in existing.items()
            if sid in holding and row["status"] == Finding.Status.RISK_ACCEPTED and row["risk_accepted_until"] <= now
        ]
        new_ids = sorted(holding - set(existing))

        seen = Greatest("last_seen_at", Value(now, output_field=models.DateTimeField()))  # never moves back
        for ids in _chunks(present):
            Finding.objects.filter(id__in=ids).update(last_seen_at=seen)
        for rows in _chunks(gone):
            Finding.objects.filter(id__in=[r["id"] for r in rows]).update(
                status=Finding.Status.RESOLVED,
                resolved_at=now,
                resolved_by=actor.label[:200],
                resolution_note="Condition cleared.",
            )
        for rows in _chunks(lapsed):
            Finding.objects.filter(id__in=[r["id"] for r in rows]).update(
                status=Finding.Status.OPEN, risk_accepted_until=None
            )

        def new_condition_chunks():
            if by_subject is not None:
                for ids in _chunks(new_ids):
                    yield [by_subject[sid] for sid in ids]
                return
            for ids in _chunks(new_ids):
                yield [describe(subject) for subject in subjects.filter(pk__in=ids).order_by("pk")]

        high_water = Finding.objects.order_by("-id").values_list("id", flat=True).first() or 0
        opened = 0
        for chunk in new_condition_chunks():  # each chunk read fully before it is written (no interleaving)
            rows = [_finding_row(spec, c, ct, now) for c in chunk]
            opened += insert_rows(Finding, _FINDING_ROW_FIELDS, rows)
        created = list(
            base.filter(id__gt=high_water, status=Finding.Status.OPEN, first_seen_at=now)
            .order_by("id")
            .values("id", "kind", "severity", "title", "subject_label", "detail")
        )

        def events():
            for row in created:
                yield PendingEvent(
                    "finding.open",
                    "governance.finding",
                    str(row["id"]),
                    f"{row['title']} — {row['subject_label']}",
                    after={
                        "kind": row["kind"],
                        "severity": row["severity"],
                        "subject": row["subject_label"],
                        "detail": row["detail"],
                    },
                )
            for row in gone:
                yield PendingEvent(
                    "finding.resolve",
                    "governance.finding",
                    str(row["id"]),
                    f"{row['title']} — {row['subject_label']}",
                    before={"status": row["status"]},
                    after={"status": "resolved", "note": "Condition cleared."},
                )
            for row in lapsed:
                yield PendingEvent(
                    "finding.reopen",
                    "governance.finding",
                    str(row["id"]),
                    f"{row['title']} — {row['subject_label']}",
                    before={"status": "risk_accepted"},
                    after={"status": "open", "note": "Risk acceptance ended."},
                )

        if opened or gone or lapsed:
            audit_record_many(actor=actor, events=events())
    return {"opened": opened, "refreshed": len(present), "resolved": len(gone), "reopened": len(lapsed)}


def finding_raise(*, actor: Actor, kind: str, condition: Condition, now: datetime) -> tuple[Finding, bool]:
    """Open a finding of ``kind`` for one subject, or refresh the unresolved one that exists.

    Call inside the change's transaction. Returns ``(finding, created)``.
    """
    spec = finding_kind(kind)
    ct = ContentType.objects.get_for_model(type(condition.subject))
    existing = (
        Finding.objects.select_for_update()
        .filter(kind=kind, subject_type=ct, subject_id=condition.subject.pk, status__in=Finding.UNRESOLVED)
        .first()
    )
    if existing is not None:
        Finding.objects.filter(pk=existing.pk).update(last_seen_at=now)
        existing.last_seen_at = now
        return existing, False
    finding = _finding_for(spec, condition, ct, now)
    finding.save()
    audit_record_many(actor=actor, events=[_opened_event(finding)])
    return finding, True


def findings_resolve_for(
    *, actor: Actor, subject: models.Model, now: datetime, note: str, kind: str | None = None
) -> int:
    """Resolve the unresolved finding of ``kind`` on ``subject`` (its condition cleared), or every
    unresolved finding on it when ``kind`` is None (the subject is gone). Call inside the change's
    transaction; one audit event per finding resolved. Returns how many were resolved."""
    ct = ContentType.objects.get_for_model(type(subject))
    rows = Finding.objects.select_for_update().filter(
        subject_type=ct, subject_id=subject.pk, status__in=Finding.UNRESOLVED
    )
    if kind is not None:
        rows = rows.filter(kind=kind)
    rows = list(rows.order_by("id"))
    before = {f.pk: f.status for f in rows}
    for f in rows:
        f.status = Finding.Status.RESOLVED
        f.resolved_at = now
        f.resolved_by = actor.label[:200]
        f.resolution_note = note
        f.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
    if rows:
        audit_record_many(
            actor=actor,
            events=[
                PendingEvent(
                    "finding.resolve",
                    object_type_of(f),
                    str(f.pk),
                    f"{f.title} — {f.subject_label}",
                    before={"status": before[f.pk]},
                    after={"status": "resolved", "note": note},
                )
                for f in rows
            ],
        )
    return len(rows)
