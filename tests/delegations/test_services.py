"""Every delegation service rule: who may, in which state, with which input; its audit event; no change on refusal.

Also the permission functions the services, pages and API share (``delegations.permissions``).
"""

from datetime import timedelta

import pytest

from delegations import services
from delegations.models import Approval, DelegationGrant, GrantScope
from delegations.permissions import (
    can_cancel_grant,
    can_renew_grant,
    can_request_grant,
    can_revoke_grant,
    can_view_grant,
    decision_refusal,
    visible_grants_q,
)
from delegations.services import ScopeRequest as S
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.models import AuditEvent, Policy
from governance.services import policy_update
from inventory import services as inventory_services
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, ToolFactory, UserFactory
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

#: Proves a refused call changed nothing a delegation service could change.
refuses = refusal_checker(DelegationGrant, GrantScope, Approval, AuditEvent, Agent)


# --- helpers -------------------------------------------------------------------------------


def make_agent(owner, tier="low", *, backup_owner=None, state=Agent.State.ACTIVE, tools=None, **kwargs):
    """An agent of ``owner`` with ``tools`` ({name: (access levels, data classes)}; default github read/write)."""
    agent = AgentFactory(owner=owner, backup_owner=backup_owner, risk_tier=tier, state=state, **kwargs)
    for name, (levels, data_classes) in (tools or {"github": (["read", "write"], [])}).items():
        ToolFactory(agent=agent, name=name, access_levels=levels, data_classes=data_classes)
    return agent


def ask(actor, agent, scopes=None, *, hours=24, **kwargs):
    """``grant_request`` with plausible defaults: github read, from now, for ``hours``."""
    kwargs.setdefault("expires_at", T0 + timedelta(hours=hours))
    kwargs.setdefault("purpose", "Read the issue tracker.")
    kwargs.setdefault("justification", "Ticket triage needs it.")
    return services.grant_request(actor=actor, agent=agent, scopes=scopes or [S("github", "read")], **kwargs)


def reload(grant):
    return DelegationGrant.objects.get(pk=grant.pk)


def status_of(*grants):
    return [reload(g).status for g in grants]


@pytest.fixture
def trail():
    return Trail()


@pytest.fixture
def backup(db):
    return OwnerFactory(username="bea.backup")


@pytest.fixture
def backup_actor(backup):
    return Actor.person(backup)


@pytest.fixture
def agent(owner, backup):
    """A low-tier agent of ``owner`` backed up by ``backup``: github (read, write), jira (read, write, execute)."""
    return make_agent(
        owner,
        backup_owner=backup,
        name="Ticket triage",
        slug="ticket-triage",
        tools={"github": (["read", "write"], []), "jira": (["read", "write", "execute"], ["pii"])},
    )


@pytest.fixture
def helper(owner):
    """A second low-tier agent of ``owner`` (github read/write), to hand work on to."""
    return make_agent(owner, name="Helper", slug="helper")


@pytest.fixture
def actors(owner, backup, other_owner, admin_user, auditor, approver, second_approver):
    return {
        name: Actor.person(user)
        for name, user in {
            "owner": owner,
            "backup": backup,
            "other_owner": other_owner,
            "admin": admin_user,
            "auditor": auditor,
            "approver": approver,
            "second_approver": second_approver,
        }.items()
    }


@pytest.fixture
def pending(agent, owner_actor):
    """A pending one-approval request by the owner: github read for 24 h."""
    return ask(owner_actor, agent)


# --- request ---------------------------------------------------------------------------------


def test_an_owner_requests_a_grant_with_one_audit_event(agent, owner, owner_actor, trail):
    g = ask(
        owner_actor,
        agent,
        [S("github", "read"), S("jira", "write", "PROJ-*")],
        purpose="  Triage tickets.  ",
        intents=["triage", "summarise", "triage"],
    )
    g = reload(g)
    assert (g.status, g.requested_by, g.requested_at, g.starts_at, g.expires_at) == (
        "pending", owner, T0, T0, T0 + DAY,
    )  # fmt: skip
    assert (g.purpose, g.intents, g.depth, g.parent, g.approvals_required) == (
        "Triage tickets.", ["summarise", "triage"], 1, None, 1,
    )  # fmt: skip
    assert g.decided_at is None and g.requested_via == ""
    scopes = list(g.scopes.values_list("tool__name", "tool_name", "access", "resource_pattern", "data_classes"))
    assert scopes == [("github", "github", "read", "", []), ("jira", "jira", "write", "PROJ-*", ["pii"])]
    event = trail.only("grant.request", actor=owner_actor, obj=g)
    assert event.after["status"] == "pending" and event.after["agent"] == "ticket-triage"
    assert event.after["scopes"] == ["github:read", "jira:write on PROJ-*"]
    assert event.after["expires_at"] == "2026-11-16T06:00:00Z"
    assert (event.after["approvals_required"], event.after["parent"], event.after["renewal_of"]) == (1, None, None)
    assert event.occurred_at == T0


@pytest.mark.parametrize("who", ["backup", "admin"])
def test_the_backup_owner_and_iam_admins_may_request(agent, actors, who, trail):
    g = ask(actors[who], agent)
    assert g.requested_by == actors[who].user
    trail.only("grant.request", actor=actors[who], obj=g)


@pytest.mark.parametrize("who", ["other_owner", "auditor", "system", "inactive-owner"])
def test_nobody_else_may_request(agent, actors, owner, who):
    if who == "system":
        actor = Actor.system("a job")
    elif who == "inactive-owner":
        owner.is_active = False
        owner.save()
        actor = Actor.person(owner)
    else:
        actor = actors[who]
    refuses(PermissionDenied, ask, actor=actor, agent=agent)


def test_an_integration_request_records_which_integration_asked(agent, owner):
    actor = Actor("integration", "7", "CI (token wt_abc, for olivia.owner)", user=owner)
    g = ask(actor, agent)
    assert reload(g).requested_via == "CI (token wt_abc, for olivia.owner)"
    assert g.requested_by == owner
    long_label = Actor("integration", "8", "x" * 250, user=owner)
    assert reload(ask(long_label, agent)).requested_via == "x" * 200


@pytest.mark.parametrize("state", ["proposed", "suspended", "decommissioned"])
def test_an_agent_that_is_not_active_cannot_be_granted_anything(owner, owner_actor, state):
    agent = make_agent(owner, state=state)
    refuses(Conflict, ask, match=state, actor=owner_actor, agent=agent)


def test_naive_datetimes_are_refused_on_their_field(agent, owner_actor):
    naive = T0.replace(tzinfo=None)
    refuses(ValidationError, ask, field="expires_at", actor=owner_actor, agent=agent, expires_at=naive + DAY)
    refuses(ValidationError, ask, field="starts_at", actor=owner_actor, agent=agent, starts_at=naive)


def test_an_expiry_purpose_and_justification_are_required(agent, owner_actor):
    exc = refuses(ValidationError, ask, actor=owner_actor, agent=agent, expires_at=None, purpose=" ", justification="")
    assert set(exc.message_dict) == {"expires_at", "purpose", "justification"}


