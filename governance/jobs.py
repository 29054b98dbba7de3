"""The periodic jobs: what runs on a schedule, under which Celery task, and how to run it once.

``JOBS`` maps a job's name to its ``Job``: the dotted name of the Celery task that runs it,
its default schedule (a cron expression, in UTC or the organisation's zone) and ``run(now)``, the
batch service it wraps.
Celery beat reads the schedule from django-celery-beat's ``PeriodicTask`` rows, which
``jobs_schedule_ensure`` creates from these defaults (``python manage.py ensure_schedule``)
and IAM admins may then edit in the admin. ``python manage.py run_job NAME`` runs a job
once, synchronously, with ``now`` given or the current time (UTC); ``job_run`` refuses a
``now`` that would move the job's findings back in time or that lies in the future.

This registry belongs to the governance domain, at the top of the import order: it names
services of the parts below it, importing them only when a job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from governance.audit import Actor, audit_head_record, audit_record
from governance.models import Finding

# How far ahead of the clock ``job_run`` accepts a ``now``: an allowance for clock skew between hosts.
FUTURE_TOLERANCE = timedelta(minutes=5)


#: ``Crontab.zone`` for a daily job whose "today" is the organisation's (``settings.WARRANT_TIME_ZONE``).
ORGANISATION_ZONE = "organisation"


@dataclass(frozen=True)
class Crontab:
    """A cron schedule field by field as ``crontab(5)`` writes them, read in ``zone``.

    ``zone`` is ``"UTC"`` (the default: jobs that run every minute or hour, where only the instant
    matters) or ``ORGANISATION_ZONE``: a daily job that works on the organisation's calendar runs
    at a local hour in ``WARRANT_TIME_ZONE``, so that it runs once per local day across
    daylight-saving changes. Such a job is given an hour from 05:00 to 21:00, clear of the hours
    in which clocks change anywhere: celery's crontab mis-handles the hours next to a change (in
    Europe/Berlin on 2026-03-29 a 03:30 schedule fires several times between 02:30 and 03:30).
    """

    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    zone: str = "UTC"

    def timezone_name(self) -> str:
        """The IANA name of the zone the schedule is read in (the organisation's resolved now)."""
        return settings.WARRANT_TIME_ZONE if self.zone == ORGANISATION_ZONE else self.zone

    def __str__(self) -> str:
        zone = self.timezone_name()
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week} ({zone})"


@dataclass(frozen=True)
class Job:
    """One periodic job.

    ``name`` is the job's stable name (also the ``PeriodicTask`` name); ``task`` the dotted
    name of the Celery task that runs it; ``schedule`` its default schedule; ``run(now)``
    runs it once as of ``now`` (aware datetime, UTC) and returns its counts.
    ``finding_kinds_from`` is the dotted name of the tuple of finding kinds the job opens,
    refreshes and resolves (empty for a job that manages no findings), read only when needed.
    """

    name: str
    task: str
    schedule: Crontab
    run: Callable[[datetime], dict]
    description: str = ""
    finding_kinds_from: str = ""

    @property
    def finding_kinds(self) -> tuple[str, ...]:
        """The finding kinds this job manages (codes of ``governance.findings.KINDS``)."""
        return tuple(import_string(self.finding_kinds_from)) if self.finding_kinds_from else ()


def _flag_stale_credentials(now: datetime) -> dict:
    from inventory.services import credentials_flag_stale_due

    return credentials_flag_stale_due(now=now)


def _record_audit_head(now: datetime) -> dict:
    return audit_head_record(now=now)


def _expire_grants(now: datetime) -> dict:
    from delegations.services import grants_expire_due

    return grants_expire_due(now=now)


def _cancel_stale_requests(now: datetime) -> dict:
    from delegations.services import requests_cancel_stale

    return requests_cancel_stale(now=now)


