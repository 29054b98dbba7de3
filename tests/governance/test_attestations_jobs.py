"""The attestation follow-through jobs — open, remind, escalate, enforce — each run twice (nothing
more happens), on the organisation's calendar, and their daily schedule across daylight-saving changes."""

import importlib
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django_celery_beat.models import PeriodicTask

from governance import attestations as att
from governance.audit import Actor
from governance.jobs import JOBS, ORGANISATION_ZONE, job_run, jobs_schedule_ensure
from governance.models import Attestation, AuditEvent, Finding
from governance.selectors import finding_list
from governance.services import policy_update
from inventory import services as inventory_services
from inventory.models import Agent
from tests.factories import T0, AgentFactory, IamAdminFactory, OwnerFactory, TeamFactory
from tests.support import Trail

pytestmark = [pytest.mark.django_db]

TODAY = date(2026, 11, 15)
DAY = timedelta(days=1)
DAILY_JOBS = ("open-attestations", "remind-attestations", "escalate-attestations", "enforce-attestations")


def open_attestation(agent, due_on=TODAY, **kwargs) -> Attestation:
    return Attestation.objects.create(agent=agent, due_on=due_on, opened_at=T0 - timedelta(days=30), **kwargs)


def verbs_since(trail: Trail) -> list[str]:
    return sorted(trail.verbs())


@pytest.fixture
def team():
    members = [OwnerFactory(username="tess.team"), OwnerFactory(username="tom.team")]
    team = TeamFactory(name="Payments", slug="payments")
    team.members.set(members)
    return team


@pytest.fixture
def watched(owner, team):
    """A high-tier agent of ``owner`` with a backup owner, in team Payments."""
    return AgentFactory(
        owner=owner, backup_owner=OwnerFactory(username="bea.backup"), team=team, risk_tier="high", name="Payer"
    )


# --- opening ---------------------------------------------------------------------------------


def test_the_open_job_schedules_live_agents_and_opens_those_due_within_14_days(frozen_now, system_actor):
    unscheduled = AgentFactory(risk_tier="critical")
    proposed = AgentFactory(state=Agent.State.PROPOSED, owner=None)
    gone = AgentFactory(state=Agent.State.DECOMMISSIONED)
    due_soon = AgentFactory(next_attestation_due=TODAY + 14 * DAY)
    overdue = AgentFactory(next_attestation_due=TODAY - 3 * DAY, state=Agent.State.SUSPENDED)
    later = AgentFactory(next_attestation_due=TODAY + 15 * DAY)
    already = AgentFactory(next_attestation_due=TODAY)
    existing = open_attestation(already)
    trail = Trail()

    assert att.attestations_open_due(now=T0) == {"scheduled": 1, "opened": 2}

    unscheduled.refresh_from_db()
    assert unscheduled.next_attestation_due == TODAY + 30 * DAY
    for agent in (proposed, gone):
        agent.refresh_from_db()
        assert agent.next_attestation_due is None
    opened = {a.agent_id: a for a in Attestation.objects.exclude(pk=existing.pk)}
    assert set(opened) == {due_soon.pk, overdue.pk}
    assert (opened[due_soon.pk].due_on, opened[overdue.pk].due_on) == (TODAY + 14 * DAY, TODAY - 3 * DAY)
    assert all(a.opened_at == T0 and a.campaign_id is None for a in opened.values())
    assert verbs_since(trail) == ["agent.attestation_due", "attestation.open", "attestation.open"]
    assert all(e.actor_type == "system" for e in trail.new())
    assert later.attestations.count() == 0

    trail.reset()
    assert att.attestations_open_due(now=T0) == {"scheduled": 0, "opened": 0}
    assert trail.new() == []


def test_the_open_job_reads_today_in_the_organisations_zone(frozen_now):
    agent = AgentFactory(next_attestation_due=date(2026, 11, 30))
    late = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)  # 2026-11-16 00:30 in Berlin
    assert att.attestations_open_due(now=late)["opened"] == 0  # UTC: due in 15 days
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        assert att.attestations_open_due(now=late)["opened"] == 1  # Berlin: due in 14 days
    assert agent.attestations.get().due_on == date(2026, 11, 30)


# --- reminders -------------------------------------------------------------------------------