def test_a_grant_may_start_up_to_five_minutes_ago_but_no_earlier(agent, owner_actor):
    refuses(ValidationError, ask, field="starts_at", actor=owner_actor, agent=agent, starts_at=T0 - 5 * MINUTE - SECOND)
    g = ask(owner_actor, agent, starts_at=T0 - 5 * MINUTE)
    assert g.starts_at == T0 - 5 * MINUTE


@pytest.mark.parametrize(
    "starts_at, expires_at",
    [(T0 + HOUR, T0 + HOUR), (T0 + HOUR, T0 + HOUR - SECOND), (T0 - 4 * MINUTE, T0 - MINUTE)],
    ids=["ends-at-start", "ends-before-start", "already-over"],
)
def test_the_expiry_comes_after_the_start_and_after_now(agent, owner_actor, starts_at, expires_at):
    refuses(
        ValidationError,
        ask,
        field="expires_at",
        actor=owner_actor,
        agent=agent,
        starts_at=starts_at,
        expires_at=expires_at,
    )


@pytest.mark.parametrize(
    "scopes, match",
    [
        ([], "at least one scope"),
        ([S("slack", "read")], "no tool named 'slack'"),
        ([S("github", "admin")], "unknown access level"),
        ([S("github", "execute")], "offers only read, write"),
        ([S("github", "read", "repo:*/x")], "only at its end"),
        ([S("github", "read", "repo acme")], "spaces"),
        ([S("github", "read"), S("github", "read")], "asked for twice"),
    ],
    ids=["none", "unknown-tool", "unknown-access", "access-not-offered", "inner-wildcard", "space", "twice"],
)
def test_bad_scopes_are_refused_on_scopes(agent, owner_actor, scopes, match):
    exc = refuses(ValidationError, services.grant_request, field="scopes", actor=owner_actor, agent=agent,
                  scopes=scopes, purpose="p", justification="j", expires_at=T0 + DAY)  # fmt: skip
    assert match in " ".join(exc.message_dict["scopes"])


def test_a_tool_of_another_agent_is_not_a_scope_of_this_one(agent, helper, owner_actor):
    ToolFactory(agent=helper, name="slack")
    refuses(ValidationError, ask, field="scopes", actor=owner_actor, agent=agent, scopes=[S("slack", "read")])


@pytest.mark.parametrize("intents", [["triage", " "], "triage", [None]])
def test_intents_are_a_list_of_tags(agent, owner_actor, intents):
    refuses(ValidationError, ask, field="intents", actor=owner_actor, agent=agent, intents=intents)


@pytest.mark.parametrize(
    "purpose", ["x" * 301, "Read \u202eelif"], ids=["too-long", "right-to-left-override"]
)  # fmt: skip
def test_the_purpose_is_checked(agent, owner_actor, purpose):
    refuses(ValidationError, ask, field="purpose", actor=owner_actor, agent=agent, purpose=purpose)


def test_a_grant_acts_on_behalf_of_an_active_person_only(agent, owner_actor):
    gone = UserFactory(is_active=False)
    refuses(ValidationError, ask, field="on_behalf_of", actor=owner_actor, agent=agent, on_behalf_of=gone)
    person = UserFactory()
    g = ask(owner_actor, agent, on_behalf_of=person)
    assert reload(g).on_behalf_of == person


# --- caps per tier (invariant 6) -------------------------------------------------------------

CAPS = {"critical": 8, "high": 24, "medium": 7 * 24, "low": 30 * 24, "unassessed": 24}


@pytest.mark.parametrize("tier, hours", CAPS.items())
def test_the_default_cap_of_each_tier_is_allowed_to_the_second(owner, owner_actor, tier, hours, trail):
    agent = make_agent(owner, tier)
    assert services.grant_cap(agent) == timedelta(hours=hours)
    g = ask(owner_actor, agent, expires_at=T0 + timedelta(hours=hours))
    assert g.duration == timedelta(hours=hours)
    trail.only("grant.request", obj=g)


@pytest.mark.parametrize("tier, hours", CAPS.items())
def test_a_request_over_the_cap_is_refused_not_trimmed(owner, owner_actor, tier, hours):
    agent = make_agent(owner, tier)
    exc = refuses(
        ValidationError, ask, field="expires_at", actor=owner_actor, agent=agent,
        expires_at=T0 + timedelta(hours=hours) + SECOND,
    )  # fmt: skip
    message = exc.message_dict["expires_at"][0]
    assert "refused, not trimmed" in message
    assert f"{services._fmt_duration(timedelta(hours=hours))} allowed" in message


def test_the_cap_message_states_both_lengths_plainly(owner, owner_actor):
    agent = make_agent(owner, "high")
    exc = refuses(ValidationError, ask, actor=owner_actor, agent=agent, expires_at=T0 + DAY + SECOND)
    assert exc.message_dict["expires_at"] == [
        "24 h 0 min 1 s is longer than the 1 d allowed for a high-tier agent; ask for 1 d or less "
        "(requests over the cap are refused, not trimmed)."
    ]
    exc = refuses(ValidationError, ask, actor=owner_actor, agent=agent, expires_at=T0 + 30 * HOUR + 30 * MINUTE)
    assert exc.message_dict["expires_at"][0].startswith("30 h 30 min is longer than the 1 d allowed")


def test_the_cap_is_measured_from_the_start_not_from_now(owner, owner_actor):
    agent = make_agent(owner, "high")
    g = ask(owner_actor, agent, starts_at=T0 + 10 * DAY, expires_at=T0 + 11 * DAY)
    assert (g.starts_at, g.duration) == (T0 + 10 * DAY, DAY)


def test_the_cap_follows_the_policy(owner, owner_actor, admin_actor):
    agent = make_agent(owner, "low")
    policy_update(actor=admin_actor, grant_max_hours_low=14 * 24)
    assert services.grant_cap(agent) == 14 * DAY
    refuses(ValidationError, ask, field="expires_at", actor=owner_actor, agent=agent, expires_at=T0 + 15 * DAY)
    assert ask(owner_actor, agent, expires_at=T0 + 14 * DAY).duration == 14 * DAY


# --- approvals required (invariant 4) ---------------------------------------------------------


@pytest.mark.parametrize(
    "tier, required", [("low", 1), ("medium", 1), ("high", 2), ("critical", 2), ("unassessed", 2)]
)  # fmt: skip
def test_two_approvers_for_high_critical_and_unassessed_agents(owner, owner_actor, tier, required):
    g = ask(owner_actor, make_agent(owner, tier), hours=8)
    assert g.approvals_required == required


@pytest.mark.parametrize(
    "data_classes, required",
    [
        (["payment"], 2),
        (["health"], 2),
        (["production"], 2),
        (["pii", "production"], 2),
        (["pii", "secrets"], 1),
        ([], 1),
    ],
)
def test_two_approvers_when_a_tool_reaches_payment_health_or_production_data(
    owner, owner_actor, data_classes, required
):
    agent = make_agent(owner, "low", tools={"github": (["read"], []), "ledger": (["read"], data_classes)})
    assert ask(owner_actor, agent, [S("github", "read")]).approvals_required == 1
    assert ask(owner_actor, agent, [S("github", "read"), S("ledger", "read")]).approvals_required == required


