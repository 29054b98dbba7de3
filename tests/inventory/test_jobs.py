"""The stale-credential job (``credentials_flag_stale_due``), rule by rule, and its idempotency.

Policy defaults: unused after 90 days, never-used grace 7 days, rotation period 90 days,
expiring within 14 days. ``now`` is T0 = 2026-11-15T06:00Z unless a test moves it.
"""

from datetime import timedelta

import pytest
import time_machine

from governance.audit import audit_verify
from governance.models import AuditEvent, Finding, Policy
from inventory.models import Agent, Credential
from inventory.services import credentials_flag_stale_due
from tests.factories import T0, AgentFactory, CredentialFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def fresh(**kwargs):
    """An active access key recently created, rotated and used, as observed at T0; override to make it stale."""
    defaults = {
        "created_at": T0 - 10 * DAY,
        "last_rotated_at": T0 - 10 * DAY,
        "last_used_at": T0 - DAY,
        "observed_at": T0,
    }
    return CredentialFactory(**{**defaults, **kwargs})


def run(now=T0):
    return credentials_flag_stale_due(now=now)


def kinds(cred) -> set[str]:
    """The kinds of the unresolved findings on ``cred``."""
    return set(
        Finding.objects.filter(subject_id=cred.pk, subject_type__model="credential")
        .exclude(status=Finding.Status.RESOLVED)
        .values_list("kind", flat=True)
    )


def snapshot():
    return sorted(Finding.objects.values_list("id", "kind", "subject_id", "status", "first_seen_at"))


def test_a_fresh_credential_raises_nothing():
    fresh()
    counts = run()
    assert not Finding.objects.exists()
    assert all(c["opened"] == 0 for c in counts.values())


# --- unused (judged as of observed_at) -----------------------------------------------------


def test_unused_when_last_use_is_older_than_90_days_before_it_was_observed():
    stale = fresh(last_used_at=T0 - 91 * DAY, created_at=T0 - 100 * DAY)
    recent = fresh(last_used_at=T0 - 89 * DAY, created_at=T0 - 100 * DAY)
    run()
    assert kinds(stale) == {"unused_credential"}
    assert kinds(recent) == set()
    f = Finding.objects.get(kind="unused_credential")
    assert (f.severity, f.framework_refs, f.agent_id) == ("medium", ["NHI1", "NHI7"], stale.agent_id)
    assert f.evidence == {"last_used_at": "2026-08-16T06:00:00Z", "observed_at": "2026-11-15T06:00:00Z"}
    assert "Last used 2026-08-16 06:00 UTC" in f.detail


def test_usage_is_judged_as_of_observed_at_not_now():
    observed = T0 - 60 * DAY
    # 120 days before now, but only 60 before the report: not unused.
    as_reported = fresh(observed_at=observed, last_used_at=T0 - 120 * DAY, created_at=T0 - 130 * DAY)
    # 91 days before the report: unused, although the report is old.
    old_report = fresh(observed_at=observed, last_used_at=observed - 91 * DAY, created_at=T0 - 200 * DAY)
    run()
    assert kinds(as_reported) == set()
    assert kinds(old_report) == {"unused_credential"}


def test_never_used_past_the_grace_period_is_unused():
    past = fresh(last_used_at=None, created_at=T0 - 8 * DAY, last_rotated_at=None)
    within = fresh(last_used_at=None, created_at=T0 - 6 * DAY, last_rotated_at=None)
    run()
    assert kinds(past) == {"unused_credential"}
    assert kinds(within) == set()
    assert Finding.objects.get().detail.endswith("before the source's report of 2026-11-15 06:00 UTC.")


def test_grace_is_counted_to_observed_at_not_to_now():
    # Created 30 days ago, never used, but reported 3 days after creation: still within grace.
    cred = fresh(last_used_at=None, created_at=T0 - 30 * DAY, last_rotated_at=None, observed_at=T0 - 27 * DAY)
    run()
    assert kinds(cred) == set()


def test_usage_not_tracked_raises_no_unused_finding():
    cert = fresh(
        kind=Credential.Kind.SIGNING_CERTIFICATE, usage_tracked=False, last_used_at=None, created_at=T0 - 60 * DAY
    )
    run()
    assert kinds(cert) == set()


# --- unrotated (judged as of now) ----------------------------------------------------------


def test_unrotated_by_the_policy_period():
    old = fresh(last_rotated_at=T0 - 91 * DAY, created_at=T0 - 200 * DAY)
    ok = fresh(last_rotated_at=T0 - 89 * DAY, created_at=T0 - 200 * DAY)
    never_rotated = fresh(last_rotated_at=None, created_at=T0 - 91 * DAY)
    run()
    assert kinds(old) == {"unrotated_credential"}
    assert kinds(ok) == set()
    assert kinds(never_rotated) == {"unrotated_credential"}
    f = Finding.objects.get(subject_id=old.pk)
    assert f.framework_refs == ["NHI7"]
    assert f.evidence == {"last_rotated_at": "2026-08-16T06:00:00Z", "rotation_period_days": 90}