def test_each_reminder_goes_out_once_on_its_day(watched, frozen_now, mailoutbox, django_capture_on_commit_callbacks):
    due = TODAY + 20 * DAY
    opened = open_attestation(watched, due_on=due)
    sent_on = []
    for offset in range(0, 22):
        now = T0 + offset * DAY
        frozen_now.move_to(now)
        before = len(mailoutbox)
        for _ in range(2):  # a second run the same day sends nothing more
            with django_capture_on_commit_callbacks(execute=True):
                att.attestations_remind_due(now=now)
        sent_on += [(due - att.org_today(now)).days] * (len(mailoutbox) - before)
    assert sent_on == [14, 3, 1]
    opened.refresh_from_db()
    assert (opened.reminded_14d_at, opened.reminded_3d_at, opened.reminded_1d_at) == (
        T0 + 6 * DAY,
        T0 + 17 * DAY,
        T0 + 19 * DAY,
    )
    assert sorted(mailoutbox[0].to) == ["bea.backup@example.com", "olivia.owner@example.com"]
    assert "due 2026-12-05 (in 14 days)" in mailoutbox[0].subject
    reminders = AuditEvent.objects.filter(verb="attestation.remind").order_by("id")
    assert [e.after["days_before"] for e in reminders] == [14, 3, 1]


def test_a_stage_whose_day_has_passed_is_not_sent_late(
    watched, frozen_now, mailoutbox, django_capture_on_commit_callbacks
):
    open_attestation(watched, due_on=TODAY + 2 * DAY)  # opened by a campaign 2 days before the deadline
    with django_capture_on_commit_callbacks(execute=True):
        counts = att.attestations_remind_due(now=T0)
    assert counts == {"reminded_14d": 0, "reminded_3d": 1, "reminded_1d": 0}
    assert len(mailoutbox) == 1


def test_overdue_and_answered_attestations_get_no_reminder(watched, owner, frozen_now):
    open_attestation(watched, due_on=TODAY - DAY)
    other = AgentFactory(owner=owner)
    open_attestation(other, due_on=TODAY + DAY, status="attested", attested_at=T0, attested_by=owner, outcome="keep")
    assert att.attestations_remind_due(now=T0) == {"reminded_14d": 0, "reminded_3d": 0, "reminded_1d": 0}


def test_reminders_count_days_in_the_organisations_zone(watched, frozen_now):
    open_attestation(watched, due_on=date(2026, 11, 30))
    late = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)
    assert att.attestations_remind_due(now=late)["reminded_14d"] == 0  # 15 days left in UTC
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        assert att.attestations_remind_due(now=late)["reminded_14d"] == 1  # 14 days left in Berlin


# --- escalation ------------------------------------------------------------------------------


def test_an_overdue_attestation_escalates_once_to_the_team_and_iam_admins(
    watched, team, frozen_now, mailoutbox, django_capture_on_commit_callbacks
):
    IamAdminFactory(username="iris.admin")
    due_today = open_attestation(AgentFactory(), due_on=TODAY)
    overdue = open_attestation(watched, due_on=TODAY - DAY)
    trail = Trail()
    with django_capture_on_commit_callbacks(execute=True):
        counts = att.attestations_escalate_due(now=T0)
    assert counts == {"opened": 1, "refreshed": 0, "resolved": 0, "reopened": 0, "escalated": 1}
    finding = Finding.objects.get()
    assert (finding.kind, finding.subject_id, finding.agent_id, finding.severity) == (
        "attestation_overdue",
        overdue.pk,
        watched.pk,
        "high",
    )
    assert finding.evidence["routed_to"] == {"team": "payments", "iam_admins": True}
    assert "routed to team Payments and the IAM admins" in finding.detail
    overdue.refresh_from_db()
    due_today.refresh_from_db()
    assert (overdue.escalated_at, due_today.escalated_at) == (T0, None)
    assert sorted(trail.verbs()) == ["attestation.escalate", "finding.open"]
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == sorted(
        [
            "olivia.owner@example.com",
            "bea.backup@example.com",
            "tess.team@example.com",
            "tom.team@example.com",
            "iris.admin@example.com",
        ]
    )

    frozen_now.move_to(T0 + DAY)
    trail.reset()
    with django_capture_on_commit_callbacks(execute=True):
        again = att.attestations_escalate_due(now=T0 + DAY)
    assert again == {"opened": 1, "refreshed": 1, "resolved": 0, "reopened": 0, "escalated": 1}  # due_today now
    assert Finding.objects.filter(subject_id=overdue.pk).count() == 1
    assert len(mailoutbox) == 2  # only the newly overdue one

    trail.reset()
    with django_capture_on_commit_callbacks(execute=True):
        third = att.attestations_escalate_due(now=T0 + DAY)
    assert third == {"opened": 0, "refreshed": 2, "resolved": 0, "reopened": 0, "escalated": 0}
    assert trail.new() == [] and len(mailoutbox) == 2