def test_the_number_of_approvers_follows_the_policy(owner, admin_actor):
    low, high = make_agent(owner, "low"), make_agent(owner, "high")
    policy_update(actor=admin_actor, grant_approvals_elevated=3, grant_approvals_standard=2)
    policy = Policy.current()
    assert services.approvals_required_for(high, [[]], policy) == 3
    assert services.approvals_required_for(low, [["payment"]], policy) == 3
    assert services.approvals_required_for(low, [["pii"]], policy) == 2
    assert services.approvals_required_for(low, []) == 2


# --- approve ---------------------------------------------------------------------------------


def test_one_approval_activates_a_standard_request(pending, approver, approver_actor, trail):
    g = services.grant_approve(actor=approver_actor, grant=pending, comment=" Fine for a day. ")
    g = reload(g)
    assert (g.status, g.decided_by, g.decided_at, g.decision_reason) == ("active", approver, T0, "Fine for a day.")
    assert list(g.approvals.values_list("approver", "decision", "comment", "decided_at")) == [
        (approver.pk, "approve", "Fine for a day.", T0)
    ]
    event = trail.only("grant.approve", actor=approver_actor, obj=g)
    assert (event.before["status"], event.after["status"]) == ("pending", "active")
    assert (event.after["approvals"], event.after["approvals_required"]) == (1, 1)
    assert DelegationGrant.objects.active_at(T0).filter(pk=g.pk).exists()


def test_an_elevated_request_activates_exactly_at_the_second_approval(
    owner, owner_actor, approver_actor, second_approver, second_approver_actor, trail
):
    g = ask(owner_actor, make_agent(owner, "high"))
    assert g.approvals_required == 2
    trail.reset()
    services.grant_approve(actor=approver_actor, grant=g, comment="ok")
    first = reload(g)
    assert (first.status, first.decided_at, first.decided_by) == ("pending", None, None)
    assert not DelegationGrant.objects.active_at(T0).exists()
    assert trail.only("grant.approve", actor=approver_actor).after["approvals"] == 1
    trail.reset()
    services.grant_approve(actor=second_approver_actor, grant=g)
    second = reload(g)
    assert (second.status, second.decided_at, second.decided_by) == ("active", T0, second_approver)
    event = trail.only("grant.approve", actor=second_approver_actor, obj=g)
    assert (event.after["approvals"], event.after["status"]) == (2, "active")
    assert second.approvals.count() == 2


def test_nobody_approves_a_request_they_made(agent, admin_actor, admin_user):
    g = ask(admin_actor, agent)
    refuses(PermissionDenied, services.grant_approve, match="You requested this grant", actor=admin_actor, grant=g)
    assert isinstance(decision_refusal(admin_user, g), PermissionDenied)


@pytest.mark.parametrize("role", ["owner", "backup_owner"])
def test_an_iam_admin_who_owns_or_backs_up_the_agent_does_not_approve_its_grants(role, actors):
    admin_owner = IamAdminFactory(username="olga.admin-owner")
    other = OwnerFactory()
    agent = make_agent(**({"owner": admin_owner, "backup_owner": other} if role == "owner" else
                          {"owner": other, "backup_owner": admin_owner}))  # fmt: skip
    g = ask(Actor.person(other), agent)
    refuses(PermissionDenied, services.grant_approve, match="You own or back up this agent",
            actor=Actor.person(admin_owner), grant=g)  # fmt: skip


def test_the_person_a_grant_acts_for_does_not_approve_it(agent, owner_actor):
    person = IamAdminFactory()
    g = ask(owner_actor, agent, on_behalf_of=person)
    refuses(PermissionDenied, services.grant_approve, match="on your behalf", actor=Actor.person(person), grant=g)


@pytest.mark.parametrize("who", ["owner", "other_owner", "auditor", "system"])
def test_only_iam_admins_decide(pending, actors, who):
    actor = Actor.system("a job") if who == "system" else actors[who]
    refuses(PermissionDenied, services.grant_approve, actor=actor, grant=pending)
    refuses(PermissionDenied, services.grant_deny, actor=actor, grant=pending, reason="No.")


def test_an_approver_decides_once(owner, owner_actor, approver_actor):
    g = ask(owner_actor, make_agent(owner, "high"))
    services.grant_approve(actor=approver_actor, grant=g)
    refuses(Conflict, services.grant_approve, match="decides once", actor=approver_actor, grant=g)
    refuses(
        Conflict, services.grant_deny, match="decides once", actor=approver_actor, grant=g, reason="Changed my mind."
    )
    assert reload(g).status == "pending"


@pytest.mark.parametrize("status", ["active", "denied", "cancelled", "expired", "revoked"])
def test_only_a_pending_request_is_decided(agent, approver_actor, status):
    g = GrantFactory(agent=agent, status=status, ended_at=T0 if status != "active" else None)
    refuses(Conflict, services.grant_approve, match="no longer pending", actor=approver_actor, grant=g)
    refuses(Conflict, services.grant_deny, match="no longer pending", actor=approver_actor, grant=g, reason="No.")


def test_an_approver_may_shorten_the_grant(pending, approver_actor, trail):
    g = services.grant_approve(actor=approver_actor, grant=pending, expires_at=T0 + 12 * HOUR)
    assert reload(g).expires_at == T0 + 12 * HOUR
    event = trail.only("grant.approve")
    assert (event.before["expires_at"], event.after["expires_at"]) == ("2026-11-16T06:00:00Z", "2026-11-15T18:00:00Z")
    assert not DelegationGrant.objects.active_at(T0 + 12 * HOUR).exists()


def test_an_approver_may_keep_the_requested_expiry(pending, approver_actor):
    assert (
        reload(services.grant_approve(actor=approver_actor, grant=pending, expires_at=T0 + DAY)).expires_at == T0 + DAY
    )


def test_a_shortening_of_a_two_approver_request_is_kept_for_the_second(
    owner, owner_actor, approver_actor, second_approver_actor
):
    g = ask(owner_actor, make_agent(owner, "high"))
    services.grant_approve(actor=approver_actor, grant=g, expires_at=T0 + 6 * HOUR)
    assert reload(g).expires_at == T0 + 6 * HOUR
    refuses(ValidationError, services.grant_approve, field="expires_at", actor=second_approver_actor, grant=g,
            expires_at=T0 + 7 * HOUR)  # fmt: skip
    g = services.grant_approve(actor=second_approver_actor, grant=g)
    assert (reload(g).status, reload(g).expires_at) == ("active", T0 + 6 * HOUR)


@pytest.mark.parametrize(
    "expires_at, match",
    [
        (T0 + DAY + SECOND, "never lengthen"),
        (T0, "after now"),
        (T0 - HOUR, "after now"),
        (T0.replace(tzinfo=None) + HOUR, "offset"),
    ],
    ids=["lengthened", "now", "past", "naive"],
)
def test_an_approver_never_lengthens_the_grant(pending, approver_actor, expires_at, match):
    refuses(ValidationError, services.grant_approve, match=match, field="expires_at", actor=approver_actor,
            grant=pending, expires_at=expires_at)  # fmt: skip


