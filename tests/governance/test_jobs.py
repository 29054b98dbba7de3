"""The periodic-job registry and its commands: ``run_job``, ``ensure_schedule``."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from governance.celery import app as celery_app
from governance.jobs import JOBS, job_get
from governance.models import AuditEvent, Finding
from inventory.models import Credential
from tests.factories import T0, CredentialFactory

pytestmark = pytest.mark.django_db


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
    assert out.splitlines() == ["flag-stale-credentials\t0 3 * * * (UTC)\tinventory.tasks.flag_stale_credentials"]


def test_run_job_runs_once_as_of_now_and_prints_its_counts():
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
def test_run_job_refuses_bad_arguments_and_runs_nothing(args, message):
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
    assert _call("ensure_schedule").splitlines() == ["flag-stale-credentials: created"]
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
    event = AuditEvent.objects.get(verb="schedule.create")
    assert (event.actor_type, event.object_label) == ("system", "flag-stale-credentials")


def test_ensure_schedule_twice_gives_the_same_rows():
    _call("ensure_schedule")
    rows = _schedule_rows()
    assert _call("ensure_schedule").splitlines() == ["flag-stale-credentials: kept"]
    assert _schedule_rows() == rows
    assert AuditEvent.objects.filter(verb="schedule.create").count() == 1


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
    PeriodicTask.objects.all().delete()
    assert _call("ensure_schedule").splitlines() == ["flag-stale-credentials: created"]
    assert PeriodicTask.objects.filter(name="flag-stale-credentials").exists()


def test_the_schedule_is_due_at_three_utc():
    _call("ensure_schedule")
    schedule = PeriodicTask.objects.get(name="flag-stale-credentials").crontab.schedule
    with time_machine.travel(datetime(2026, 11, 15, 2, 0, tzinfo=UTC), tick=False):
        due_in = schedule.remaining_estimate(datetime(2026, 11, 14, 3, 0, tzinfo=UTC))
    assert due_in.total_seconds() == 3600


def test_run_job_on_the_sample_credential_report_opens_nine_credential_findings_once(admin_actor):
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
