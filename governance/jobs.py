"""The periodic jobs: what runs on a schedule, under which Celery task, and how to run it once.

``JOBS`` maps a job's name to its ``Job``: the dotted name of the Celery task that runs it,
its default schedule (a cron expression, UTC) and ``run(now)``, the batch service it wraps.
Celery beat reads the schedule from django-celery-beat's ``PeriodicTask`` rows, which
``jobs_schedule_ensure`` creates from these defaults (``python manage.py ensure_schedule``)
and IAM admins may then edit in the admin. ``python manage.py run_job NAME`` runs a job
once, synchronously, with ``now`` given or the current time (UTC).

This registry belongs to the governance domain, at the top of the import order: it names
services of the parts below it, importing them only when a job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from governance.audit import Actor, audit_record


@dataclass(frozen=True)
class Crontab:
    """A cron schedule in UTC, field by field as ``crontab(5)`` writes them."""

    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"

    def __str__(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week} (UTC)"


@dataclass(frozen=True)
class Job:
    """One periodic job.

    ``name`` is the job's stable name (also the ``PeriodicTask`` name); ``task`` the dotted
    name of the Celery task that runs it; ``schedule`` its default schedule; ``run(now)``
    runs it once as of ``now`` (aware datetime, UTC) and returns its counts.
    """

    name: str
    task: str
    schedule: Crontab
    run: Callable[[datetime], dict]
    description: str = ""


def _flag_stale_credentials(now: datetime) -> dict:
    from inventory.services import credentials_flag_stale_due

    return credentials_flag_stale_due(now=now)


JOBS: dict[str, Job] = {
    job.name: job
    for job in [
        Job(
            name="flag-stale-credentials",
            task="inventory.tasks.flag_stale_credentials",
            schedule=Crontab(minute="0", hour="3"),
            run=_flag_stale_credentials,
            description=(
                "Open, refresh and resolve findings on unused, unrotated, expiring and expired credentials, "
                "credentials active on decommissioned agents and console passwords (OWASP NHI1, NHI7, NHI10)."
            ),
        ),
    ]
}


def job_get(name: str) -> Job:
    """The job named ``name``; raises ``KeyError`` naming the known jobs when there is none."""
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def jobs_schedule_ensure(*, actor: Actor) -> list[str]:
    """Create the django-celery-beat schedule rows that are missing, one per job; keep the rest.

    For each job without a ``PeriodicTask`` of its name, creates (or reuses) the matching
    ``CrontabSchedule`` in UTC and the ``PeriodicTask`` pointing at ``job.task``, and writes a
    ``schedule.create`` audit event. An existing ``PeriodicTask`` is never changed, so an
    admin's edits (schedule, enabled, arguments) are kept. Idempotent. Returns the names of
    the jobs whose schedule was created.
    """
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    created: list[str] = []
    with transaction.atomic():
        existing = set(PeriodicTask.objects.select_for_update().filter(name__in=JOBS).values_list("name", flat=True))
        for job in JOBS.values():
            if job.name in existing:
                continue
            s = job.schedule
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=s.minute,
                hour=s.hour,
                day_of_week=s.day_of_week,
                day_of_month=s.day_of_month,
                month_of_year=s.month_of_year,
                timezone="UTC",
            )
            task = PeriodicTask.objects.create(
                name=job.name, task=job.task, crontab=crontab, description=job.description[:2000]
            )
            audit_record(
                actor=actor,
                verb="schedule.create",
                object_type="django_celery_beat.periodictask",
                object_id=str(task.pk),
                object_label=job.name,
                after={"task": job.task, "crontab": str(s), "enabled": task.enabled},
            )
            created.append(job.name)
    return created