def test_a_request_for_an_agent_no_longer_active_cannot_be_approved(pending, agent, admin_actor, approver_actor):
    inventory_services.agent_suspend(actor=admin_actor, agent=agent, reason="Odd calls.")
    refuses(Conflict, services.grant_approve, match="suspended", actor=approver_actor, grant=pending)


def test_a_request_whose_expiry_passed_cannot_be_approved(pending, approver_actor, frozen_now):
    frozen_now.move_to(T0 + DAY)
    refuses(Conflict, services.grant_approve, match="expiry has passed", actor=approver_actor, grant=pending)


def test_the_approvals_required_rise_with_the_policy_never_fall(
    owner, owner_actor, admin_actor, approver_actor, second_approver_actor
):
    g = ask(owner_actor, make_agent(owner, "high"))
    policy_update(actor=admin_actor, grant_approvals_elevated=3)
    services.grant_approve(actor=approver_actor, grant=g)
    services.grant_approve(actor=second_approver_actor, grant=g)
    assert (reload(g).status, reload(g).approvals_required) == ("pending", 3)
    services.grant_approve(actor=Actor.person(IamAdminFactory()), grant=g)
    assert reload(g).status == "active"


@pytest.mark.parametrize("change", ["tier", "policy"])
def test_the_cap_holds_at_approval_when_the_tier_or_policy_changed_since_the_request(
    owner, owner_actor, admin_actor, approver_actor, change
):
    agent = make_agent(owner, "low")
    g = ask(owner_actor, agent, expires_at=T0 + 10 * DAY)
    if change == "tier":
        Agent.objects.filter(pk=agent.pk).update(risk_tier="medium")  # a risk assessment since
        cap, message = 7 * DAY, "10 d is longer than the 7 d now allowed for a medium-tier agent"
    else:
        policy_update(actor=admin_actor, grant_max_hours_low=5 * 24, grant_max_hours_medium=5 * 24)
        cap, message = 5 * DAY, "10 d is longer than the 5 d now allowed for a low-tier agent"
    exc = refuses(ValidationError, services.grant_approve, field="expires_at", actor=approver_actor, grant=g)
    assert message in exc.message_dict["expires_at"][0]
    # Refused, not trimmed: the approver may shorten it to the cap.
    g = services.grant_approve(actor=approver_actor, grant=g, expires_at=T0 + cap)
    assert (reload(g).status, reload(g).duration) == ("active", cap)


# --- deny ------------------------------------------------------------------------------------


def test_a_denial_needs_a_reason(pending, approver_actor):
    refuses(ValidationError, services.grant_deny, field="reason", actor=approver_actor, grant=pending, reason="  ")


def test_a_denial_ends_the_request_with_who_and_why(pending, approver, approver_actor, trail):
    g = services.grant_deny(actor=approver_actor, grant=pending, reason=" Too broad. ")
    g = reload(g)
    assert (g.status, g.decided_by, g.decided_at, g.decision_reason) == ("denied", approver, T0, "Too broad.")
    assert list(g.approvals.values_list("approver", "decision", "comment")) == [(approver.pk, "deny", "Too broad.")]
    event = trail.only("grant.deny", actor=approver_actor, obj=g)
    assert (event.before, event.after["status"], event.after["reason"]) == (
        {"status": "pending"},
        "denied",
        "Too broad.",
    )


def test_one_denial_ends_a_request_another_approver_approved(owner, owner_actor, approver_actor, second_approver_actor):
    g = ask(owner_actor, make_agent(owner, "critical"), hours=8)
    services.grant_approve(actor=approver_actor, grant=g)
    services.grant_deny(actor=second_approver_actor, grant=g, reason="Not during the freeze.")
    assert reload(g).status == "denied"
    refuses(Conflict, services.grant_approve, actor=Actor.person(IamAdminFactory()), grant=g)


def test_nobody_denies_a_request_they_made(agent, admin_actor):
    g = ask(admin_actor, agent)
    refuses(PermissionDenied, services.grant_deny, actor=admin_actor, grant=g, reason="Withdrawn.")


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "backup", "admin", "requester"])
def test_the_requester_the_owners_and_iam_admins_cancel_a_pending_request(agent, actors, who, trail):
    requester = OwnerFactory(username="rita.requester")
    g = GrantFactory(agent=agent, status="pending", requested_by=requester)
    actor = Actor.person(requester) if who == "requester" else actors[who]
    services.grant_cancel(actor=actor, grant=g, reason="No longer needed.")
    g = reload(g)
    assert (g.status, g.ended_at, g.ended_by, g.end_reason) == ("cancelled", T0, actor.label, "No longer needed.")
    event = trail.only("grant.cancel", actor=actor, obj=g)
    assert (event.before, event.after["status"], event.after["reason"]) == (
        {"status": "pending"}, "cancelled", "No longer needed.",
    )  # fmt: skip


def test_a_cancellation_without_a_reason_says_so(pending, owner_actor):
    services.grant_cancel(actor=owner_actor, grant=pending)
    assert reload(pending).end_reason == "Cancelled."


@pytest.mark.parametrize("who", ["other_owner", "auditor"])
def test_nobody_else_cancels(pending, actors, who):
    refuses(PermissionDenied, services.grant_cancel, actor=actors[who], grant=pending)


@pytest.mark.parametrize("status", ["active", "denied", "cancelled", "expired", "revoked"])
def test_only_a_pending_request_is_cancelled(agent, owner_actor, status):
    g = GrantFactory(agent=agent, status=status, ended_at=T0 if status != "active" else None)
    refuses(Conflict, services.grant_cancel, match="Only a pending request", actor=owner_actor, grant=g)


# --- revoke ----------------------------------------------------------------------------------


@pytest.fixture
def handed_on(agent, other_owner):
    """An active grant of ``agent`` (github read) and its child to another person's agent."""
    parent = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    theirs = make_agent(other_owner, name="Their helper")
    child = GrantFactory(agent=theirs, parent=parent, requested_by=other_owner, scopes=[("github", "read", "")])
    return parent, child


@pytest.mark.parametrize("who", ["owner", "backup", "admin", "requester", "parent-agent-owner"])
def test_who_may_revoke_an_active_grant(handed_on, actors, owner, who, trail):
    parent, child = handed_on
    requester = OwnerFactory(username="rita.requester")
    DelegationGrant.objects.filter(pk=child.pk).update(requested_by=requester)
    if who == "requester":
        actor = Actor.person(requester)
    elif who == "parent-agent-owner":
        actor = actors["owner"]
    else:
        # on the parent grant, whose agent the owner and backup hold
        child = parent
        actor = actors[who]
    ended = services.grant_revoke(actor=actor, grant=child, reason="Done.")
    assert ended[0] == child and reload(child).status == "revoked"
    assert trail.new()[0].verb == "grant.revoke" and trail.new()[0].actor_label == actor.label


