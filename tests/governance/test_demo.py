"""``seed_demo``: demo data through the services, every lifecycle state, idempotent."""

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from governance import roles
from governance.audit import audit_verify
from governance.models import AuditEvent, Finding
from inventory.models import Agent, Credential, Team, Tool, WorkloadIdentity
from tests.factories import T0


def _counts() -> dict:
    return {
        "users": get_user_model().objects.count(),
        "teams": Team.objects.count(),
        "agents": Agent.objects.count(),
        "identities": WorkloadIdentity.objects.count(),
        "credentials": Credential.objects.count(),
        "tools": Tool.objects.count(),
        "findings": sorted(Finding.objects.values_list("kind", "status", "last_seen_at")),
        "audit_events": AuditEvent.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing_and_covers_every_state(frozen_now):
    call_command("seed_demo", stdout=StringIO())
    first = _counts()
    frozen_now.shift(3600)
    call_command("seed_demo", stdout=StringIO())
    assert _counts() == first

    assert set(Agent.objects.values_list("state", flat=True)) == set(Agent.State.values)
    assert {Agent.RiskTier.LOW, Agent.RiskTier.MEDIUM, Agent.RiskTier.HIGH, Agent.RiskTier.CRITICAL} <= set(
        Agent.objects.values_list("risk_tier", flat=True)
    )
    assert len(set(Agent.objects.values_list("environment", flat=True))) == 3
    assert Agent.objects.exclude(backup_owner=None).exists()
    assert not Agent.objects.filter(state__in=Agent.LIVE_STATES, owner=None).exists()
    assert {Tool.Transport.STDIO, Tool.Transport.HTTP} <= set(Tool.objects.values_list("transport", flat=True))
    assert set(Tool.objects.values_list("destination", flat=True)) == set(Tool.Destination.values)

    open_kinds = Counter(Finding.objects.filter(status=Finding.Status.OPEN).values_list("kind", flat=True))
    assert set(open_kinds) >= {
        "unused_credential",
        "unrotated_credential",
        "expiring_credential",
        "expired_credential_active",
        "console_password_on_nhi",
        "credential_on_decommissioned_agent",
    }
    assert Credential.objects.filter(kind=Credential.Kind.CONSOLE_PASSWORD).exists()
    assert Credential.objects.filter(last_used_at=None).exists()
    assert Credential.objects.filter(agent__state=Agent.State.DECOMMISSIONED, status="active").exists()
    assert audit_verify() is None


@pytest.mark.django_db
def test_seed_demo_people_and_roles(frozen_now):
    call_command("seed_demo", stdout=StringIO())
    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and roles.is_iam_admin(admin)
    for username in ("admin", "olivia", "oscar", "aude"):
        assert User.objects.get(username=username).check_password("warrant-demo")
    assert roles.is_agent_owner(User.objects.get(username="olivia"))
    assert roles.is_agent_owner(User.objects.get(username="oscar"))
    aude = User.objects.get(username="aude")
    assert roles.is_auditor(aude) and not roles.is_iam_admin(aude)
    # Every agent, identity, credential and tool was written by a service, with its audit event.
    registered = AuditEvent.objects.filter(verb="agent.register").count()
    assert registered == Agent.objects.count()
    assert AuditEvent.objects.filter(verb="credential.record").count() == Credential.objects.count()
    assert AuditEvent.objects.filter(verb="tool.add").count() == Tool.objects.count()


@pytest.mark.django_db
def test_seed_demo_grants_cover_the_approval_queue(frozen_now):
    """The demo has grants to approve (one needing two approvers, one of them given), active ones
    (one ending within days, for the dashboard), a denied and a revoked one — all through the services."""
    from delegations.models import DelegationGrant

    call_command("seed_demo", stdout=StringIO())
    states = sorted(DelegationGrant.objects.with_state_at(T0).values_list("state", flat=True))
    assert states == ["active", "active", "denied", "pending", "pending", "pending", "revoked"]
    two = DelegationGrant.objects.get(agent__slug="invoice-agent", scopes__tool_name="payments-api")
    assert (two.approvals_required, two.approvals.count(), two.status) == (2, 1, "pending")
    assert DelegationGrant.objects.filter(expires_at__lte=T0 + timedelta(days=7), status="active").count() == 1


@pytest.mark.django_db
def test_seed_demo_decisions_show_each_kind_of_denial(frozen_now):
    from delegations.models import DecisionLog

    call_command("seed_demo", stdout=StringIO())
    denials = {tuple(e.reasons) for e in DecisionLog.objects.filter(outcome="deny")}
    assert denials == {("access_not_granted",), ("intent_not_allowed",), ("grant_revoked",)}
    assert all(e.agent.slug == "support-triage" for e in DecisionLog.objects.all())