def test_the_overdue_finding_is_routed_to_the_teams_members(watched, team, other_owner, frozen_now):
    open_attestation(watched, due_on=TODAY - DAY)
    att.attestations_escalate_due(now=T0)
    member = team.members.get(username="tess.team")
    assert finding_list(user=member).filter(kind="attestation_overdue").count() == 1
    assert finding_list(user=other_owner).count() == 0


def test_an_answered_attestation_resolves_its_finding_on_the_next_run(watched, owner, frozen_now):
    opened = open_attestation(watched, due_on=TODAY - DAY)
    att.attestations_escalate_due(now=T0)
    Attestation.objects.filter(pk=opened.pk).update(
        status="attested", attested_at=T0, attested_by=owner, outcome="keep", still_needed=True
    )
    assert att.attestations_escalate_due(now=T0)["resolved"] == 1
    assert Finding.objects.get().status == "resolved"


# --- enforcement -----------------------------------------------------------------------------


def _past_grace(agent, days=15):
    return open_attestation(agent, due_on=TODAY - days * DAY)


def test_past_grace_a_high_agent_is_suspended_once_by_the_system(
    watched, admin_actor, frozen_now, mailoutbox, django_capture_on_commit_callbacks
):
    opened = _past_grace(watched)
    trail = Trail()
    with django_capture_on_commit_callbacks(execute=True):
        assert att.attestations_enforce_due(now=T0) == {"suspended": 1, "flagged": 0}
    watched.refresh_from_db()
    opened.refresh_from_db()
    assert (watched.state, opened.enforcement, opened.enforced_at) == ("suspended", "suspended", T0)
    suspend = trail.one("agent.suspend", obj=watched)
    assert (suspend.actor_type, suspend.actor_label) == ("system", "attestation enforcement job")
    assert "unanswered after 14 days of grace" in suspend.after["state_reason"]
    assert trail.one("attestation.enforce", obj=opened).after["enforcement"] == "suspended"
    finding = Finding.objects.get(kind="attestation_overdue")
    assert finding.severity == "critical"
    assert trail.one("finding.escalate").after["severity"] == "critical"
    assert any("was suspended" in m.subject for m in mailoutbox)

    trail.reset()
    assert att.attestations_enforce_due(now=T0) == {"suspended": 0, "flagged": 0}
    assert trail.new() == []

    inventory_services.agent_reactivate(actor=admin_actor, agent=watched, reason="Owner is on it.")
    frozen_now.move_to(T0 + DAY)
    assert att.attestations_enforce_due(now=T0 + DAY) == {"suspended": 0, "flagged": 0}
    watched.refresh_from_db()
    assert watched.state == "active"  # undone by a person, not redone by the job


def test_within_grace_nothing_is_enforced(watched, frozen_now):
    _past_grace(watched, days=14)
    assert att.attestations_enforce_due(now=T0) == {"suspended": 0, "flagged": 0}


@pytest.mark.parametrize("tier, enforcement", [("critical", "suspended"), ("medium", "flagged"), ("low", "flagged")])
def test_enforcement_follows_the_policy_per_tier(tier, enforcement, frozen_now):
    agent = AgentFactory(risk_tier=tier)
    opened = _past_grace(agent)
    att.attestations_enforce_due(now=T0)
    agent.refresh_from_db()
    opened.refresh_from_db()
    assert opened.enforcement == enforcement
    assert agent.state == ("suspended" if enforcement == "suspended" else "active")


def test_the_policy_decides_suspension_and_grace(admin_actor, frozen_now):
    policy_update(actor=admin_actor, attestation_suspend_medium=True, attestation_grace_days=3)
    agent = AgentFactory(risk_tier="medium")
    _past_grace(agent, days=4)
    assert att.attestations_enforce_due(now=T0) == {"suspended": 1, "flagged": 0}


def test_an_agent_already_suspended_is_flagged_not_suspended_again(watched, admin_actor, frozen_now):
    inventory_services.agent_suspend(actor=admin_actor, agent=watched, reason="Incident.")
    opened = _past_grace(watched)
    trail = Trail()
    assert att.attestations_enforce_due(now=T0) == {"suspended": 0, "flagged": 1}
    opened.refresh_from_db()
    assert opened.enforcement == "flagged"
    assert "agent.suspend" not in trail.verbs()