@pytest.mark.parametrize("who", ["other_owner", "auditor"])
def test_nobody_else_revokes(agent, actors, who):
    g = GrantFactory(agent=agent)
    refuses(PermissionDenied, services.grant_revoke, actor=actors[who], grant=g, reason="Because.")


def test_the_owner_of_the_receiving_agent_cannot_revoke_the_parent(handed_on, actors):
    parent, _ = handed_on
    refuses(PermissionDenied, services.grant_revoke, actor=actors["other_owner"], grant=parent, reason="Because.")


@pytest.mark.parametrize("status", ["pending", "denied", "cancelled", "expired", "revoked"])
def test_only_an_active_grant_is_revoked(agent, owner_actor, status):
    g = GrantFactory(agent=agent, status=status, ended_at=T0 if status != "pending" else None)
    refuses(Conflict, services.grant_revoke, match="Only an active grant", actor=owner_actor, grant=g, reason="x")


def test_a_grant_whose_expiry_has_come_is_not_revoked_even_before_the_job_runs(agent, owner_actor, frozen_now):
    g = GrantFactory(agent=agent, expires_at=T0 + HOUR)
    frozen_now.move_to(T0 + HOUR)  # the expiry instant: it no longer authorises, the job has not run
    refuses(Conflict, services.grant_revoke, match="already expired", actor=owner_actor, grant=g, reason="x")
    assert reload(g).status == "active"  # left for the expiry job to record as expired


def test_a_revocation_needs_a_reason(agent, owner_actor):
    g = GrantFactory(agent=agent)
    refuses(ValidationError, services.grant_revoke, field="reason", actor=owner_actor, grant=g, reason=" ")


@pytest.fixture
def family(agent, helper, owner):
    """A parent grant with an active child (which has an active grandchild), a pending child and a revoked child."""
    third = make_agent(owner, name="Third")
    parent = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    child = GrantFactory(agent=helper, parent=parent, scopes=[("github", "read", "")])
    grandchild = GrantFactory(agent=third, parent=child, scopes=[("github", "read", "")])
    waiting = GrantFactory(agent=helper, parent=parent, status="pending")
    gone = GrantFactory(agent=third, parent=parent, status="revoked", ended_at=T0 - HOUR, end_reason="Earlier.")
    return {"parent": parent, "child": child, "grandchild": grandchild, "waiting": waiting, "gone": gone}


def test_revoking_a_parent_revokes_its_active_descendants_and_cancels_pending_ones(family, owner_actor, trail):
    ended = services.grant_revoke(actor=owner_actor, grant=family["parent"], reason="Incident 42.")
    assert [g.pk for g in ended] == [family[k].pk for k in ("parent", "child", "grandchild", "waiting")]
    assert status_of(*family.values()) == ["revoked", "revoked", "revoked", "cancelled", "revoked"]
    for key in ("parent", "child", "grandchild", "waiting"):
        g = reload(family[key])
        assert (g.ended_at, g.ended_by, g.end_reason) == (T0, "olivia.owner", "Incident 42.")
    assert reload(family["gone"]).end_reason == "Earlier."
    events = trail.new()
    assert [(e.verb, e.object_id) for e in events] == [
        ("grant.revoke", str(family["parent"].pk)),
        ("grant.revoke", str(family["child"].pk)),
        ("grant.revoke", str(family["grandchild"].pk)),
        ("grant.cancel", str(family["waiting"].pk)),
    ]
    assert {e.actor_label for e in events} == {"olivia.owner"}
    assert {e.after["reason"] for e in events} == {"Incident 42."}
    assert not DelegationGrant.objects.active_at(T0).exists()


def test_a_cascade_is_one_transaction(family, owner_actor, monkeypatch):
    calls = []
    real = services.audit_record

    def fail_on_the_third(**kwargs):
        calls.append(kwargs["verb"])
        if len(calls) == 3:
            raise RuntimeError("audit log unavailable")
        return real(**kwargs)

    monkeypatch.setattr(services, "audit_record", fail_on_the_third)
    refuses(RuntimeError, services.grant_revoke, actor=owner_actor, grant=family["parent"], reason="Incident 42.")
    assert len(calls) == 3


def test_revoking_a_child_leaves_its_parent_and_siblings(family, owner_actor):
    services.grant_revoke(actor=owner_actor, grant=family["child"], reason="Helper done.")
    assert status_of(family["parent"], family["child"], family["grandchild"], family["waiting"]) == [
        "active", "revoked", "revoked", "pending",
    ]  # fmt: skip


# --- chains attenuate (invariant 5) ----------------------------------------------------------


def parent_grant(agent, scopes=(("github", "read", ""),), **kwargs):
    return GrantFactory(agent=agent, scopes=list(scopes), **kwargs)


def ask_child(actor, parent, agent, scopes=None, **kwargs):
    kwargs.setdefault("expires_at", parent.expires_at)
    return ask(actor, agent, scopes, parent=parent, **kwargs)


def test_a_child_grant_within_its_parent_is_requested_at_the_next_depth(agent, helper, owner_actor, trail):
    parent = parent_grant(agent)
    child = ask_child(owner_actor, parent, helper, [S("github", "read")])
    child = reload(child)
    assert (child.parent, child.depth, child.status, child.expires_at) == (parent, 2, "pending", parent.expires_at)
    assert trail.only("grant.request", obj=child).after["parent"] == parent.pk


def test_a_child_asking_for_read_and_write_under_a_read_parent_is_refused_on_scopes(agent, helper, owner_actor):
    parent = parent_grant(agent)
    exc = refuses(ValidationError, ask_child, field="scopes", actor=owner_actor, parent=parent, agent=helper,
                  scopes=[S("github", "read"), S("github", "write")])  # fmt: skip
    assert exc.message_dict["scopes"] == ["github:write is not within the parent grant's scopes (github:read)."]


def test_a_child_cannot_outlive_its_parent(agent, helper, owner_actor):
    parent = parent_grant(agent)
    refuses(ValidationError, ask_child, field="expires_at", match="cannot outlive", actor=owner_actor,
            parent=parent, agent=helper, expires_at=parent.expires_at + SECOND)  # fmt: skip


def test_a_child_cannot_start_before_its_parent(agent, helper, owner_actor):
    parent = parent_grant(agent, starts_at=T0 - MINUTE)
    refuses(ValidationError, ask_child, field="starts_at", match="start before its parent", actor=owner_actor,
            parent=parent, agent=helper, starts_at=T0 - 3 * MINUTE)  # fmt: skip
    assert ask_child(owner_actor, parent, helper, starts_at=T0 - MINUTE).starts_at == T0 - MINUTE


