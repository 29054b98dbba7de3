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