def test_unrotated_by_the_credentials_own_period():
    old = fresh(rotation_period_days=30, last_rotated_at=T0 - 31 * DAY, created_at=T0 - 40 * DAY)
    ok = fresh(rotation_period_days=30, last_rotated_at=T0 - 29 * DAY, created_at=T0 - 40 * DAY)
    long_period = fresh(rotation_period_days=365, last_rotated_at=T0 - 200 * DAY, created_at=T0 - 300 * DAY)
    run()
    assert kinds(old) == {"unrotated_credential"}
    assert kinds(ok) == set()
    assert kinds(long_period) == set()
    assert Finding.objects.get(subject_id=old.pk).evidence["rotation_period_days"] == 30


def test_the_policy_period_applies_to_credentials_without_their_own():
    Policy.objects.update_or_create(pk=1, defaults={"rotation_period_days": 30})
    cred = fresh(last_rotated_at=T0 - 31 * DAY, created_at=T0 - 40 * DAY)
    run()
    assert kinds(cred) == {"unrotated_credential"}


def test_rotation_is_judged_as_of_now_not_observed_at():
    # Rotated 100 days ago; the report (40 days after the rotation) is old, the key is older.
    cred = fresh(
        last_rotated_at=T0 - 100 * DAY, created_at=T0 - 100 * DAY, observed_at=T0 - 60 * DAY, last_used_at=T0 - 61 * DAY
    )
    run()
    assert kinds(cred) == {"unrotated_credential"}


# --- expiry --------------------------------------------------------------------------------


def test_expiring_within_14_days():
    soon = fresh(expires_at=T0 + 10 * DAY)
    edge = fresh(expires_at=T0 + 14 * DAY)
    later = fresh(expires_at=T0 + 15 * DAY)
    run()
    assert kinds(soon) == kinds(edge) == {"expiring_credential"}
    assert kinds(later) == set()
    assert Finding.objects.get(subject_id=soon.pk).severity == "low"


def test_expired_but_still_active():
    expired = fresh(expires_at=T0 - DAY)
    at_now = fresh(expires_at=T0)
    run()
    assert kinds(expired) == kinds(at_now) == {"expired_credential_active"}
    assert Finding.objects.get(subject_id=expired.pk).severity == "high"


def test_an_expiring_credential_becomes_expired_as_time_passes():
    cred = fresh(expires_at=T0 + 10 * DAY)
    run()
    expiring = Finding.objects.get(kind="expiring_credential")
    run(now=T0 + 11 * DAY)
    assert kinds(cred) == {"expired_credential_active"}
    expiring.refresh_from_db()
    assert (expiring.status, expiring.resolved_at) == ("resolved", T0 + 11 * DAY)


# --- decommissioned agents and console passwords --------------------------------------------


def test_active_on_a_decommissioned_agent():
    gone = AgentFactory(state=Agent.State.DECOMMISSIONED)
    cred = fresh(agent=gone)
    run()
    assert kinds(cred) == {"credential_on_decommissioned_agent"}
    f = Finding.objects.get()
    assert (f.severity, f.framework_refs, f.evidence) == ("critical", ["NHI1"], {"agent_state": "decommissioned"})


def test_console_password_on_a_non_human_identity():
    # Judged only as a console password: neither unused nor unrotated, however old.
    pw = fresh(
        kind=Credential.Kind.CONSOLE_PASSWORD, created_at=T0 - 400 * DAY, last_rotated_at=None, last_used_at=None
    )
    run()
    assert kinds(pw) == {"console_password_on_nhi"}
    assert Finding.objects.get().framework_refs == ["NHI10", "NHI4"]


@pytest.mark.parametrize("status", [Credential.Status.INACTIVE, Credential.Status.REVOKED])
def test_an_inactive_credential_raises_nothing(status):
    gone = AgentFactory(state=Agent.State.DECOMMISSIONED)
    for kind in (Credential.Kind.ACCESS_KEY, Credential.Kind.CONSOLE_PASSWORD):
        fresh(
            agent=gone,
            kind=kind,
            status=status,
            created_at=T0 - 400 * DAY,
            last_rotated_at=None,
            last_used_at=None,
            expires_at=T0 - DAY,
        )
    run()
    assert not Finding.objects.exists()
    assert not AuditEvent.objects.exists()


def test_one_credential_can_hold_several_findings():
    cred = fresh(created_at=T0 - 200 * DAY, last_rotated_at=None, last_used_at=T0 - 150 * DAY, expires_at=T0 + 5 * DAY)
    run()
    assert kinds(cred) == {"unused_credential", "unrotated_credential", "expiring_credential"}


# --- idempotency and resolution ------------------------------------------------------------


def _mixed_estate():
    return [
        fresh(last_used_at=T0 - 91 * DAY, created_at=T0 - 100 * DAY),
        fresh(last_rotated_at=T0 - 91 * DAY, created_at=T0 - 200 * DAY),
        fresh(expires_at=T0 + 3 * DAY),
        fresh(expires_at=T0 - 3 * DAY),
        fresh(agent=AgentFactory(state=Agent.State.DECOMMISSIONED)),
        fresh(kind=Credential.Kind.CONSOLE_PASSWORD),
        fresh(),
    ]