def test_a_chain_is_no_deeper_than_the_policy_allows(owner, owner_actor, admin_actor):
    a, b, c, d = (make_agent(owner, name=n) for n in "ABCD")
    root = parent_grant(a)
    middle = parent_grant(b, parent=root)
    leaf = parent_grant(c, parent=middle)
    assert leaf.depth == 3 == Policy.current().grant_max_depth
    refuses(ValidationError, ask_child, field="parent", match="at most 3 grants; this would be grant 4",
            actor=owner_actor, parent=leaf, agent=d)  # fmt: skip

    policy_update(actor=admin_actor, grant_max_depth=2)
    refuses(ValidationError, ask_child, field="parent", match="at most 2", actor=owner_actor, parent=middle, agent=d)

    policy_update(actor=admin_actor, grant_max_depth=4)
    assert ask_child(owner_actor, leaf, d).depth == 4


def test_an_agent_appears_once_in_a_chain(agent, helper, owner_actor):
    root = parent_grant(agent)
    middle = parent_grant(helper, parent=root)
    refuses(ValidationError, ask_child, field="parent", match="already appears up this chain", actor=owner_actor,
            parent=middle, agent=agent)  # fmt: skip
    refuses(ValidationError, ask_child, field="parent", actor=owner_actor, parent=root, agent=agent)


@pytest.mark.parametrize("how", ["expired-by-time", "expired", "revoked", "pending", "agent-suspended"])
def test_no_child_under_a_parent_that_no_longer_authorises(agent, helper, owner_actor, frozen_now, how):
    parent = parent_grant(agent, expires_at=T0 + 2 * HOUR)
    if how == "expired-by-time":
        frozen_now.move_to(T0 + 2 * HOUR)  # the expiry job has not run: the status still reads active
    elif how == "agent-suspended":
        Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    else:
        DelegationGrant.objects.filter(pk=parent.pk).update(status=how)
    refuses(Conflict, ask_child, match="does not authorise anything now", actor=owner_actor, parent=parent,
            agent=helper, expires_at=T0 + 3 * HOUR if how == "expired-by-time" else T0 + HOUR)  # fmt: skip


def test_a_child_request_cannot_be_approved_once_its_parent_stops(agent, helper, owner_actor, approver_actor):
    parent = parent_grant(agent)
    child = ask_child(owner_actor, parent, helper)
    services.grant_revoke(actor=owner_actor, grant=parent, reason="Stop.")
    assert reload(child).status == "cancelled"  # the cascade cancelled the pending child
    DelegationGrant.objects.filter(pk=child.pk).update(status="pending", ended_at=None)
    refuses(Conflict, services.grant_approve, match="parent grant no longer authorises", actor=approver_actor,
            grant=child)  # fmt: skip


@pytest.mark.parametrize(
    "pattern, allowed",
    [("repo:acme/x", True), ("repo:acme/x*", True), ("repo:acme/*", True), ("repo:*", False), ("", False)],
)
def test_a_child_resource_pattern_narrows_its_parents(agent, helper, owner_actor, pattern, allowed):
    parent = parent_grant(agent, scopes=[("github", "read", "repo:acme/*")])
    scopes = [S("github", "read", pattern)]
    if allowed:
        assert list(
            ask_child(owner_actor, parent, helper, scopes).scopes.values_list("resource_pattern", flat=True)
        ) == [pattern]
    else:
        refuses(ValidationError, ask_child, field="scopes", actor=owner_actor, parent=parent, agent=helper,
                scopes=scopes)  # fmt: skip


def test_the_owner_of_the_parent_agent_hands_work_to_another_persons_agent(agent, owner_actor, other_owner):
    parent = parent_grant(agent)
    theirs = make_agent(other_owner)
    child = ask_child(owner_actor, parent, theirs)
    assert (child.agent, child.requested_by.username) == (theirs, "olivia.owner")
    stranger = Actor.person(OwnerFactory())
    refuses(PermissionDenied, ask_child, actor=stranger, parent=parent, agent=theirs)


# --- renew -----------------------------------------------------------------------------------


@pytest.fixture
def granted(agent, owner):
    """An active grant of ``agent`` (github read on repo:acme/*, one day from T0), with intents and a person."""
    return GrantFactory(
        agent=agent,
        scopes=[("github", "read", "repo:acme/*"), ("jira", "write", "")],
        intents=["triage"],
        on_behalf_of=UserFactory(username="pat.person"),
    )


def test_a_renewal_is_a_new_request_linked_to_the_old_one(granted, owner, owner_actor, trail):
    r = services.grant_renew(actor=owner_actor, grant=granted, duration=7 * DAY)
    r = reload(r)
    assert (r.status, r.renewal_of, r.starts_at, r.expires_at) == ("pending", granted, T0 + DAY, T0 + 8 * DAY)
    assert (r.agent, r.purpose, r.intents, r.on_behalf_of, r.parent, r.requested_by) == (
        granted.agent, granted.purpose, ["triage"], granted.on_behalf_of, None, owner,
    )  # fmt: skip
    assert [str(s) for s in r.scopes.all()] == ["github:read on repo:acme/*", "jira:write"]
    assert r.justification == f"Renewal of grant #{granted.pk}: {granted.justification}"
    event = trail.only("grant.renew", actor=owner_actor, obj=r)
    assert event.after["renewal_of"] == granted.pk
    assert reload(granted).status == "active"


def test_a_renewal_takes_its_own_justification_or_an_expiry(granted, owner_actor):
    r = services.grant_renew(actor=owner_actor, grant=granted, expires_at=T0 + 3 * DAY, justification="Sprint 12.")
    assert (r.starts_at, r.expires_at, r.justification) == (T0 + DAY, T0 + 3 * DAY, "Sprint 12.")


@pytest.mark.parametrize("stored", ["expired", "active"])
def test_a_renewal_of_an_ended_grant_starts_now(granted, owner_actor, frozen_now, stored):
    frozen_now.move_to(T0 + 2 * DAY)
    if stored == "expired":
        DelegationGrant.objects.filter(pk=granted.pk).update(status="expired", ended_at=T0 + DAY)
    r = services.grant_renew(actor=owner_actor, grant=granted, duration=DAY)
    assert (r.starts_at, r.expires_at) == (T0 + 2 * DAY, T0 + 3 * DAY)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"duration": DAY, "expires_at": T0 + 2 * DAY}, {"duration": timedelta(0)}, {"duration": -DAY}],
    ids=["none", "both", "zero", "negative"],
)
def test_a_renewal_has_exactly_one_length_and_no_default(granted, owner_actor, kwargs):
    refuses(ValidationError, services.grant_renew, field="duration", actor=owner_actor, grant=granted, **kwargs)


def test_a_renewal_goes_through_the_same_cap(granted, owner_actor):
    exc = refuses(ValidationError, services.grant_renew, field="expires_at", actor=owner_actor, grant=granted,
                  duration=31 * DAY)  # fmt: skip
    assert "longer than the 30 d allowed" in exc.message_dict["expires_at"][0]


@pytest.mark.parametrize("status", ["pending", "denied", "cancelled", "revoked"])
def test_only_an_active_or_expired_grant_is_renewed(agent, owner_actor, status):
    g = GrantFactory(agent=agent, status=status, ended_at=T0 if status != "pending" else None)
    refuses(Conflict, services.grant_renew, actor=owner_actor, grant=g, duration=DAY)


