"""DESIGN.md invariants 1, 4, 5 and 6 — the rules of delegation grants — each a test named after it.

Invariant 2 (every write in one transaction with its audit event) is tested service by service in
``test_services``; invariant 10 (concurrency) has its own tests on PostgreSQL.
"""

from datetime import UTC, datetime, timedelta

import pytest

from delegations import services
from delegations.models import Approval, DelegationGrant, GrantScope
from delegations.services import ScopeRequest as S
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.models import AuditEvent, Policy
from governance.services import policy_update
from inventory import services as inventory_services
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, ToolFactory
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

US = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

refuses = refusal_checker(DelegationGrant, GrantScope, Approval, AuditEvent, Agent)


def make_agent(owner, tier="low", name=None, **tools):
    agent = AgentFactory(owner=owner, risk_tier=tier, **({"name": name} if name else {}))
    for tool, (levels, data_classes) in (tools or {"github": (["read", "write"], [])}).items():
        ToolFactory(agent=agent, name=tool, access_levels=levels, data_classes=data_classes)
    return agent


def ask(actor, agent, scopes=None, **kwargs):
    kwargs.setdefault("expires_at", T0 + DAY)
    return services.grant_request(
        actor=actor, agent=agent, scopes=scopes or [S("github", "read")], purpose="p", justification="j", **kwargs
    )


def authorises(grant, t) -> bool:
    return DelegationGrant.objects.active_at(t).filter(pk=grant.pk).exists()


# --- invariant 1 -----------------------------------------------------------------------------


def test_invariant_1_a_grant_authorises_only_inside_its_window_whatever_the_job_did(owner, owner_actor, approver_actor):
    """Invariant 1: a grant authorises only while ``starts_at <= now < expires_at`` with status active; the expiry
    job is bookkeeping. A grant expiring at 23:59:59Z authorises at 23:59:58.999999Z and not at 23:59:59Z."""
    agent = make_agent(owner)
    start = datetime(2026, 11, 15, 8, 0, tzinfo=UTC)
    end = datetime(2026, 11, 15, 23, 59, 59, tzinfo=UTC)
    g = ask(owner_actor, agent, starts_at=start, expires_at=end)
    assert not authorises(g, start)  # pending: approved by nobody yet
    services.grant_approve(actor=approver_actor, grant=g)

    assert not authorises(g, start - US)
    assert authorises(g, start)
    assert authorises(g, end - US)
    assert not authorises(g, end)  # no job has run: the stored status still reads active
    assert DelegationGrant.objects.get(pk=g.pk).status == "active"
    assert DelegationGrant.objects.with_state_at(end).get(pk=g.pk).state == "expired"

    assert services.grants_expire_due(now=end) == {"expired": 1}
    assert not authorises(g, end) and not authorises(g, end - US)


def test_invariant_1_a_grant_of_an_agent_that_is_not_active_authorises_nothing_at_once(
    owner, owner_actor, admin_actor, approver_actor
):
    """Invariant 1: the agent must be active — suspension blocks its grants at once, with no job in between."""
    agent = make_agent(owner)
    g = services.grant_approve(actor=approver_actor, grant=ask(owner_actor, agent))
    assert authorises(g, T0)
    inventory_services.agent_suspend(actor=admin_actor, agent=agent, reason="Odd calls.")
    assert not authorises(g, T0)
    assert DelegationGrant.objects.get(pk=g.pk).status == "active"  # nothing was rewritten; the rule reads the state
    inventory_services.agent_reactivate(actor=admin_actor, agent=agent, reason="Cleared.")
    assert authorises(g, T0)


