"""Attestations: the cadence set by the risk tier, and every rule of answering one — who may, once,
with which checklist and outcome; what each outcome does; the audit events; nothing changed on refusal."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from delegations.models import DelegationGrant
from governance import attestations as att
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.findings import Condition, finding_raise
from governance.models import Attestation, AuditEvent, Finding, Policy
from governance.services import integration_token_issue, policy_update
from inventory import services as inventory_services
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, OwnerFactory
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

TODAY = date(2026, 11, 15)  # T0's date in UTC, the test settings' organisation zone
refuses = refusal_checker(Attestation, Agent, DelegationGrant, Finding, AuditEvent)

KEEP = {
    "still_needed": True,
    "owner_correct": True,
    "grants_appropriate": True,
    "credentials_rotated": True,
    "outcome": "keep",
}


def open_attestation(agent, due_on=TODAY, **kwargs) -> Attestation:
    return Attestation.objects.create(agent=agent, due_on=due_on, opened_at=T0, **kwargs)


def attest(actor, attestation, **answers):
    return att.attestation_attest(actor=actor, attestation=attestation, **{**KEEP, **answers})


def set_tier(agent, tier):
    Agent.objects.filter(pk=agent.pk).update(risk_tier=tier)
    agent.refresh_from_db()
    return agent


# --- the organisation's calendar ------------------------------------------------------------------


def test_today_is_the_organisations_date():
    late_evening_utc = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)
    assert att.org_today(late_evening_utc) == date(2026, 11, 15)
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        assert att.org_today(late_evening_utc) == date(2026, 11, 16)
        assert att.org_timezone().key == "Europe/Berlin"


def test_an_unknown_time_zone_is_a_configuration_error():
    with override_settings(WARRANT_TIME_ZONE="Mars/Olympus"), pytest.raises(ImproperlyConfigured, match="IANA"):
        att.org_timezone()


# --- the cadence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tier, days", [("critical", 30), ("high", 90), ("medium", 180), ("low", 365), ("unassessed", 90)]
)
def test_a_never_attested_agent_is_due_its_tiers_cadence_from_today(agent, tier, days, system_actor):
    set_tier(agent, tier)
    trail = Trail()
    with transaction.atomic():
        att.attestation_cadence_apply(agent=agent, now=T0, actor=system_actor)
    agent.refresh_from_db()
    assert agent.next_attestation_due == TODAY + timedelta(days=days)
    event = trail.only("agent.attestation_due", actor=system_actor, obj=agent)
    assert event.before == {"next_attestation_due": None}
    assert event.after == {
        "next_attestation_due": (TODAY + timedelta(days=days)).isoformat(),
        "risk_tier": tier,
        "cadence_days": days,
    }


def _apply(agent, now=T0, actor=None):
    with transaction.atomic():
        att.attestation_cadence_apply(agent=Agent.objects.select_for_update().get(pk=agent.pk), now=now, actor=actor)
    agent.refresh_from_db()
    return agent


def test_the_cadence_counts_from_the_last_attestation(agent, owner):
    set_tier(agent, "medium")
    attested = open_attestation(agent, due_on=date(2026, 10, 1))
    Attestation.objects.filter(pk=attested.pk).update(
        status="attested", attested_at=datetime(2026, 10, 1, 9, tzinfo=UTC), attested_by=owner, outcome="keep"
    )
    assert _apply(agent).next_attestation_due == date(2026, 10, 1) + timedelta(days=180)


def test_applying_the_same_cadence_again_writes_nothing(agent):
    _apply(agent)
    trail = Trail()
    _apply(agent)
    assert trail.new() == []


def test_a_tier_raise_brings_the_due_date_and_the_open_attestation_forward(agent):
    set_tier(agent, "low")
    _apply(agent)
    assert agent.next_attestation_due == TODAY + timedelta(days=365)
    opened = open_attestation(agent, due_on=TODAY + timedelta(days=365))
    set_tier(agent, "critical")
    trail = Trail()
    _apply(agent)
    assert agent.next_attestation_due == TODAY + timedelta(days=30)
    opened.refresh_from_db()
    assert opened.due_on == TODAY + timedelta(days=30)
    moved = trail.one("attestation.reschedule", obj=opened)
    assert moved.before == {"due_on": (TODAY + timedelta(days=365)).isoformat()}
    assert moved.after["due_on"] == (TODAY + timedelta(days=30)).isoformat()


def test_a_tier_lowering_never_postpones_an_open_attestation_or_a_first_due_date(agent):
    set_tier(agent, "critical")
    _apply(agent)
    opened = open_attestation(agent, due_on=TODAY + timedelta(days=30))
    set_tier(agent, "low")
    trail = Trail()
    _apply(agent)
    opened.refresh_from_db()
    assert (agent.next_attestation_due, opened.due_on) == (TODAY + timedelta(days=30), TODAY + timedelta(days=30))
    assert trail.new() == []


def test_a_decommissioned_agent_is_left_alone(agent):
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.DECOMMISSIONED)
    agent.refresh_from_db()
    trail = Trail()
    assert _apply(agent).next_attestation_due is None
    assert trail.new() == []


def test_the_cadence_uses_the_organisations_date():
    agent = AgentFactory(risk_tier="critical")
    with override_settings(WARRANT_TIME_ZONE="Europe/Berlin"):
        _apply(agent, now=datetime(2026, 11, 15, 23, 30, tzinfo=UTC))
    assert agent.next_attestation_due == date(2026, 11, 16) + timedelta(days=30)


def test_the_cadence_is_the_policys(agent, admin_actor):
    policy_update(actor=admin_actor, attestation_days_high=45)
    set_tier(agent, "high")
    assert _apply(agent).next_attestation_due == TODAY + timedelta(days=45)


# --- attesting: who --------------------------------------------------------------------------------


def test_the_owner_attests_and_the_next_due_date_moves_by_the_tiers_cadence(agent, owner, owner_actor):
    set_tier(agent, "high")
    opened = open_attestation(agent, due_on=TODAY + timedelta(days=3))
    trail = Trail()
    done = attest(owner_actor, opened, comment="  All good.  ")
    assert (done.status, done.outcome, done.attested_by, done.attested_at, done.comment) == (
        "attested",
        "keep",
        owner,
        T0,
        "All good.",
    )
    assert (done.still_needed, done.owner_correct, done.grants_appropriate, done.credentials_rotated) == (
        True,
        True,
        True,
        True,
    )
    agent.refresh_from_db()
    assert agent.next_attestation_due == TODAY + timedelta(days=90)
    event = trail.one("attestation.attest", actor=owner_actor, obj=done)
    assert event.before == {"status": "open"}
    assert event.after["outcome"] == "keep" and event.after["revoke_grants"] == []
    assert (
        trail.one("agent.attestation_due", actor=owner_actor, obj=agent).after["next_attestation_due"]
        == (TODAY + timedelta(days=90)).isoformat()
    )


def test_the_backup_owner_attests_too(agent):
    backup = OwnerFactory(username="bea.backup")
    Agent.objects.filter(pk=agent.pk).update(backup_owner=backup)
    opened = open_attestation(agent)
    assert attest(Actor.person(backup), opened).attested_by == backup


def test_an_integration_token_acting_for_the_owner_attests(agent, owner):
    token, _ = integration_token_issue(
        actor=Actor.system("test"),
        user=owner,
        name="ci",
        scopes=["inventory:write"],
        expires_at=T0 + timedelta(days=1),
    )
    done = attest(Actor.integration(token), open_attestation(agent))
    assert done.attested_by == owner
    assert AuditEvent.objects.get(verb="attestation.attest").actor_type == "integration"


@pytest.mark.parametrize("who", ["admin", "other_owner", "auditor", "system", "inactive_owner"])
def test_nobody_attests_an_agent_they_do_not_own(who, agent, owner, people):
    opened = open_attestation(agent)
    if who == "system":
        actor = Actor.system("job")
    elif who == "inactive_owner":
        type(owner).objects.filter(pk=owner.pk).update(is_active=False)
        owner.refresh_from_db()
        actor = Actor.person(owner)
    else:
        actor = Actor.person(people[who])
    refuses(PermissionDenied, attest, match="nobody attests an agent they do not own", actor=actor, attestation=opened)


def test_an_iam_admin_who_owns_the_agent_attests(admin_user):
    agent = AgentFactory(owner=admin_user)
    assert attest(Actor.person(admin_user), open_attestation(agent)).status == "attested"


# --- attesting: once --------------------------------------------------------------------------------


def test_a_decided_attestation_is_not_rewritten(agent, owner_actor):
    opened = open_attestation(agent)
    attest(owner_actor, opened)
    error = refuses(Conflict, attest, actor=owner_actor, attestation=opened, outcome="decommission")
    assert "not rewritten" in str(error)


def test_a_cancelled_attestation_cannot_be_answered(agent, owner_actor):
    opened = open_attestation(agent, status="cancelled", close_reason="Replaced.")
    refuses(Conflict, attest, match="cancelled: Replaced", actor=owner_actor, attestation=opened)


def test_permission_is_checked_before_state(agent, owner_actor, other_owner):
    opened = open_attestation(agent)
    attest(owner_actor, opened)
    refuses(PermissionDenied, attest, actor=Actor.person(other_owner), attestation=opened)


# --- attesting: the checklist and outcome ------------------------------------------------------------


@pytest.mark.parametrize(
    "answers, field",
    [
        ({"still_needed": None}, "still_needed"),
        ({"credentials_rotated": "yes"}, "credentials_rotated"),
        ({"outcome": "archive"}, "outcome"),
        ({"still_needed": False, "outcome": "keep"}, "outcome"),
        ({"still_needed": False, "outcome": "reduce"}, "outcome"),
        ({"owner_correct": False}, "owner_correct"),
        ({"grants_appropriate": False, "outcome": "keep"}, "outcome"),
        ({"credentials_rotated": False}, "comment"),
        ({"credentials_rotated": False, "comment": "   "}, "comment"),
        ({"outcome": "reduce"}, "revoke_grants"),
        ({"outcome": "keep", "revoke_grants": [1]}, "revoke_grants"),
        ({"outcome": "reduce", "revoke_grants": ["1"]}, "revoke_grants"),
    ],
)
def test_invalid_answers_are_refused_field_by_field(answers, field, agent, owner_actor):
    opened = open_attestation(agent)
    refuses(ValidationError, attest, field=field, actor=owner_actor, attestation=opened, **answers)


def test_rotation_not_done_is_accepted_with_a_comment(agent, owner_actor):
    done = attest(owner_actor, open_attestation(agent), credentials_rotated=False, comment="Rotating on Friday.")
    assert (done.credentials_rotated, done.comment) == (False, "Rotating on Friday.")


def test_reduce_revokes_only_the_chosen_active_grants(agent, owner_actor):
    keep = GrantFactory(agent=agent)
    drop = GrantFactory(agent=agent)
    child = GrantFactory(agent=AgentFactory(), parent=drop)
    opened = open_attestation(agent)
    trail = Trail()
    attest(owner_actor, opened, grants_appropriate=False, outcome="reduce", revoke_grants=[drop.pk])
    statuses = dict(DelegationGrant.objects.values_list("pk", "status"))
    assert statuses == {keep.pk: "active", drop.pk: "revoked", child.pk: "revoked"}
    revoked = [e for e in trail.new() if e.verb == "grant.revoke"]
    assert sorted(int(e.object_id) for e in revoked) == sorted([drop.pk, child.pk])
    assert all(e.actor_label == owner_actor.label for e in revoked)
    assert f"Attestation #{opened.pk}" in revoked[0].after["reason"]
    assert trail.one("attestation.attest").after["revoke_grants"] == [drop.pk]


@pytest.mark.parametrize("status", ["expired", "revoked", "pending"])
def test_reduce_refuses_grants_that_are_not_active(status, agent, owner_actor):
    grant = GrantFactory(agent=agent, status=status)
    opened = open_attestation(agent)
    refuses(
        ValidationError,
        attest,
        field="revoke_grants",
        match=f"#{grant.pk}",
        actor=owner_actor,
        attestation=opened,
        outcome="reduce",
        revoke_grants=[grant.pk],
    )


def test_reduce_refuses_another_agents_grant(agent, owner_actor):
    other = GrantFactory(agent=AgentFactory(owner=agent.owner))
    refuses(
        ValidationError,
        attest,
        field="revoke_grants",
        actor=owner_actor,
        attestation=open_attestation(agent),
        outcome="reduce",
        revoke_grants=[other.pk],
    )


def test_decommission_decommissions_the_agent_and_revokes_its_grants(agent, owner_actor):
    grant = GrantFactory(agent=agent)
    opened = open_attestation(agent)
    Agent.objects.filter(pk=agent.pk).update(next_attestation_due=TODAY)
    trail = Trail()
    done = attest(owner_actor, opened, still_needed=False, outcome="decommission", comment="Replaced by v2.")
    agent.refresh_from_db()
    grant.refresh_from_db()
    assert (done.status, agent.state, agent.state_reason, grant.status) == (
        "attested",
        "decommissioned",
        "Replaced by v2.",
        "revoked",
    )
    assert agent.next_attestation_due is None
    assert "agent.decommission" in trail.verbs() and "attestation.cancel" not in trail.verbs()


def test_attesting_resolves_the_overdue_finding(agent, owner_actor):
    opened = open_attestation(agent, due_on=TODAY - timedelta(days=2))
    with transaction.atomic():
        finding, _ = finding_raise(
            actor=Actor.system("job"), kind="attestation_overdue", condition=Condition(opened, agent.pk), now=T0
        )
    attest(owner_actor, opened)
    finding.refresh_from_db()
    assert (finding.status, finding.resolution_note) == ("resolved", "The owner attested.")


def test_an_agent_the_system_suspended_stays_suspended_until_a_person_reactivates_it(agent, owner_actor, admin_actor):
    opened = open_attestation(agent, due_on=TODAY - timedelta(days=20))
    att.attestations_enforce_due(now=T0)
    agent.refresh_from_db()
    assert agent.state == "suspended"
    attest(owner_actor, opened)
    agent.refresh_from_db()
    assert agent.state == "suspended"
    inventory_services.agent_reactivate(actor=admin_actor, agent=agent, reason="Owner attested.")
    agent.refresh_from_db()
    assert agent.state == "active"


def test_attesting_a_decommissioned_agent_is_a_conflict(agent, owner_actor):
    opened = open_attestation(agent)
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.DECOMMISSIONED)
    refuses(Conflict, attest, match="decommissioned", actor=owner_actor, attestation=opened)


def test_policy_helpers_follow_the_policy():
    policy = Policy.current()
    assert [policy.attestation_suspends(t) for t in ("critical", "high", "medium", "low", "unassessed")] == [
        True,
        True,
        False,
        False,
        True,
    ]