# --- the whole missed-attestation story, day by day -------------------------------------------------


def test_a_missed_attestation_is_reminded_escalated_and_suspended_each_exactly_once(
    watched, frozen_now, mailoutbox, django_capture_on_commit_callbacks
):
    Agent.objects.filter(pk=watched.pk).update(next_attestation_due=TODAY + 10 * DAY)
    for offset in range(0, 30):
        now = T0 + offset * DAY
        frozen_now.move_to(now)
        for _ in range(2):
            for name in DAILY_JOBS:
                with django_capture_on_commit_callbacks(execute=True):
                    job_run(job=JOBS[name], now=now)
    watched.refresh_from_db()
    opened = watched.attestations.get()
    assert (watched.state, opened.enforcement, opened.due_on) == ("suspended", "suspended", TODAY + 10 * DAY)
    assert opened.escalated_at == T0 + 11 * DAY
    assert opened.enforced_at == T0 + 25 * DAY  # due + 14 days of grace + 1
    subjects = [m.subject for m in mailoutbox]
    # Opened 10 days ahead: the first reminder goes out at once, then 3 days and 1 day before.
    assert [s.rsplit("(", 1)[1] for s in subjects if "(in " in s] == ["in 10 days)", "in 3 days)", "in 1 day)"]
    assert sum("is overdue" in s for s in subjects) == 1
    assert sum("was suspended" in s for s in subjects) == 1
    assert AuditEvent.objects.filter(verb="agent.suspend").count() == 1
    assert Finding.objects.filter(kind="attestation_overdue").count() == 1


# --- run_job and the registry -----------------------------------------------------------------------


def test_the_daily_jobs_run_with_run_job(frozen_now):
    AgentFactory(next_attestation_due=TODAY)
    out = StringIO()
    call_command("run_job", "open-attestations", "--now", "2026-11-15T06:00:00Z", stdout=out)
    assert out.getvalue().splitlines() == [
        "open-attestations as of 2026-11-15T06:00:00+00:00:",
        "  scheduled: 0",
        "  opened: 1",
    ]
    again = StringIO()
    call_command("run_job", "open-attestations", "--now", "2026-11-15T06:00:00Z", stdout=again)
    assert again.getvalue().splitlines()[-1] == "  opened: 0"
    assert Attestation.objects.count() == 1


def test_the_daily_jobs_are_registered_with_their_tasks_and_finding_kinds():
    for name in DAILY_JOBS:
        job = JOBS[name]
        assert job.schedule.zone == ORGANISATION_ZONE
        assert 5 <= int(job.schedule.hour) <= 21, "daily jobs keep clear of the hours clocks change"
        assert job.task.startswith("governance.tasks.")
    assert JOBS["escalate-attestations"].finding_kinds == ("attestation_overdue",)
    assert JOBS["enforce-attestations"].finding_kinds == ("attestation_overdue",)


def test_the_tasks_wrap_the_jobs(frozen_now):
    from governance import tasks

    AgentFactory(next_attestation_due=TODAY)
    assert tasks.open_attestations.apply().get() == {"scheduled": 0, "opened": 1}
    assert tasks.remind_attestations.apply().get() == {"reminded_14d": 0, "reminded_3d": 0, "reminded_1d": 1}
    assert tasks.escalate_attestations.apply().get()["escalated"] == 0
    assert tasks.enforce_attestations.apply().get() == {"suspended": 0, "flagged": 0}


# --- the schedule across daylight-saving changes -----------------------------------------------------


def test_celery_reads_schedules_in_the_organisations_zone_by_default():
    assert settings.CELERY_TIMEZONE == settings.WARRANT_TIME_ZONE
    import governance.settings.base as base

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARRANT_TIME_ZONE", "Europe/Berlin")
        reloaded = importlib.reload(base)
        assert (reloaded.WARRANT_TIME_ZONE, reloaded.CELERY_TIMEZONE) == ("Europe/Berlin", "Europe/Berlin")
    importlib.reload(base)


BERLIN = ZoneInfo("Europe/Berlin")