@pytest.mark.parametrize("who", ["other_owner", "auditor"])
def test_nobody_else_renews(granted, actors, who):
    refuses(PermissionDenied, services.grant_renew, actor=actors[who], grant=granted, duration=DAY)


def test_a_child_renewal_stays_within_its_parent(agent, helper, owner_actor):
    parent = parent_grant(agent, expires_at=T0 + 3 * DAY)
    child = parent_grant(helper, parent=parent)
    r = services.grant_renew(actor=owner_actor, grant=child, duration=2 * DAY)
    assert (r.parent, r.depth, r.expires_at) == (parent, 2, T0 + 3 * DAY)
    services.grant_cancel(actor=owner_actor, grant=r)  # one renewal at a time
    refuses(ValidationError, services.grant_renew, field="expires_at", match="cannot outlive", actor=owner_actor,
            grant=child, duration=2 * DAY + SECOND)  # fmt: skip


@pytest.fixture
def admin_owned(backup):
    """A low-tier agent owned by an IAM admin (olga), backed up by ``backup``, and an active grant of it."""
    olga = IamAdminFactory(username="olga.admin-owner")
    agent = make_agent(olga, backup_owner=backup)
    return olga, GrantFactory(agent=agent, scopes=[("github", "read", "")])


@pytest.mark.parametrize("renewer", ["owner", "backup"])
def test_the_owner_never_approves_their_own_renewal(admin_owned, backup_actor, approver_actor, renewer):
    olga, granted = admin_owned
    actor = Actor.person(olga) if renewer == "owner" else backup_actor
    r = services.grant_renew(actor=actor, grant=granted, duration=DAY)
    refusal = decision_refusal(olga, r)
    assert isinstance(refusal, PermissionDenied)
    refuses(PermissionDenied, services.grant_approve, actor=Actor.person(olga), grant=r)
    refuses(PermissionDenied, services.grant_deny, actor=Actor.person(olga), grant=r, reason="x")
    assert reload(services.grant_approve(actor=approver_actor, grant=r)).status == "active"


# --- bulk renewal ----------------------------------------------------------------------------


def test_bulk_renewal_7_30_and_no_duration_under_a_14_day_cap(agent, owner_actor, admin_actor, trail):
    policy_update(actor=admin_actor, grant_max_hours_low=14 * 24)
    seven, thirty, unsaid = (GrantFactory(agent=agent, scopes=[("github", "read", "")]) for _ in range(3))
    trail.reset()
    before = DelegationGrant.objects.count()

    results = services.grants_renew_bulk(
        actor=owner_actor, items=[(seven, 7 * DAY), (thirty, 30 * DAY), (unsaid, None)]
    )

    assert [r.grant for r in results] == [seven, thirty, unsaid]
    kept = results[0].renewal
    assert results[0].error == "" and kept is not None
    assert (kept.renewal_of, kept.status, kept.duration, kept.expires_at) == (seven, "pending", 7 * DAY, T0 + 8 * DAY)
    assert results[1].renewal is None
    assert "30 d is longer than the 14 d allowed" in results[1].error and "over the cap" in results[1].error
    assert results[2].renewal is None and "no default" in results[2].error
    assert DelegationGrant.objects.count() == before + 1
    assert [(e.verb, e.object_id) for e in trail.new()] == [("grant.renew", str(kept.pk))]
    assert not DelegationGrant.objects.filter(renewal_of__in=[thirty, unsaid]).exists()


def test_the_owner_never_approves_their_own_renewal_after_bulk(admin_owned, approver_actor):
    olga, granted = admin_owned
    (result,) = services.grants_renew_bulk(actor=Actor.person(olga), items=[(granted, 2 * DAY)])
    renewal = result.renewal
    assert renewal is not None and renewal.requested_by == olga
    assert isinstance(decision_refusal(olga, renewal), PermissionDenied)
    refuses(PermissionDenied, services.grant_approve, actor=Actor.person(olga), grant=renewal)
    assert reload(services.grant_approve(actor=approver_actor, grant=renewal)).status == "active"


def test_a_refused_bulk_item_does_not_stop_the_others(agent, owner_actor, other_owner):
    theirs = GrantFactory(agent=make_agent(other_owner), scopes=[("github", "read", "")])
    pending_one = GrantFactory(agent=agent, status="pending", scopes=[("github", "read", "")])
    fine = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    results = services.grants_renew_bulk(actor=owner_actor, items=[(theirs, DAY), (pending_one, DAY), (fine, DAY)])
    assert "only for agents you own" in results[0].error
    assert "Only an active or expired grant" in results[1].error
    assert results[2].renewal is not None and results[2].error == ""


# --- decommissioning an agent ----------------------------------------------------------------


@pytest.fixture
def decommission_scene(agent, helper, other_owner, owner):
    """What an agent holds and has handed on: its active and pending grants, an active child on another person's
    agent (with its own child), a pending child, and an unrelated grant of another agent."""
    theirs = make_agent(other_owner, name="Their helper")
    third = make_agent(owner, name="Third")
    held = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    asked = GrantFactory(agent=agent, status="pending")
    handed = GrantFactory(agent=theirs, parent=held, requested_by=other_owner, scopes=[("github", "read", "")])
    handed_further = GrantFactory(agent=third, parent=handed)
    handed_pending = GrantFactory(agent=helper, parent=held, status="pending")
    unrelated = GrantFactory(agent=helper)
    return {
        "held": held, "asked": asked, "handed": handed, "handed_further": handed_further,
        "handed_pending": handed_pending, "unrelated": unrelated,
    }  # fmt: skip


def test_decommissioning_an_agent_ends_its_grants_and_those_it_handed_on(decommission_scene, agent, admin_actor, trail):
    s = decommission_scene
    inventory_services.agent_decommission(actor=admin_actor, agent=agent, reason="Retired.")
    assert status_of(*s.values()) == ["revoked", "cancelled", "revoked", "revoked", "cancelled", "active"]
    events = [(e.verb, e.object_id) for e in trail.new()]
    assert events[0] == ("agent.decommission", str(agent.pk))
    assert sorted(events[1:]) == sorted(
        [("grant.revoke", str(s[k].pk)) for k in ("held", "handed", "handed_further")]
        + [("grant.cancel", str(s[k].pk)) for k in ("asked", "handed_pending")]
    )
    assert {e.actor_label for e in trail.new()} == {"iris.admin"}
    assert {reload(s[k]).end_reason for k in ("held", "handed")} == {"Ticket triage was decommissioned."}
    assert set(DelegationGrant.objects.active_at(T0).values_list("pk", flat=True)) == {s["unrelated"].pk}


def test_decommissioning_is_one_transaction_with_the_grants(decommission_scene, agent, admin_actor, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "audit_record", broken)
    refuses(RuntimeError, inventory_services.agent_decommission, actor=admin_actor, agent=agent, reason="Retired.")
    assert reload(decommission_scene["held"]).status == "active"
    assert Agent.objects.get(pk=agent.pk).state == "active"


