"""The delegation jobs: expire due grants, cancel stale requests, remind before expiry — their services, their
registry entries (``governance.jobs``), the ``run_job`` command and the Celery tasks that run them."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction

from delegations import services, tasks
from delegations.models import DelegationGrant
from governance.audit import audit_verify
from governance.jobs import JOBS, job_get, job_run
from governance.services import policy_update
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, OwnerFactory, ToolFactory
from tests.support import Trail

pytestmark = pytest.mark.django_db

US = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def trail():
    return Trail()


@pytest.fixture
def requester(db):
    return OwnerFactory(username="rita.requester")


@pytest.fixture
def agent(owner):
    agent = AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    return agent


def grant(agent, requester, **kwargs):
    return GrantFactory(agent=agent, requested_by=requester, scopes=[("github", "read", "")], **kwargs)


def reload(g):
    return DelegationGrant.objects.get(pk=g.pk)


# --- grants_expire_due -----------------------------------------------------------------------


def test_the_expiry_job_run_twice_for_one_instant_expires_logs_and_mails_once(
    agent, requester, frozen_now, trail, mailoutbox, django_capture_on_commit_callbacks
):
    g = grant(agent, requester)
    now = T0 + DAY
    frozen_now.move_to(now + 30 * SECOND)  # the job runs a little late; it books the instant it was asked for
    trail.reset()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.grants_expire_due(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.grants_expire_due(now=now)

    assert (first, second) == ({"expired": 1}, {"expired": 0})
    g = reload(g)
    assert (g.status, g.ended_at, g.ended_by, g.end_reason) == ("expired", now, "system", "Reached its expiry.")
    event = trail.only("grant.expire", obj=g)
    assert (event.actor_type, event.actor_label, event.occurred_at) == ("system", "grant expiry job", now)
    assert event.object_label == str(g) == f"Grant #{g.pk} to Ticket triage"
    assert (event.before, event.after) == (
        {"status": "active"},
        {"status": "expired", "expires_at": "2026-11-16T06:00:00Z"},
    )
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["rita.requester@example.com", "olivia.owner@example.com"]
    assert mail.subject == f"[Warrant] Grant #{g.pk} for Ticket triage has expired"


def test_the_expiry_job_takes_exactly_the_grants_whose_end_has_come(agent, requester, trail):
    now = T0 + DAY
    due = grant(agent, requester, expires_at=now)
    overdue = grant(agent, requester, expires_at=now - HOUR)
    later = grant(agent, requester, expires_at=now + US)
    waiting = grant(agent, requester, status="pending", expires_at=now - HOUR)
    revoked = grant(agent, requester, status="revoked", ended_at=T0, expires_at=now - HOUR)
    assert services.grants_expire_due(now=now) == {"expired": 2}
    assert [reload(g).status for g in (due, overdue, later, waiting, revoked)] == [
        "expired", "expired", "active", "pending", "revoked",
    ]  # fmt: skip
    assert sorted(int(e.object_id) for e in trail.new()) == sorted([due.pk, overdue.pk])


def test_the_expiry_job_is_bookkeeping_enforcement_ended_on_time(agent, requester):
    g = grant(agent, requester)
    end = g.expires_at
    assert DelegationGrant.objects.active_at(end - US).filter(pk=g.pk).exists()
    assert not DelegationGrant.objects.active_at(end).exists()  # before any job has run
    assert reload(g).status == "active"
    services.grants_expire_due(now=end)
    assert not DelegationGrant.objects.active_at(end).exists()
    assert not DelegationGrant.objects.active_at(end - US).exists()  # the stored status now says it too


def test_the_expiry_job_for_an_earlier_instant_changes_nothing(agent, requester, trail):
    g = grant(agent, requester)
    assert services.grants_expire_due(now=g.expires_at - US) == {"expired": 0}
    assert reload(g).status == "active" and trail.new() == []


def test_the_expiry_job_works_in_batches_with_one_chained_event_each(
    agent, requester, trail, mailoutbox, django_capture_on_commit_callbacks
):
    due = [grant(agent, requester, expires_at=T0 + HOUR + i * SECOND) for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.grants_expire_due(now=T0 + DAY, batch_size=2) == {"expired": 5}
    assert len(callbacks) == 3  # one notification per committed batch
    assert [int(e.object_id) for e in trail.new()] == [g.pk for g in due]
    assert {e.verb for e in trail.new()} == {"grant.expire"}
    assert audit_verify() is None
    assert sorted(m.subject for m in mailoutbox) == sorted(
        f"[Warrant] Grant #{g.pk} for Ticket triage has expired" for g in due
    )


def test_the_expiry_job_sends_nothing_when_its_transaction_rolls_back(
    agent, requester, mailoutbox, django_capture_on_commit_callbacks
):
    g = grant(agent, requester)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.grants_expire_due(now=T0 + DAY)
            raise RuntimeError("the surrounding work failed")
    assert callbacks == [] and mailoutbox == []
    assert reload(g).status == "active"


# --- requests_cancel_stale -------------------------------------------------------------------


def test_stale_requests_are_cancelled_once_with_one_mail_each(
    agent, requester, trail, mailoutbox, django_capture_on_commit_callbacks
):
    now = T0
    week_old = grant(agent, requester, status="pending", requested_at=now - 7 * DAY, starts_at=now + HOUR)
    not_yet = grant(agent, requester, status="pending", requested_at=now - 7 * DAY + US, starts_at=now + HOUR)
    lapsed = grant(agent, requester, status="pending", requested_at=now - DAY, starts_at=now - DAY,
                   expires_at=now)  # fmt: skip
    active = grant(agent, requester, requested_at=now - 8 * DAY)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.requests_cancel_stale(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.requests_cancel_stale(now=now)

    assert (first, second) == ({"cancelled": 2}, {"cancelled": 0})
    assert [reload(g).status for g in (week_old, not_yet, lapsed, active)] == [
        "cancelled", "pending", "cancelled", "active",
    ]  # fmt: skip
    assert (reload(week_old).end_reason, reload(lapsed).end_reason) == (
        "Pending for more than 7 days.", "Its expiry passed before it was approved.",
    )  # fmt: skip
    assert (reload(week_old).ended_at, reload(week_old).ended_by) == (now, "system")
    events = trail.new()
    assert [(e.verb, int(e.object_id)) for e in events] == [("grant.cancel", week_old.pk), ("grant.cancel", lapsed.pk)]
    assert {e.actor_label for e in events} == {"stale request job"}
    assert events[0].object_label == str(week_old)
    assert (events[0].before, events[0].after) == (
        {"status": "pending"}, {"status": "cancelled", "reason": "Pending for more than 7 days."},
    )  # fmt: skip
    assert sorted(m.subject for m in mailoutbox) == sorted(
        f"[Warrant] Grant request #{g.pk} for Ticket triage was cancelled" for g in (week_old, lapsed)
    )
    assert all(m.to == ["rita.requester@example.com", "olivia.owner@example.com"] for m in mailoutbox)


def test_the_stale_age_follows_the_policy(agent, requester, admin_actor):
    policy_update(actor=admin_actor, grant_request_stale_days=3)
    g = grant(agent, requester, status="pending", requested_at=T0 - 3 * DAY, starts_at=T0 + HOUR)
    assert services.requests_cancel_stale(now=T0) == {"cancelled": 1}
    assert reload(g).end_reason == "Pending for more than 3 days."


# --- grants_remind_expiring ------------------------------------------------------------------


def test_an_expiry_reminder_goes_once_to_the_requester_and_the_owner(
    agent, requester, trail, mailoutbox, django_capture_on_commit_callbacks
):
    now = T0 + HOUR
    soon = grant(agent, requester)  # ends T0 + 1 d: within 24 h of now
    with django_capture_on_commit_callbacks(execute=True):
        first = services.grants_remind_expiring(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        again = services.grants_remind_expiring(now=now + HOUR)
    assert (first, again) == ({"reminded": 1}, {"reminded": 0})
    assert reload(soon).expiry_reminded_at == now
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["rita.requester@example.com", "olivia.owner@example.com"]
    assert mailoutbox[0].subject == f"[Warrant] Grant #{soon.pk} for Ticket triage expires 2026-11-16 06:00 UTC"


def test_reminders_go_only_for_grants_that_authorise_and_end_within_the_window(agent, requester):
    now = T0 + HOUR
    edge = grant(agent, requester, expires_at=now + DAY)
    beyond = grant(agent, requester, expires_at=now + DAY + SECOND)
    waiting = grant(agent, requester, status="pending")
    scheduled = grant(agent, requester, starts_at=now + HOUR, expires_at=now + 2 * HOUR)
    ended = grant(agent, requester, expires_at=now)
    blocked_agent = AgentFactory(owner=agent.owner, state=Agent.State.SUSPENDED)
    blocked = GrantFactory(agent=blocked_agent)
    assert services.grants_remind_expiring(now=now) == {"reminded": 1}
    reminded = set(DelegationGrant.objects.filter(expiry_reminded_at__isnull=False).values_list("pk", flat=True))
    assert reminded == {edge.pk}
    assert {beyond.pk, waiting.pk, scheduled.pk, ended.pk, blocked.pk}.isdisjoint(reminded)
    # An hour on, the scheduled grant has started and the other one's end is within the window.
    assert services.grants_remind_expiring(now=now + HOUR) == {"reminded": 2}
    assert reload(scheduled).expiry_reminded_at == reload(beyond).expiry_reminded_at == now + HOUR


def test_the_reminder_window_follows_the_policy_and_a_renewal_gets_its_own(agent, requester, admin_actor):
    policy_update(actor=admin_actor, grant_expiry_reminder_hours=2)
    g = grant(agent, requester, expires_at=T0 + 3 * HOUR)
    assert services.grants_remind_expiring(now=T0) == {"reminded": 0}
    assert services.grants_remind_expiring(now=T0 + HOUR) == {"reminded": 1}
    renewal = grant(agent, requester, renewal_of=g, starts_at=T0 + 3 * HOUR, expires_at=T0 + 4 * HOUR)
    assert services.grants_remind_expiring(now=T0 + 3 * HOUR) == {"reminded": 1}
    assert reload(renewal).expiry_reminded_at == T0 + 3 * HOUR


# --- the job registry and run_job ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task, schedule",
    [
        ("expire-grants", "delegations.tasks.expire_grants", ("*", "*")),
        ("cancel-stale-requests", "delegations.tasks.cancel_stale_requests", ("15", "*")),
        ("remind-expiring-grants", "delegations.tasks.remind_expiring_grants", ("*/15", "*")),
    ],
)
def test_the_delegation_jobs_are_registered_with_their_schedules(name, task, schedule):
    job = job_get(name)
    assert job.task == task and (job.schedule.minute, job.schedule.hour) == schedule
    assert job.finding_kinds == ()
    assert name in JOBS and getattr(tasks, task.rsplit(".", 1)[1]).name == task


@pytest.mark.parametrize(
    "name, service, counts",
    [
        ("expire-grants", "grants_expire_due", {"expired": 0}),
        ("cancel-stale-requests", "requests_cancel_stale", {"cancelled": 0}),
        ("remind-expiring-grants", "grants_remind_expiring", {"reminded": 0}),
    ],
)
def test_each_job_runs_its_service_as_of_the_given_instant(monkeypatch, name, service, counts):
    seen = []
    monkeypatch.setattr(f"delegations.services.{service}", lambda *, now: seen.append(now) or counts)
    assert job_run(job=job_get(name), now=T0) == counts
    assert seen == [T0]


def test_job_run_expires_stales_and_reminds_for_real(agent, requester, frozen_now):
    frozen_now.move_to(T0 + 8 * DAY)
    due = grant(agent, requester)
    stale = grant(agent, requester, status="pending", starts_at=T0 + 9 * DAY, expires_at=T0 + 10 * DAY)
    soon = grant(agent, requester, starts_at=T0 + 7 * DAY, expires_at=T0 + 8 * DAY + HOUR)
    now = T0 + 8 * DAY
    assert job_run(job=job_get("expire-grants"), now=now) == {"expired": 1}
    assert job_run(job=job_get("cancel-stale-requests"), now=now) == {"cancelled": 1}
    assert job_run(job=job_get("remind-expiring-grants"), now=now) == {"reminded": 1}
    assert (reload(due).status, reload(stale).status, reload(soon).expiry_reminded_at) == ("expired", "cancelled", now)


def test_job_run_refuses_a_future_instant(agent, requester, frozen_now):
    g = grant(agent, requester)
    with pytest.raises(ValidationError) as exc:
        job_run(job=job_get("expire-grants"), now=T0 + DAY)
    assert "now" in exc.value.message_dict
    assert reload(g).status == "active"


def test_run_job_expires_grants_and_prints_the_counts(agent, requester, frozen_now):
    g = grant(agent, requester)
    frozen_now.move_to(T0 + DAY)
    out = StringIO()
    call_command("run_job", "expire-grants", "--now", "2026-11-16T06:00:00Z", stdout=out)
    assert out.getvalue() == "expire-grants as of 2026-11-16T06:00:00+00:00:\n  expired: 1\n"
    assert reload(g).status == "expired"
    out = StringIO()
    call_command("run_job", "cancel-stale-requests", stdout=out)
    assert "cancelled: 0" in out.getvalue()
    call_command("run_job", "remind-expiring-grants", stdout=out)
    assert "reminded: 0" in out.getvalue()


# --- the Celery tasks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, service",
    [
        (tasks.expire_grants, "grants_expire_due"),
        (tasks.cancel_stale_requests, "requests_cancel_stale"),
        (tasks.remind_expiring_grants, "grants_remind_expiring"),
    ],
)
def test_each_task_runs_its_service_as_of_the_moment_it_runs(monkeypatch, frozen_now, task, service):
    seen = []
    monkeypatch.setattr(services, service, lambda *, now: seen.append(now) or {"n": 1})
    assert task.delay().get() == {"n": 1}
    assert seen == [T0]


def test_the_expiry_task_expires_due_grants(agent, requester, frozen_now):
    g = grant(agent, requester)
    frozen_now.move_to(T0 + DAY)
    assert tasks.expire_grants.apply().get() == {"expired": 1}
    assert tasks.expire_grants.apply().get() == {"expired": 0}
    assert reload(g).status == "expired"


def test_the_notification_task_sends_one_mail_per_grant(agent, requester, mailoutbox):
    a, b = grant(agent, requester), grant(agent, requester)
    assert tasks.send_grant_notifications.delay("expiring", [a.pk, b.pk]).get() == 2
    assert [m.subject.split(" for ")[0] for m in mailoutbox] == [f"[Warrant] Grant #{a.pk}", f"[Warrant] Grant #{b.pk}"]
    assert tasks.send_grant_notifications.name == "delegations.tasks.send_grant_notifications"
