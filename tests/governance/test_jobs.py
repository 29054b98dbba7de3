"""The periodic-job registry and its commands: ``run_job``, ``ensure_schedule``."""

import logging
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from governance.celery import app as celery_app
from governance.jobs import JOBS, job_get, job_run
from governance.models import AuditEvent, Finding
from inventory.models import Credential
from inventory.services import CREDENTIAL_FINDING_KINDS
from tests.factories import T0, CredentialFactory

pytestmark = pytest.mark.django_db

#: Every periodic job, in the order the registry lists them (the specification of what runs).
ALL_JOBS = [
    "flag-stale-credentials",
    "record-audit-head",
    "expire-grants",
    "cancel-stale-requests",
    "remind-expiring-grants",
    "retire-signing-keys",
    "flag-out-of-scope-decisions",
    "prune-decision-log",
    "flag-due-reassessments",
    "open-attestations",
    "remind-attestations",
    "escalate-attestations",
    "enforce-attestations",
]


def _call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- the registry --------------------------------------------------------------------------


def test_the_stale_credential_job_runs_daily_at_three_utc():
    job = JOBS["flag-stale-credentials"]
    assert job.task == "inventory.tasks.flag_stale_credentials"
    s = job.schedule
    assert (s.minute, s.hour, s.day_of_month, s.month_of_year, s.day_of_week) == ("0", "3", "*", "*", "*")


def test_the_audit_head_job_runs_hourly_and_manages_no_findings():
    job = JOBS["record-audit-head"]
    assert job.task == "governance.tasks.record_audit_head"
    s = job.schedule
    assert (s.minute, s.hour, s.day_of_month, s.month_of_year, s.day_of_week) == ("0", "*", "*", "*", "*")
    assert job.finding_kinds == ()


def test_the_stale_credential_job_manages_the_credential_finding_kinds():
    assert JOBS["flag-stale-credentials"].finding_kinds == CREDENTIAL_FINDING_KINDS


def test_every_job_names_a_registered_celery_task():
    celery_app.loader.import_default_modules()
    for job in JOBS.values():
        assert job.task in celery_app.tasks, job.task


def test_run_passes_now_to_the_service(monkeypatch):
    seen = []
    monkeypatch.setattr("inventory.services.credentials_flag_stale_due", lambda *, now: seen.append(now) or {})
    JOBS["flag-stale-credentials"].run(T0)
    assert seen == [T0]


def test_an_unknown_job_is_a_key_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="flag-stale-credentials"):
        job_get("flag-everything")


# --- run_job -------------------------------------------------------------------------------


def test_run_job_lists_the_jobs_with_their_schedules():
    out = _call("run_job", "--list")
    assert out.splitlines() == [
        "flag-stale-credentials\t0 3 * * * (UTC)\tinventory.tasks.flag_stale_credentials",
        "record-audit-head\t0 * * * * (UTC)\tgovernance.tasks.record_audit_head",
        "expire-grants\t* * * * * (UTC)\tdelegations.tasks.expire_grants",
        "cancel-stale-requests\t15 * * * * (UTC)\tdelegations.tasks.cancel_stale_requests",
        "remind-expiring-grants\t*/15 * * * * (UTC)\tdelegations.tasks.remind_expiring_grants",
        "retire-signing-keys\t*/15 * * * * (UTC)\tdelegations.tasks.retire_signing_keys",
        "flag-out-of-scope-decisions\t* * * * * (UTC)\tdelegations.tasks.flag_out_of_scope_decisions",
        "prune-decision-log\t45 4 * * * (UTC)\tdelegations.tasks.prune_decision_log",
        "flag-due-reassessments\t30 3 * * * (UTC)\tgovernance.tasks.flag_due_reassessments",
        "open-attestations\t0 5 * * * (UTC)\tgovernance.tasks.open_attestations",
        "remind-attestations\t15 5 * * * (UTC)\tgovernance.tasks.remind_attestations",
        "escalate-attestations\t30 5 * * * (UTC)\tgovernance.tasks.escalate_attestations",
        "enforce-attestations\t45 5 * * * (UTC)\tgovernance.tasks.enforce_attestations",
    ]


def test_run_job_runs_once_as_of_now_and_prints_its_counts(frozen_now):
    cred = CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    out = _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T08:00:00+02:00")
    assert out.splitlines()[0] == "flag-stale-credentials as of 2026-11-15T06:00:00+00:00:"
    assert "  console_password_on_nhi: opened 1, refreshed 0, resolved 0, reopened 0" in out.splitlines()
    f = Finding.objects.get()
    assert (f.subject_id, f.first_seen_at) == (cred.pk, T0)
    again = _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:00:00Z")
    assert "  console_password_on_nhi: opened 0, refreshed 1, resolved 0, reopened 0" in again.splitlines()
    assert Finding.objects.count() == 1


def test_run_job_defaults_to_the_current_time(frozen_now):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    out = _call("run_job", "flag-stale-credentials")
    assert "as of 2026-11-15T06:00:00+00:00" in out
    assert Finding.objects.get().first_seen_at == T0