def test_invariant_1_every_grant_up_the_chain_must_authorise_too(owner, owner_actor):
    """Invariant 1: a grant authorises only while every grant up its chain (and its agent) does — here a chain of
    depth 3, whose root is revoked, then whose middle link expires by time, then whose root agent is suspended."""
    a, b, c = (make_agent(owner, name=n) for n in "ABC")
    root = GrantFactory(agent=a, expires_at=T0 + 3 * HOUR)
    middle = GrantFactory(agent=b, parent=root, expires_at=T0 + 2 * HOUR)
    leaf = GrantFactory(agent=c, parent=middle, expires_at=T0 + 2 * HOUR)
    assert leaf.depth == 3 and authorises(leaf, T0)

    DelegationGrant.objects.filter(pk=root.pk).update(status="revoked", ended_at=T0)
    assert not authorises(leaf, T0) and not authorises(middle, T0)
    DelegationGrant.objects.filter(pk=root.pk).update(status="active", ended_at=None)

    DelegationGrant.objects.filter(pk=leaf.pk).update(expires_at=T0 + 3 * HOUR)  # as if it outlived its parent
    assert authorises(leaf, T0 + 2 * HOUR - US)
    assert not authorises(leaf, T0 + 2 * HOUR)  # the middle link ended by time

    Agent.objects.filter(pk=a.pk).update(state=Agent.State.SUSPENDED)
    assert not authorises(leaf, T0)


# --- invariant 4 -----------------------------------------------------------------------------


def test_invariant_4_nobody_approves_a_grant_they_requested(owner, admin_actor, approver_actor):
    """Invariant 4: separation of duties — the requester never approves, on the request path or on a renewal."""
    agent = make_agent(owner)
    g = ask(admin_actor, agent)
    refuses(PermissionDenied, services.grant_approve, actor=admin_actor, grant=g)
    services.grant_approve(actor=approver_actor, grant=g)
    renewal = services.grant_renew(actor=admin_actor, grant=g, duration=DAY)
    refuses(PermissionDenied, services.grant_approve, actor=admin_actor, grant=renewal)
    services.grant_cancel(actor=admin_actor, grant=renewal)  # one renewal at a time
    (bulk,) = services.grants_renew_bulk(actor=admin_actor, items=[(g, 2 * DAY)])
    refuses(PermissionDenied, services.grant_approve, actor=admin_actor, grant=bulk.renewal)


def test_invariant_4_the_owner_never_approves_their_own_agents_grants(approver_actor):
    """Invariant 4: an IAM admin who owns (or backs up) the agent cannot approve its grants or its renewals."""
    olga = IamAdminFactory(username="olga.owner")
    bea = OwnerFactory(username="bea.backup")
    agent = make_agent(olga)
    Agent.objects.filter(pk=agent.pk).update(backup_owner=bea)
    g = ask(Actor.person(bea), agent)
    refuses(PermissionDenied, services.grant_approve, actor=Actor.person(olga), grant=g)
    services.grant_approve(actor=approver_actor, grant=g)
    renewal = services.grant_renew(actor=Actor.person(olga), grant=g, duration=DAY)
    refuses(PermissionDenied, services.grant_approve, actor=Actor.person(olga), grant=renewal)


@pytest.mark.parametrize(
    "tier, data_classes",
    [("high", []), ("critical", []), ("unassessed", []), ("low", ["payment"]), ("low", ["health"]),
     ("medium", ["production"])],
)  # fmt: skip
def test_invariant_4_high_risk_or_sensitive_data_needs_two_distinct_approvers_neither_the_requester(
    owner, owner_actor, approver_actor, second_approver_actor, tier, data_classes, admin_actor
):
    """Invariant 4: tier high or critical (or unassessed), or a scope reaching payment, health or production data,
    needs two distinct approvers, neither the requester; each approver decides once; it activates at the second."""
    agent = make_agent(owner, tier, github=(["read"], data_classes))
    g = ask(admin_actor, agent, expires_at=T0 + 8 * HOUR)
    assert g.approvals_required == 2
    refuses(PermissionDenied, services.grant_approve, actor=admin_actor, grant=g)
    services.grant_approve(actor=approver_actor, grant=g)
    assert not authorises(g, T0)
    refuses(Conflict, services.grant_approve, actor=approver_actor, grant=g)
    services.grant_approve(actor=second_approver_actor, grant=g)
    assert authorises(g, T0)
    assert set(Approval.objects.filter(grant=g).values_list("approver__username", flat=True)) == {
        "amara.approver", "bruno.approver",
    }  # fmt: skip


