"""Celery entry points of the inventory: thin wrappers, one service each."""

from celery import shared_task
from django.utils import timezone

from .services import credentials_flag_stale_due


@shared_task(name="inventory.tasks.flag_stale_credentials", ignore_result=True)
def flag_stale_credentials() -> dict[str, dict[str, int]]:
    """Run the stale-credential job as of the moment the task runs (UTC).

    Wraps ``inventory.services.credentials_flag_stale_due``, which is set-based and
    idempotent: a retry or a second delivery changes nothing more (DESIGN.md invariant 8).
    Returns its per-kind counts ``{kind: {"opened", "refreshed", "resolved", "reopened"}}``.
    """
    return credentials_flag_stale_due(now=timezone.now())
