"""Celery entry points of the governance domain: thin wrappers, one service each."""

from celery import shared_task
from django.utils import timezone

from .audit import audit_head_record


@shared_task(name="governance.tasks.record_audit_head", ignore_result=True)
def record_audit_head() -> dict:
    """Log the audit chain's head as of the moment the task runs (UTC); write nothing.

    Wraps ``governance.audit.audit_head_record``: one INFO line on the ``governance.audit``
    logger, ``audit head id=<id> hash=<sha256 hex> events=<n> at=<UTC>``, for log shipping to
    keep outside the database. Returns ``{"id", "hash", "events"}``.
    """
    return audit_head_record(now=timezone.now())


@shared_task(name="governance.tasks.flag_due_reassessments", ignore_result=True)
def flag_due_reassessments() -> dict:
    """Run ``governance.assessments.assessments_flag_due`` as of the moment the task runs (UTC).

    Set-based and idempotent: a retry or a second delivery changes nothing more (DESIGN.md
    invariant 8). Returns its counts ``{"opened", "refreshed", "resolved", "reopened"}``.
    """
    from .assessments import assessments_flag_due

    return assessments_flag_due(now=timezone.now())


@shared_task(name="governance.tasks.open_attestations", ignore_result=True)
def open_attestations() -> dict:
    """Run ``governance.attestations.attestations_open_due`` as of the moment the task runs (UTC); idempotent."""
    from .attestations import attestations_open_due

    return attestations_open_due(now=timezone.now())


@shared_task(name="governance.tasks.remind_attestations", ignore_result=True)
def remind_attestations() -> dict:
    """Run ``governance.attestations.attestations_remind_due`` as of the moment the task runs (UTC); idempotent."""
    from .attestations import attestations_remind_due

    return attestations_remind_due(now=timezone.now())


@shared_task(name="governance.tasks.escalate_attestations", ignore_result=True)
def escalate_attestations() -> dict:
    """Run ``governance.attestations.attestations_escalate_due`` as of the moment the task runs (UTC); idempotent."""
    from .attestations import attestations_escalate_due

    return attestations_escalate_due(now=timezone.now())


@shared_task(name="governance.tasks.enforce_attestations", ignore_result=True)
def enforce_attestations() -> dict:
    """Run ``governance.attestations.attestations_enforce_due`` as of the moment the task runs (UTC); idempotent."""
    from .attestations import attestations_enforce_due

    return attestations_enforce_due(now=timezone.now())


@shared_task(
    name="governance.tasks.send_attestation_notifications",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=5,
)
def send_attestation_notifications(kind: str, ids: list[int]) -> int:
    """Send the ``kind`` e-mails (``attestations.NOTIFICATION_KINDS``) about ``ids``; retried on mail-server errors."""
    from .attestations import attestation_notifications_send

    return attestation_notifications_send(kind=kind, ids=ids)