def test_invariant_4_other_grants_need_one_approver(owner, owner_actor, approver_actor):
    """Invariant 4: a low- or medium-tier agent with no payment, health or production reach needs one approver."""
    for tier in ("low", "medium"):
        agent = make_agent(owner, tier, github=(["read"], ["pii", "source_code"]))
        g = ask(owner_actor, agent)
        assert g.approvals_required == 1
        services.grant_approve(actor=approver_actor, grant=g)
        assert authorises(g, T0)


# --- invariant 5 -----------------------------------------------------------------------------


@pytest.fixture
def parent(owner):
    """An active grant of agent A: github read on repo:acme/*, one day from T0."""
    return GrantFactory(agent=make_agent(owner, name="A"), scopes=[("github", "read", "repo:acme/*")])


def test_invariant_5_a_childs_scopes_are_a_subset_of_its_parents(parent, owner, owner_actor):
    """Invariant 5: a child grant asks only for scopes within its parent's (same tool and access, a narrower or
    equal resource pattern); read+write under a read parent is refused on ``scopes``."""
    b = make_agent(owner, name="B")
    refuses(ValidationError, ask, field="scopes", actor=owner_actor, agent=b, parent=parent,
            scopes=[S("github", "read", "repo:acme/x"), S("github", "write", "repo:acme/x")])  # fmt: skip
    for wider in ("repo:*", ""):
        refuses(ValidationError, ask, field="scopes", actor=owner_actor, agent=b, parent=parent,
                scopes=[S("github", "read", wider)])  # fmt: skip
    for narrower in ("repo:acme/x", "repo:acme/x*"):
        assert ask(owner_actor, b, [S("github", "read", narrower)], parent=parent).depth == 2


def test_invariant_5_a_child_never_outlives_nor_precedes_its_parent(owner, owner_actor):
    """Invariant 5: a child's expiry is no later than its parent's, and it does not start before it."""
    parent = GrantFactory(
        agent=make_agent(owner, name="A"), starts_at=T0 - timedelta(minutes=1), scopes=[("github", "read", "")]
    )
    b = make_agent(owner, name="B")
    refuses(ValidationError, ask, field="expires_at", actor=owner_actor, agent=b, parent=parent,
            expires_at=parent.expires_at + SECOND)  # fmt: skip
    refuses(ValidationError, ask, field="starts_at", actor=owner_actor, agent=b, parent=parent,
            starts_at=parent.starts_at - SECOND, expires_at=parent.expires_at)  # fmt: skip
    assert ask(owner_actor, b, parent=parent, expires_at=parent.expires_at).expires_at == parent.expires_at


def test_invariant_5_a_chain_is_bounded_to_the_policy_depth_3_by_default(owner, owner_actor):
    """Invariant 5: delegation depth is bounded by policy (default 3 grants in a chain, the root included)."""
    assert Policy.current().grant_max_depth == 3
    a, b, c, d = (make_agent(owner, name=n) for n in "ABCD")
    root = GrantFactory(agent=a, scopes=[("github", "read", "")])
    middle = GrantFactory(agent=b, parent=root, scopes=[("github", "read", "")])
    third = ask(owner_actor, c, parent=middle)
    assert third.depth == 3
    DelegationGrant.objects.filter(pk=third.pk).update(status="active", decided_at=T0)
    refuses(ValidationError, ask, field="parent", actor=owner_actor, agent=d, parent=third)


def test_invariant_5_a_chain_has_no_cycles(owner, owner_actor):
    """Invariant 5: no agent appears twice in a chain (A → B → A is refused)."""
    a, b = make_agent(owner, name="A"), make_agent(owner, name="B")
    root = GrantFactory(agent=a, scopes=[("github", "read", "")])
    middle = GrantFactory(agent=b, parent=root, scopes=[("github", "read", "")])
    refuses(ValidationError, ask, field="parent", match="no cycles", actor=owner_actor, agent=a, parent=middle)


