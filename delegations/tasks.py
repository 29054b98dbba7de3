"""Celery entry points of delegations: thin wrappers, one service each."""

from celery import shared_task
from django.utils import timezone

from . import services
from .notifications import grant_notifications_send


@shared_task(name="delegations.tasks.expire_grants", ignore_result=True)
def expire_grants() -> dict:
    """Run ``services.grants_expire_due`` as of the moment the task runs (UTC); idempotent."""
    return services.grants_expire_due(now=timezone.now())


@shared_task(name="delegations.tasks.cancel_stale_requests", ignore_result=True)
def cancel_stale_requests() -> dict:
    """Run ``services.requests_cancel_stale`` as of the moment the task runs (UTC); idempotent."""
    return services.requests_cancel_stale(now=timezone.now())


@shared_task(name="delegations.tasks.remind_expiring_grants", ignore_result=True)
def remind_expiring_grants() -> dict:
    """Run ``services.grants_remind_expiring`` as of the moment the task runs (UTC); idempotent."""
    return services.grants_remind_expiring(now=timezone.now())


@shared_task(
    name="delegations.tasks.send_grant_notifications",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=5,
)
def send_grant_notifications(kind: str, grant_ids: list[int]) -> int:
    """Send the ``kind`` e-mails (``notifications.KINDS``) about ``grant_ids``; retried on mail-server errors."""
    return grant_notifications_send(kind=kind, grant_ids=grant_ids)