def _beat(schedule, *, last_run: datetime, until: datetime) -> list[datetime]:
    """Drive ``schedule`` the way celery beat does, with the clock pinned: ask ``is_due`` with the last
    run, run when due, and wake again after the interval it returns (at most beat's 5 minutes)."""
    runs, last, now = [], last_run, last_run + timedelta(minutes=1)
    while now < until:
        with time_machine.travel(now, tick=False):
            due, next_in = schedule.is_due(last)
        if due:
            runs.append(now)
            last = now
        now += timedelta(seconds=max(1.0, min(next_in, 300.0)))
    return runs


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)], ids=["spring-forward", "fall-back"])
@pytest.mark.parametrize("name", DAILY_JOBS)
def test_each_daily_job_runs_exactly_once_on_a_daylight_saving_day_in_berlin(name, day):
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        jobs_schedule_ensure(actor=Actor.system("test"))
    task = PeriodicTask.objects.select_related("crontab").get(name=name)
    assert str(task.crontab.timezone) == "Europe/Berlin"
    schedule = task.crontab.schedule
    hour, minute = int(JOBS[name].schedule.hour), int(JOBS[name].schedule.minute)
    previous = datetime(day.year, day.month, day.day - 1, hour, minute, tzinfo=BERLIN)
    runs = _beat(schedule, last_run=previous, until=datetime(day.year, day.month, day.day + 2, tzinfo=BERLIN))
    local = [r.astimezone(BERLIN) for r in runs]
    assert [r.date() for r in local] == [day, day + DAY]
    assert all((r.hour, r.minute) == (hour, minute) for r in local)
    # The run on the change day is 23 h (spring) or 25 h (autumn) after the one before, and "today" is that day.
    gap = runs[0] - previous.astimezone(UTC)
    assert gap == timedelta(hours=23 if day.month == 3 else 25)
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        assert att.org_today(runs[0]) == day


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)], ids=["spring-forward", "fall-back"])
def test_remaining_estimate_points_at_the_local_hour_on_the_change_day(day):
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        jobs_schedule_ensure(actor=Actor.system("test"))
    schedule = PeriodicTask.objects.get(name="open-attestations").crontab.schedule
    previous = datetime(day.year, day.month, day.day - 1, 5, 0, tzinfo=BERLIN)
    with time_machine.travel(datetime(day.year, day.month, day.day, 0, 30, tzinfo=BERLIN), tick=False):
        next_run = datetime.now(UTC) + schedule.remaining_estimate(previous)
    assert next_run.astimezone(BERLIN).replace(microsecond=0) == datetime(
        day.year, day.month, day.day, 5, 0, tzinfo=BERLIN
    )


def test_the_other_jobs_keep_their_utc_schedule():
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        jobs_schedule_ensure(actor=Actor.system("test"))
    for name, job in JOBS.items():
        zone = str(PeriodicTask.objects.get(name=name).crontab.timezone)
        assert zone == ("Europe/Berlin" if job.schedule.zone == ORGANISATION_ZONE else "UTC"), name
    assert (
        "(Europe/Berlin)"
        in AuditEvent.objects.get(verb="schedule.create", object_label="open-attestations").after["crontab"]
    )


# --- two at once (PostgreSQL: real threads, each with its own connection) -------------------------


def _at_once(**calls) -> dict:
    """Run ``calls`` at once, lined up by a barrier, each in its own thread and connection; their errors."""
    import threading

    from django.db import connection, connections

    barrier = threading.Barrier(len(calls), timeout=30)
    errors: dict = {}

    def target(name, call):
        try:
            connection.ensure_connection()
            barrier.wait()
            call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread is still running: a deadlock?"
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_two_openings_and_a_campaign_at_once_open_one_attestation_per_agent(round_, admin_user):
    from django.db import connection

    from governance.audit import audit_check

    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent transactions need PostgreSQL; SQLite serialises writers")
    agents = [AgentFactory(next_attestation_due=TODAY + DAY) for _ in range(20)]
    admin = Actor.person(admin_user)
    with time_machine.travel(T0, tick=False):
        errors = _at_once(
            first=lambda: att.attestations_open_due(now=T0),
            second=lambda: att.attestations_open_due(now=T0),
            campaign=lambda: att.campaign_launch(actor=admin, name="Q4", scope_kind="all", deadline=TODAY + 30 * DAY),
        )
    assert errors == {}
    assert Attestation.objects.filter(status="open").count() == len(agents)
    assert AuditEvent.objects.filter(verb="attestation.open").count() == len(agents)
    assert audit_check().broken is None