def test_invariant_5_revoking_a_grant_revokes_its_descendants(owner, owner_actor):
    """Invariant 5: revoking a grant revokes its active descendants (and cancels pending ones), one audit event
    each, in the same transaction."""
    a, b, c = (make_agent(owner, name=n) for n in "ABC")
    root = GrantFactory(agent=a, scopes=[("github", "read", "")])
    child = GrantFactory(agent=b, parent=root, scopes=[("github", "read", "")])
    grandchild = GrantFactory(agent=c, parent=child)
    asked = GrantFactory(agent=c, parent=root, status="pending")
    trail = Trail()
    services.grant_revoke(actor=owner_actor, grant=root, reason="Incident.")
    assert [DelegationGrant.objects.get(pk=g.pk).status for g in (root, child, grandchild, asked)] == [
        "revoked", "revoked", "revoked", "cancelled",
    ]  # fmt: skip
    assert sorted((e.verb, int(e.object_id)) for e in trail.new()) == sorted(
        [("grant.revoke", root.pk), ("grant.revoke", child.pk), ("grant.revoke", grandchild.pk),
         ("grant.cancel", asked.pk)]
    )  # fmt: skip
    assert not DelegationGrant.objects.active_at(T0).exists()


def test_invariant_5_a_child_needs_a_parent_that_authorises_now(parent, owner, owner_actor, frozen_now):
    """Invariant 5: no work is handed on under a parent that has ended, by time or by revocation."""
    b = make_agent(owner, name="B")
    services.grant_revoke(actor=owner_actor, grant=parent, reason="Done.")
    refuses(Conflict, ask, actor=owner_actor, agent=b, parent=parent, expires_at=T0 + HOUR)
    other = GrantFactory(agent=parent.agent, scopes=[("github", "read", "")], expires_at=T0 + HOUR)
    frozen_now.move_to(T0 + HOUR)  # it ended by time; the expiry job has not run
    refuses(Conflict, ask, actor=owner_actor, agent=b, parent=other, expires_at=T0 + 2 * HOUR)


# --- invariant 6 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tier, cap", [("critical", 8 * HOUR), ("high", 24 * HOUR), ("medium", 7 * DAY), ("low", 30 * DAY),
                  ("unassessed", 24 * HOUR)],
)  # fmt: skip
def test_invariant_6_grant_length_is_capped_per_tier_and_refused_not_trimmed(owner, owner_actor, tier, cap):
    """Invariant 6: the policy caps a grant's length by the agent's tier (critical 8 h, high 24 h, medium 7 d,
    low 30 d; unassessed as high); a request over the cap is refused and nothing is written — never trimmed."""
    agent = make_agent(owner, tier)
    refuses(ValidationError, ask, field="expires_at", match="refused, not trimmed", actor=owner_actor, agent=agent,
            expires_at=T0 + cap + SECOND)  # fmt: skip
    g = ask(owner_actor, agent, expires_at=T0 + cap)
    assert g.expires_at - g.starts_at == cap


def test_invariant_6_the_cap_is_the_policys_on_every_path(owner, owner_actor, admin_actor, approver_actor):
    """Invariant 6: the cap comes from the policy IAM admins edit, and holds for requests, renewals and bulk
    renewals alike."""
    policy_update(actor=admin_actor, grant_max_hours_low=14 * 24)
    agent = make_agent(owner)
    refuses(ValidationError, ask, field="expires_at", actor=owner_actor, agent=agent, expires_at=T0 + 14 * DAY + SECOND)
    g = services.grant_approve(actor=approver_actor, grant=ask(owner_actor, agent, expires_at=T0 + 14 * DAY))
    refuses(ValidationError, services.grant_renew, field="expires_at", actor=owner_actor, grant=g, duration=15 * DAY)
    (result,) = services.grants_renew_bulk(actor=owner_actor, items=[(g, 30 * DAY)])
    assert result.renewal is None and "30 d is longer than the 14 d allowed" in result.error