@pytest.mark.parametrize(
    "args, message",
    [
        (["flag-everything"], "unknown job 'flag-everything'"),
        ([], "Name a job"),
        (["flag-stale-credentials", "--now", "2026-11-15T06:00:00"], "has no UTC offset"),
        (["flag-stale-credentials", "--now", "yesterday"], "not an ISO 8601 datetime"),
    ],
)
def test_run_job_refuses_bad_arguments_and_runs_nothing(args, message, frozen_now):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    with pytest.raises(CommandError, match=message):
        call_command("run_job", *args)
    assert not Finding.objects.exists()
    assert not AuditEvent.objects.exists()


# --- ensure_schedule -----------------------------------------------------------------------


def _schedule_rows():
    return (
        sorted(PeriodicTask.objects.values_list("id", "name", "task", "crontab_id", "enabled")),
        sorted(
            CrontabSchedule.objects.values_list("id", "minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        ),
    )


def test_ensure_schedule_creates_a_periodic_task_per_job():
    assert _call("ensure_schedule").splitlines() == [f"{name}: created" for name in ALL_JOBS]
    task = PeriodicTask.objects.get(name="flag-stale-credentials")
    assert task.task == "inventory.tasks.flag_stale_credentials" and task.enabled
    c = task.crontab
    assert (c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year, str(c.timezone)) == (
        "0",
        "3",
        "*",
        "*",
        "*",
        "UTC",
    )
    head = PeriodicTask.objects.get(name="record-audit-head")
    assert head.task == "governance.tasks.record_audit_head" and head.enabled
    c = head.crontab
    assert (c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year, str(c.timezone)) == (
        "0",
        "*",
        "*",
        "*",
        "*",
        "UTC",
    )
    events = AuditEvent.objects.filter(verb="schedule.create").order_by("id")
    assert [(e.actor_type, e.object_label) for e in events] == [("system", name) for name in ALL_JOBS]


def test_ensure_schedule_twice_gives_the_same_rows():
    _call("ensure_schedule")
    rows = _schedule_rows()
    assert _call("ensure_schedule").splitlines() == [f"{name}: kept" for name in ALL_JOBS]
    assert _schedule_rows() == rows
    assert AuditEvent.objects.filter(verb="schedule.create").count() == len(ALL_JOBS)


def test_ensure_schedule_keeps_an_admins_edits():
    _call("ensure_schedule")
    edited, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="5", timezone="UTC")
    PeriodicTask.objects.filter(name="flag-stale-credentials").update(crontab=edited, enabled=False)
    _call("ensure_schedule")
    task = PeriodicTask.objects.get(name="flag-stale-credentials")
    assert (task.crontab_id, task.enabled) == (edited.pk, False)
    assert PeriodicTask.objects.filter(task="inventory.tasks.flag_stale_credentials").count() == 1


def test_ensure_schedule_recreates_a_deleted_schedule():
    _call("ensure_schedule")
    PeriodicTask.objects.filter(name="flag-stale-credentials").delete()
    assert _call("ensure_schedule").splitlines() == [
        "flag-stale-credentials: created",
        *(f"{name}: kept" for name in ALL_JOBS[1:]),
    ]
    assert PeriodicTask.objects.filter(name="flag-stale-credentials").exists()


def test_the_schedule_is_due_at_three_utc():
    _call("ensure_schedule")
    schedule = PeriodicTask.objects.get(name="flag-stale-credentials").crontab.schedule
    with time_machine.travel(datetime(2026, 11, 15, 2, 0, tzinfo=UTC), tick=False):
        due_in = schedule.remaining_estimate(datetime(2026, 11, 14, 3, 0, tzinfo=UTC))
    assert due_in.total_seconds() == 3600


def test_the_audit_head_is_due_every_hour_on_the_hour():
    _call("ensure_schedule")
    schedule = PeriodicTask.objects.get(name="record-audit-head").crontab.schedule
    with time_machine.travel(datetime(2026, 11, 15, 6, 40, tzinfo=UTC), tick=False):
        due_in = schedule.remaining_estimate(datetime(2026, 11, 15, 6, 0, tzinfo=UTC))
    assert due_in.total_seconds() == 20 * 60


def test_run_job_on_the_sample_credential_report_opens_nine_credential_findings_once(admin_actor, frozen_now):
    from pathlib import Path

    from django.contrib.contenttypes.models import ContentType

    from inventory.importers import run_import

    report = Path(__file__).resolve().parent.parent / "fixtures" / "get-credential-report.json"
    run_import(actor=admin_actor, source="aws-credential-report", content=report.read_bytes(), filename=report.name)
    credential_findings = Finding.objects.filter(subject_type=ContentType.objects.get_for_model(Credential))

    _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:00:00Z")
    first = sorted(credential_findings.values_list("id", "kind", "subject_id", "status"))
    assert len(first) == 9
    _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:00:00Z")
    assert sorted(credential_findings.values_list("id", "kind", "subject_id", "status")) == first


# --- run_job --now: no rewriting the findings' history -------------------------------------


def _findings_state():
    return sorted(Finding.objects.values_list("id", "kind", "status", "first_seen_at", "last_seen_at", "resolved_at"))


@pytest.mark.parametrize(
    "now, message",
    [
        ("1900-01-01T00:00:00Z", r"1900-01-01T00:00:00Z is earlier than 2026-11-15T06:00:00Z"),
        ("2026-11-15T05:59:59Z", r"2026-11-15T05:59:59Z is earlier than 2026-11-15T06:00:00Z"),
        ("2026-11-15T06:05:01Z", r"2026-11-15T06:05:01Z is in the future"),
        ("2027-01-01T00:00:00Z", r"2027-01-01T00:00:00Z is in the future \(the clock reads 2026-11-15T06:00:00Z\)"),
    ],
)
def test_run_job_refuses_a_now_that_would_rewrite_history_and_writes_nothing(frozen_now, now, message):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD, expires_at=T0 + timedelta(days=10))
    _call("run_job", "flag-stale-credentials")
    before, events = _findings_state(), AuditEvent.objects.count()
    assert Finding.objects.filter(status="open").count() == 2

    with pytest.raises(CommandError, match=rf"--now refused: {message}") as exc:
        call_command("run_job", "flag-stale-credentials", "--now", now)
    assert exc.value.returncode != 0
    assert _findings_state() == before
    assert AuditEvent.objects.count() == events