def test_running_twice_changes_nothing_more():
    _mixed_estate()
    first = run()
    after_first = snapshot()
    events = AuditEvent.objects.count()
    assert sum(c["opened"] for c in first.values()) == 6 == len(after_first)

    second = run()
    assert snapshot() == after_first
    assert AuditEvent.objects.count() == events
    assert all(c["opened"] == c["resolved"] == c["reopened"] == 0 for c in second.values())
    assert {k: c["refreshed"] for k, c in second.items()} == {k: c["opened"] for k, c in first.items()}
    assert audit_verify() is None


def test_each_opened_finding_has_one_audit_event_by_the_job():
    _mixed_estate()
    written_at = T0 + timedelta(minutes=7)  # the job judges T0 but runs a little later
    with time_machine.travel(written_at, tick=False):
        run()
    events = AuditEvent.objects.filter(verb="finding.open")
    assert events.count() == Finding.objects.count()
    assert set(events.values_list("actor_type", "actor_label")) == {("system", "stale-credential job")}
    assert set(events.values_list("occurred_at", flat=True)) == {written_at}  # the trail's time is real
    assert set(Finding.objects.values_list("first_seen_at", flat=True)) == {T0}  # the finding's is the instant


def test_a_rerun_later_refreshes_last_seen_only():
    _mixed_estate()
    run()
    ids = set(Finding.objects.values_list("id", flat=True))
    run(now=T0 + timedelta(hours=1))
    assert set(Finding.objects.values_list("id", flat=True)) == ids
    assert set(Finding.objects.values_list("first_seen_at", flat=True)) == {T0}
    assert set(Finding.objects.values_list("last_seen_at", flat=True)) == {T0 + timedelta(hours=1)}


def test_a_run_as_of_an_earlier_time_never_moves_last_seen_back():
    cred = fresh(kind=Credential.Kind.CONSOLE_PASSWORD)
    run(now=T0 + timedelta(hours=2))
    counts = run(now=T0)
    assert counts["console_password_on_nhi"] == {"opened": 0, "refreshed": 1, "resolved": 0, "reopened": 0}
    f = Finding.objects.get(subject_id=cred.pk)
    assert (f.first_seen_at, f.last_seen_at) == (T0 + timedelta(hours=2), T0 + timedelta(hours=2))
    run(now=T0 + timedelta(hours=3))
    f.refresh_from_db()
    assert f.last_seen_at == T0 + timedelta(hours=3)


def test_a_cleared_condition_resolves_its_finding():
    cred = fresh(last_rotated_at=T0 - 91 * DAY, created_at=T0 - 200 * DAY)
    unused = fresh(last_used_at=T0 - 91 * DAY, created_at=T0 - 100 * DAY)
    run()
    # A newer report shows a rotation and a recent use.
    Credential.objects.filter(pk=cred.pk).update(last_rotated_at=T0 - DAY)
    Credential.objects.filter(pk=unused.pk).update(last_used_at=T0 + DAY, observed_at=T0 + DAY)
    counts = run(now=T0 + DAY)
    assert counts["unrotated_credential"]["resolved"] == 1
    assert counts["unused_credential"]["resolved"] == 1
    assert kinds(cred) == kinds(unused) == set()
    resolved = Finding.objects.filter(status="resolved")
    assert set(resolved.values_list("resolved_by", "resolution_note")) == {
        ("stale-credential job", "Condition cleared.")
    }
    assert AuditEvent.objects.filter(verb="finding.resolve").count() == 2


def test_a_credential_that_goes_inactive_has_its_findings_resolved():
    cred = fresh(kind=Credential.Kind.CONSOLE_PASSWORD, expires_at=T0 + DAY)
    run()
    assert kinds(cred) == {"console_password_on_nhi", "expiring_credential"}
    Credential.objects.filter(pk=cred.pk).update(status=Credential.Status.INACTIVE)
    run()
    assert kinds(cred) == set()


def test_a_finding_resolved_by_hand_reopens_while_the_condition_holds():
    cred = fresh(kind=Credential.Kind.CONSOLE_PASSWORD)
    run()
    Finding.objects.update(status="resolved", resolved_at=T0)
    run(now=T0 + DAY)
    assert kinds(cred) == {"console_password_on_nhi"}
    assert Finding.objects.count() == 2


def test_an_acknowledged_finding_is_refreshed_not_duplicated():
    cred = fresh(kind=Credential.Kind.CONSOLE_PASSWORD)
    run()
    Finding.objects.update(status="acknowledged")
    run(now=T0 + DAY)
    assert list(Finding.objects.values_list("status", flat=True)) == ["acknowledged"]
    assert kinds(cred) == {"console_password_on_nhi"}


def test_the_job_runs_in_constant_queries(django_assert_max_num_queries):
    _mixed_estate()
    run()
    for _ in range(20):
        fresh(kind=Credential.Kind.CONSOLE_PASSWORD)
    with django_assert_max_num_queries(60):
        run(now=T0 + DAY)