def _remind_expiring_grants(now: datetime) -> dict:
    from delegations.services import grants_remind_expiring

    return grants_remind_expiring(now=now)


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
            finding_kinds_from="inventory.services.CREDENTIAL_FINDING_KINDS",
        ),
        Job(
            name="record-audit-head",
            task="governance.tasks.record_audit_head",
            schedule=Crontab(minute="0", hour="*"),
            run=_record_audit_head,
            description=(
                "Log the audit chain's head (id, hash, event count) as one INFO line, so that log shipping keeps "
                "an anchor outside the database for verify_audit --expect-head. Changes nothing."
            ),
        ),
        Job(
            name="expire-grants",
            task="delegations.tasks.expire_grants",
            schedule=Crontab(minute="*"),
            run=_expire_grants,
            description=(
                "Mark delegation grants whose expiry has come as expired, one audit event each, and tell the "
                "requester and the agent's owner. Bookkeeping: a grant stops authorising at its expiry whether "
                "or not this has run."
            ),
        ),
        Job(
            name="cancel-stale-requests",
            task="delegations.tasks.cancel_stale_requests",
            schedule=Crontab(minute="15"),
            run=_cancel_stale_requests,
            description=(
                "Cancel grant requests pending longer than the policy allows (default 7 days) or whose expiry "
                "passed before approval, and tell the requester."
            ),
        ),
        Job(
            name="remind-expiring-grants",
            task="delegations.tasks.remind_expiring_grants",
            schedule=Crontab(minute="*/15"),
            run=_remind_expiring_grants,
            description=(
                "Remind the requester and the agent's owner, once per grant, that a grant ends within the "
                "policy's reminder window (default 24 hours)."
            ),
        ),
        Job(
            name="retire-signing-keys",
            task="delegations.tasks.retire_signing_keys",
            schedule=Crontab(minute="*/15"),
            run=lambda now: import_string("delegations.tokens.signing_keys_retire")(now=now),
            description=(
                "Retire task-token signing keys that began retiring longer ago than the longest task-token "
                "lifetime plus 5 minutes and signed no token still unexpired: they leave the JWK Set and no "
                "longer verify. Idempotent."
            ),
        ),
        Job(
            name="flag-out-of-scope-decisions",
            task="delegations.tasks.flag_out_of_scope_decisions",
            schedule=Crontab(minute="*"),
            run=lambda now: import_string("delegations.decisions.decisions_flag_out_of_scope")(now=now),
            description=(
                "Raise one finding per agent denied more out-of-scope calls than the policy's threshold within "
                "its window (default 5 in 60 minutes): an agent acting beyond its intended scope (OWASP NHI5)."
            ),
        ),
        Job(
            name="prune-decision-log",
            task="delegations.tasks.prune_decision_log",
            schedule=Crontab(minute="45", hour="4"),
            run=lambda now: import_string("delegations.decisions.decision_log_prune")(now=now),
            description="Delete decision-log entries older than the policy's retention (default 90 days).",
        ),
        Job(
            name="flag-due-reassessments",
            task="governance.tasks.flag_due_reassessments",
            schedule=Crontab(minute="30", hour="3"),
            run=lambda now: import_string("governance.assessments.assessments_flag_due")(now=now),
            description=(
                "Open a reassessment-due finding for each live agent whose latest risk assessment has lapsed "
                "(or that was never assessed), and resolve it once a valid assessment exists (OWASP NHI1)."
            ),
            finding_kinds_from="governance.assessments.ASSESSMENT_FINDING_KINDS",
        ),
        Job(
            name="open-attestations",
            task="governance.tasks.open_attestations",
            schedule=Crontab(minute="0", hour="5", zone=ORGANISATION_ZONE),
            run=lambda now: import_string("governance.attestations.attestations_open_due")(now=now),
            description=(
                "Give each live agent without one its next attestation due date (today plus its tier's cadence), "
                "and open an attestation for each agent due within 14 days (or overdue) that has none."
            ),
        ),
        Job(
            name="remind-attestations",
            task="governance.tasks.remind_attestations",
            schedule=Crontab(minute="15", hour="5", zone=ORGANISATION_ZONE),
            run=lambda now: import_string("governance.attestations.attestations_remind_due")(now=now),
            description="E-mail owners 14, 3 and 1 day(s) before an attestation is due, once each.",
        ),
        Job(
            name="escalate-attestations",
            task="governance.tasks.escalate_attestations",
            schedule=Crontab(minute="30", hour="5", zone=ORGANISATION_ZONE),
            run=lambda now: import_string("governance.attestations.attestations_escalate_due")(now=now),
            description=(
                "Keep an overdue-attestation finding per unanswered attestation past its due date, routed to the "
                "agent's team and the IAM admins, and e-mail them once."
            ),
            finding_kinds_from="governance.attestations.ESCALATION_FINDING_KINDS",
        ),
        Job(
            name="enforce-attestations",
            task="governance.tasks.enforce_attestations",
            schedule=Crontab(minute="45", hour="5", zone=ORGANISATION_ZONE),
            run=lambda now: import_string("governance.attestations.attestations_enforce_due")(now=now),
            description=(
                "Past the grace period, suspend the agent of an unanswered attestation, or only flag it, as the "
                "policy says for its tier; once each, by the system, undone only by a person."
            ),
            finding_kinds_from="governance.attestations.ESCALATION_FINDING_KINDS",
        ),
    ]
}


def job_get(name: str) -> Job:
    """The job named ``name``; raises ``KeyError`` naming the known jobs when there is none."""
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def job_run(*, job: Job, now: datetime) -> dict:
    """Run ``job`` once as of ``now`` (aware datetime, UTC) and return its counts; refuse a misleading ``now``.

    Raises ``ValidationError`` keyed on ``"now"``, running nothing, when ``now`` is more than
    ``FUTURE_TOLERANCE`` (5 minutes) ahead of the clock, or earlier than the latest
    ``last_seen_at`` of the unresolved findings of the kinds the job manages: a run as of an
    older time would resolve findings whose condition still holds and rewrite their history.
    """
    current = timezone.now()
    if now > current + FUTURE_TOLERANCE:
        raise ValidationError(
            {
                "now": f"{_iso(now)} is in the future (the clock reads {_iso(current)}); a job runs as of the "
                "current time or earlier, with at most 5 minutes' allowance for clock skew."
            }
        )
    if job.finding_kinds:
        latest = Finding.objects.filter(kind__in=job.finding_kinds, status__in=Finding.UNRESOLVED).aggregate(
            latest=Max("last_seen_at")
        )["latest"]
        if latest is not None and now < latest:
            raise ValidationError(
                {
                    "now": f"{_iso(now)} is earlier than {_iso(latest)}, when {job.name} last saw its unresolved "
                    "findings; give that time or later."
                }
            )
    return job.run(now)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def jobs_schedule_ensure(*, actor: Actor) -> list[str]:
    """Create the django-celery-beat schedule rows that are missing, one per job; keep the rest.

    For each job without a ``PeriodicTask`` of its name, creates (or reuses) the matching
    ``CrontabSchedule`` in the job's zone (UTC, or ``WARRANT_TIME_ZONE`` for the daily jobs on the
    organisation's calendar) and the ``PeriodicTask`` pointing at ``job.task``, and writes a
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
                timezone=s.timezone_name(),
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