def test_run_job_accepts_now_up_to_five_minutes_ahead_and_the_last_seen_time(frozen_now):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:05:00Z")
    assert Finding.objects.get().last_seen_at == T0 + timedelta(minutes=5)
    out = _call("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:05:00Z")
    assert "  console_password_on_nhi: opened 0, refreshed 1, resolved 0, reopened 0" in out.splitlines()


def test_run_job_accepts_a_past_now_when_the_job_has_no_unresolved_findings_that_late(frozen_now):
    cred = CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    _call("run_job", "flag-stale-credentials")
    # Resolved findings, and findings of kinds the job does not manage, do not hold it back.
    Finding.objects.update(status=Finding.Status.RESOLVED, resolved_at=T0)
    out = _call("run_job", "flag-stale-credentials", "--now", "2026-11-14T06:00:00Z")
    assert "  console_password_on_nhi: opened 1, refreshed 0, resolved 0, reopened 0" in out.splitlines()
    reopened = Finding.objects.get(status="open")
    assert (reopened.subject_id, reopened.first_seen_at) == (cred.pk, T0 - timedelta(days=1))


def test_job_run_refuses_with_a_validation_error_on_now(frozen_now):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    job = JOBS["flag-stale-credentials"]
    job_run(job=job, now=T0)
    with pytest.raises(ValidationError) as exc:
        job_run(job=job, now=T0 - timedelta(seconds=1))
    assert set(exc.value.message_dict) == {"now"}
    with pytest.raises(ValidationError) as exc:
        job_run(job=JOBS["record-audit-head"], now=T0 + timedelta(minutes=6))
    assert "in the future" in exc.value.message_dict["now"][0]


def test_a_job_without_findings_accepts_a_past_now(frozen_now):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    _call("run_job", "flag-stale-credentials")
    assert "events: " in _call("run_job", "record-audit-head", "--now", "2026-01-01T00:00:00Z")


# --- record-audit-head ---------------------------------------------------------------------


def _head_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "governance.audit" and r.levelno == logging.INFO]


def test_record_audit_head_logs_the_head_and_writes_nothing(frozen_now, caplog):
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    _call("run_job", "flag-stale-credentials")
    head = AuditEvent.objects.order_by("-id").first()
    events = AuditEvent.objects.count()
    caplog.set_level(logging.INFO, logger="governance.audit")

    out = _call("run_job", "record-audit-head")

    assert _head_lines(caplog) == [f"audit head id={head.pk} hash={head.hash} events={events} at=2026-11-15T06:00:00Z"]
    assert out.splitlines() == [
        "record-audit-head as of 2026-11-15T06:00:00+00:00:",
        f"  id: {head.pk}",
        f"  hash: {head.hash}",
        f"  events: {events}",
    ]
    assert AuditEvent.objects.count() == events


def test_record_audit_head_on_an_empty_log(frozen_now, caplog):
    caplog.set_level(logging.INFO, logger="governance.audit")
    _call("run_job", "record-audit-head")
    assert _head_lines(caplog) == ["audit head none events=0 at=2026-11-15T06:00:00Z"]
    assert not AuditEvent.objects.exists()


def test_the_celery_task_logs_the_head(frozen_now, caplog):
    from governance.tasks import record_audit_head

    _call("ensure_schedule")
    head = AuditEvent.objects.order_by("-id").first()
    caplog.set_level(logging.INFO, logger="governance.audit")
    result = record_audit_head.delay().get()
    n = len(ALL_JOBS)  # ensure_schedule wrote one schedule.create event per job
    assert result == {"id": head.pk, "hash": head.hash, "events": n}
    assert _head_lines(caplog) == [f"audit head id={head.pk} hash={head.hash} events={n} at=2026-11-15T06:00:00Z"]
    assert AuditEvent.objects.count() == n