def test_nothing_reopens_after_decommissioning(decommission_scene, agent, admin_actor, owner_actor, approver_actor):
    s = decommission_scene
    inventory_services.agent_decommission(actor=admin_actor, agent=agent, reason="Retired.")
    ended = status_of(*s.values())
    for restore in (inventory_services.agent_reactivate, inventory_services.agent_activate):
        refuses(Conflict, restore, actor=admin_actor, agent=agent, reason="Back.")
    refuses(Conflict, ask, actor=owner_actor, agent=agent)
    refuses(Conflict, services.grant_approve, actor=approver_actor, grant=s["asked"])
    refuses(Conflict, services.grant_renew, actor=owner_actor, grant=s["asked"], duration=DAY)
    assert Agent.objects.get(pk=agent.pk).state == "decommissioned"
    assert status_of(*s.values()) == ended


# --- who may: delegations.permissions --------------------------------------------------------


@pytest.fixture
def people(owner, backup, other_owner, admin_user, auditor, approver):
    requester = OwnerFactory(username="rita.requester")
    person = UserFactory(username="pat.person")
    gone = IamAdminFactory(username="gil.gone", is_active=False)
    return {
        "owner": owner, "backup": backup, "other_owner": other_owner, "admin": admin_user, "auditor": auditor,
        "approver": approver, "requester": requester, "person": person, "gone": gone,
    }  # fmt: skip


@pytest.fixture
def acting_for(agent, people):
    return GrantFactory(agent=agent, requested_by=people["requester"], on_behalf_of=people["person"], status="pending")


SEES = {
    "owner": True, "backup": True, "admin": True, "auditor": True, "approver": True,
    "requester": True, "person": True, "other_owner": False, "gone": False,
}  # fmt: skip


@pytest.mark.parametrize("who, sees", SEES.items())
def test_who_sees_a_grant(acting_for, people, who, sees):
    GrantFactory(agent=make_agent(people["other_owner"]))  # one they must not see unless they read all
    user = people[who]
    visible = set(DelegationGrant.objects.filter(visible_grants_q(user)).values_list("pk", flat=True))
    assert (acting_for.pk in visible) is sees
    assert can_view_grant(user, acting_for) is sees


def test_an_anonymous_visitor_sees_no_grant(acting_for):
    from django.contrib.auth.models import AnonymousUser

    assert not DelegationGrant.objects.filter(visible_grants_q(AnonymousUser())).exists()
    assert not can_view_grant(AnonymousUser(), acting_for)


MAY = {
    # who: (request, cancel, revoke, renew)
    "owner": (True, True, True, True),
    "backup": (True, True, True, True),
    "admin": (True, True, True, True),
    "requester": (False, True, True, False),
    "person": (False, False, False, False),
    "other_owner": (False, False, False, False),
    "auditor": (False, False, False, False),
    "gone": (False, False, False, False),
}


@pytest.mark.parametrize("who, may", MAY.items())
def test_who_may_request_cancel_revoke_and_renew(acting_for, agent, people, who, may):
    user = people[who]
    got = (
        can_request_grant(user, agent),
        can_cancel_grant(user, acting_for),
        can_revoke_grant(user, acting_for),
        can_renew_grant(user, acting_for),
    )
    assert got == may


@pytest.mark.parametrize(
    "who, refusal, match",
    [
        ("approver", None, None),
        ("owner", PermissionDenied, "Only IAM admins"),
        ("auditor", PermissionDenied, "Only IAM admins"),
        ("gone", PermissionDenied, "Only IAM admins"),
        ("person", PermissionDenied, "Only IAM admins"),
    ],
)
def test_decision_refusal_names_why(acting_for, people, who, refusal, match):
    got = decision_refusal(people[who], acting_for)
    if refusal is None:
        assert got is None
    else:
        assert isinstance(got, refusal) and match in str(got)


def test_decision_refusal_reads_preloaded_approvals_without_a_query(acting_for, approver, django_assert_num_queries):
    Approval.objects.create(grant=acting_for, approver=approver, decision="approve", decided_at=T0)
    grant = DelegationGrant.objects.select_related("agent").prefetch_related("approvals").get(pk=acting_for.pk)
    approvals = list(grant.approvals.all())
    approver = type(approver).objects.get(pk=approver.pk)
    approver._warrant_groups = {"IAM admin"}
    with django_assert_num_queries(0):
        refusal = decision_refusal(approver, grant, approvals)
    assert isinstance(refusal, Conflict) and "already decided this request (approved)" in str(refusal)


# --- found by trying the product -------------------------------------------------------------


def test_a_child_scope_on_a_same_named_tool_that_runs_elsewhere_is_refused(agent, owner, owner_actor, frozen_now):
    """A tool of the same name on the receiving agent is the parent's tool only if it runs at the same place;
    otherwise naming a tool "payments-api" would escape the parent's narrowing (invariant 5)."""
    parent = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    imposter = AgentFactory(owner=owner, name="Imposter", risk_tier="low")
    ToolFactory(agent=imposter, name="github", command="", transport="http", url="https://elsewhere.example/mcp")
    refuses(
        ValidationError,
        lambda: ask(owner_actor, imposter, [S("github", "read")], parent=parent, hours=12),
        field="scopes",
        match="not the tool the parent grant covers",
    )


def test_a_child_needs_at_least_as_many_approvers_as_its_parent(agent, helper, owner_actor, frozen_now):
    parent = GrantFactory(agent=agent, scopes=[("github", "read", "")], approvals_required=2)
    child = ask(owner_actor, helper, [S("github", "read")], parent=parent, hours=12)
    assert child.approvals_required == 2  # the helper alone (low tier, no sensitive data) would need one


def test_a_grant_is_renewed_once_at_a_time(agent, owner_actor, frozen_now):
    g = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    first = services.grant_renew(actor=owner_actor, grant=g, duration=timedelta(days=1))
    refuses(Conflict, services.grant_renew, match=f"already being renewed by #{first.pk}", actor=owner_actor,
            grant=g, duration=timedelta(days=1))  # fmt: skip
    results = services.grants_renew_bulk(actor=owner_actor, items=[(g, timedelta(days=1))])
    assert results[0].renewal is None and "already being renewed" in results[0].error
    services.grant_cancel(actor=owner_actor, grant=first)
    assert services.grant_renew(actor=owner_actor, grant=g, duration=timedelta(days=1)).renewal_of_id == g.pk


@pytest.mark.parametrize("field", ["purpose", "justification"])
def test_a_literal_secret_in_free_text_is_refused(agent, owner_actor, field, frozen_now):
    text = "use ghp_" + "a" * 36
    refuses(ValidationError, lambda: ask(owner_actor, agent, **{field: text}), field=field, match="looks like a secret")


def test_a_request_just_over_the_cap_names_whole_seconds(agent, owner_actor, frozen_now):
    over = T0 + timedelta(days=30, microseconds=300)
    refuses(
        ValidationError,
        lambda: ask(owner_actor, agent, expires_at=over),
        field="expires_at",
        match="720 h 0 min 1 s is longer than the 30 d allowed",
    )
