"""Celery entry points of delegations: thin wrappers, one service each."""

from celery import shared_task
from django.utils import timezone

from . import decisions, services, tokens
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


@shared_task(name="delegations.tasks.flag_out_of_scope_decisions", ignore_result=True)
def flag_out_of_scope_decisions() -> dict:
    """Run ``decisions.decisions_flag_out_of_scope`` as of the moment the task runs (UTC); idempotent."""
    return decisions.decisions_flag_out_of_scope(now=timezone.now())


@shared_task(name="delegations.tasks.prune_decision_log", ignore_result=True)
def prune_decision_log() -> dict:
    """Run ``decisions.decision_log_prune`` as of the moment the task runs (UTC); idempotent."""
    return decisions.decision_log_prune(now=timezone.now())


@shared_task(name="delegations.tasks.retire_signing_keys", ignore_result=True)
def retire_signing_keys() -> dict:
    """Run ``tokens.signing_keys_retire`` as of the moment the task runs (UTC); idempotent."""
    return tokens.signing_keys_retire(now=timezone.now())


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
