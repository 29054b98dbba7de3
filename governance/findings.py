"""Findings kernel: the catalogue of finding kinds and the set-based open/refresh/resolve writer.

Part of the kernel: subjects are named generically (any model instance), so inventory,
delegations and the governance domain all raise findings through these functions.

Rules kept here (DESIGN.md invariant 8): at most one unresolved finding per (kind, subject)
— also a database constraint; a rerun for the same state changes nothing but ``last_seen_at``;
a finding whose condition has cleared resolves itself; an expired risk acceptance reopens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q

from governance.audit import Actor, PendingEvent, audit_record_many, object_type_of
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
        FindingKind("unowned_agent", "Agent has no owner", S.HIGH, ("NHI1",),
                    "Assign an owner; an agent cannot be activated without one."),
        FindingKind("orphaned_agent", "Agent's owner is no longer active", S.HIGH, ("NHI1",),
                    "Transfer ownership to an active person."),
        FindingKind("unused_credential", "Credential unused", S.MEDIUM, ("NHI1", "NHI7"),
                    "Revoke the credential if the agent no longer needs it."),
        FindingKind("unrotated_credential", "Credential not rotated within its period", S.MEDIUM, ("NHI7",),
                    "Rotate the credential, or replace it with a short-lived one."),
        FindingKind("expiring_credential", "Credential expires soon", S.LOW, ("NHI7",),
                    "Rotate before it expires, or let it lapse if unneeded."),
        FindingKind("expired_credential_active", "Credential expired but still active", S.HIGH, ("NHI7",),
                    "Deactivate or revoke the credential at its provider."),
        FindingKind("credential_on_decommissioned_agent", "Active credential on a decommissioned agent",
                    S.CRITICAL, ("NHI1",), "Revoke the credential at its provider now."),
        FindingKind("console_password_on_nhi", "Console password on a non-human identity", S.HIGH, ("NHI10", "NHI4"),
                    "Remove the console password; agents authenticate with workload credentials."),
        FindingKind("literal_secret_in_config", "Literal secret in a tool configuration", S.HIGH, ("NHI2",),
                    "Move the secret to a secret manager or an input variable and rotate it."),
        FindingKind("shared_workload_identity", "Workload identity shared by several agents", S.HIGH, ("NHI9",),
                    "Give each agent its own workload identity."),
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


def findings_sync(
    *,
    actor: Actor,
    kind: str,
    subject_model: type[models.Model],
    conditions: list[Condition],
    now: datetime,
    scope: Q | None = None,
) -> dict[str, int]:
    """Make the unresolved findings of ``kind`` on ``subject_model`` match ``conditions``, set-based.

    ``conditions`` is every subject for which the condition holds at ``now`` (UTC) within
    ``scope`` (a ``Q`` over Finding limiting which existing findings this run judges; default
    all of that kind and subject type). New subjects get a finding (``bulk_create``); present
    ones have ``last_seen_at`` refreshed (``update``); unresolved findings whose subject is no
    longer listed are resolved; risk acceptances that ended at or before ``now`` reopen.
    One audit event per opened, resolved or reopened finding. Idempotent for the same input.
    Returns counts ``{"opened", "refreshed", "resolved", "reopened"}``.
    """
    spec = finding_kind(kind)
    ct = ContentType.objects.get_for_model(subject_model)
    by_subject = {c.subject.pk: c for c in conditions}
    with transaction.atomic():
        base = Finding.objects.filter(kind=kind, subject_type=ct)
        if scope is not None:
            base = base.filter(scope)
        unresolved = base.filter(status__in=Finding.UNRESOLVED).select_for_update()
        existing = {f.subject_id: f for f in unresolved.only("id", "subject_id", "status", "risk_accepted_until", "title", "subject_label")}

        to_open = [_finding_for(spec, c, ct, now) for sid, c in by_subject.items() if sid not in existing]
        present_ids = [f.id for sid, f in existing.items() if sid in by_subject]
        gone = [f for sid, f in existing.items() if sid not in by_subject]
        lapsed = [
            f for sid, f in existing.items()
            if sid in by_subject and f.status == Finding.Status.RISK_ACCEPTED and f.risk_accepted_until <= now
        ]

        created = Finding.objects.bulk_create(to_open, batch_size=1000)
        if any(f.pk is None for f in created):  # backends that do not return ids
            keys = [f.subject_id for f in created]
            created = list(Finding.objects.filter(kind=kind, subject_type=ct, subject_id__in=keys,
                                                  status=Finding.Status.OPEN, first_seen_at=now))
        if present_ids:
            Finding.objects.filter(id__in=present_ids).update(last_seen_at=now)
        if gone:
            Finding.objects.filter(id__in=[f.id for f in gone]).update(
                status=Finding.Status.RESOLVED, resolved_at=now, resolved_by=actor.label[:200],
                resolution_note="Condition cleared.",
            )
        if lapsed:
            Finding.objects.filter(id__in=[f.id for f in lapsed]).update(
                status=Finding.Status.OPEN, risk_accepted_until=None
            )
        events = [_opened_event(f) for f in created]
        events += [
            PendingEvent("finding.resolve", object_type_of(f), str(f.pk), f"{f.title} — {f.subject_label}",
                         before={"status": f.status}, after={"status": "resolved", "note": "Condition cleared."})
            for f in gone
        ]
        events += [
            PendingEvent("finding.reopen", object_type_of(f), str(f.pk), f"{f.title} — {f.subject_label}",
                         before={"status": "risk_accepted"}, after={"status": "open", "note": "Risk acceptance ended."})
            for f in lapsed
        ]
        if events:
            audit_record_many(actor=actor, events=events, at=now)
    return {"opened": len(created), "refreshed": len(present_ids), "resolved": len(gone), "reopened": len(lapsed)}


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
    audit_record_many(actor=actor, events=[_opened_event(finding)], at=now)
    return finding, True


def findings_resolve_for(*, actor: Actor, kind: str, subject: models.Model, now: datetime, note: str) -> int:
    """Resolve the unresolved finding of ``kind`` on ``subject`` (its condition cleared). Returns 0 or 1."""
    ct = ContentType.objects.get_for_model(type(subject))
    rows = list(
        Finding.objects.select_for_update().filter(
            kind=kind, subject_type=ct, subject_id=subject.pk, status__in=Finding.UNRESOLVED
        )
    )
    for f in rows:
        before = {"status": f.status}
        f.status = Finding.Status.RESOLVED
        f.resolved_at = now
        f.resolved_by = actor.label[:200]
        f.resolution_note = note
        f.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
        audit_record_many(
            actor=actor,
            events=[PendingEvent("finding.resolve", object_type_of(f), str(f.pk), f"{f.title} — {f.subject_label}",
                                 before=before, after={"status": "resolved", "note": note})],
            at=now,
        )
    return len(rows)
