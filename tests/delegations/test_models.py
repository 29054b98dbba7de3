"""The grant model's own rules: ``active_at`` (invariant 1), the state at an instant, resource patterns, constraints."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from delegations.models import (
    Approval,
    DelegationGrant,
    GrantScope,
    pattern_covers,
    resource_matches,
    scope_label,
    validate_resource_pattern,
)
from governance.models import MAX_DELEGATION_DEPTH
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
#: The last second of the day T0 falls in.
END = datetime(2026, 11, 15, 23, 59, 59, tzinfo=UTC)


def active_ids(t: datetime) -> set[int]:
    return set(DelegationGrant.objects.active_at(t).values_list("pk", flat=True))


def chain(depth: int, **root) -> list[DelegationGrant]:
    """A delegation chain of ``depth`` grants, each to its own agent, root first, all from T0 for one day."""
    grants = [GrantFactory(**root)]
    for _ in range(depth - 1):
        grants.append(GrantFactory(parent=grants[-1]))
    return grants


# --- active_at: the one rule for "authorises at instant t" -----------------------------------


def test_a_grant_expiring_at_235959z_authorises_until_the_microsecond_before():
    g = GrantFactory(starts_at=T0, expires_at=END)
    assert g.pk in active_ids(END - US)
    assert g.pk in active_ids(datetime(2026, 11, 15, 23, 59, 58, 999000, tzinfo=UTC))
    assert g.pk not in active_ids(END)
    assert g.pk not in active_ids(END + US)


def test_a_grant_authorises_from_its_start_exactly():
    g = GrantFactory(starts_at=END, expires_at=END + HOUR)
    assert g.pk not in active_ids(END - US)
    assert g.pk in active_ids(END)


def test_an_offset_instant_is_the_same_instant():
    g = GrantFactory(starts_at=T0, expires_at=END)
    paris = datetime(2026, 11, 16, 0, 59, 58, 999999, tzinfo=ZoneInfo("Europe/Paris"))
    assert paris.utcoffset() == HOUR
    assert g.pk in active_ids(paris)
    assert g.pk not in active_ids(paris + US)


@pytest.mark.parametrize("status", ["pending", "denied", "cancelled", "expired", "revoked"])
def test_only_an_active_status_authorises_even_inside_the_window(status):
    g = GrantFactory(status=status, ended_at=T0 if status in ("expired", "revoked", "cancelled") else None)
    assert g.pk not in active_ids(T0 + HOUR)


@pytest.mark.parametrize("state", ["proposed", "suspended", "decommissioned"])
def test_a_grant_of_an_agent_that_is_not_active_authorises_nothing_at_once(state):
    g = GrantFactory()
    assert g.pk in active_ids(T0 + HOUR)
    Agent.objects.filter(pk=g.agent_id).update(state=state)
    assert g.pk not in active_ids(T0 + HOUR)
    Agent.objects.filter(pk=g.agent_id).update(state=Agent.State.ACTIVE)
    assert g.pk in active_ids(T0 + HOUR)


def test_a_child_authorises_only_while_its_parent_does():
    parent, child = chain(2)
    assert {parent.pk, child.pk} <= active_ids(T0 + HOUR)

    DelegationGrant.objects.filter(pk=parent.pk).update(status="revoked", ended_at=T0)
    assert active_ids(T0 + HOUR) == set()

    DelegationGrant.objects.filter(pk=parent.pk).update(status="expired")
    assert active_ids(T0 + HOUR) == set()


def test_a_child_stops_when_its_parent_expires_by_time_even_before_the_job_runs():
    # The database holds a child that would outlive its parent; time alone still ends it with the parent.
    parent = GrantFactory(expires_at=T0 + 2 * HOUR)
    child = GrantFactory(parent=parent, expires_at=T0 + 2 * HOUR)
    DelegationGrant.objects.filter(pk=child.pk).update(expires_at=T0 + 5 * HOUR)
    assert child.pk in active_ids(T0 + 2 * HOUR - US)
    assert active_ids(T0 + 2 * HOUR) == set()


def test_a_child_stops_when_the_parents_agent_is_suspended():
    parent, child = chain(2)
    Agent.objects.filter(pk=parent.agent_id).update(state=Agent.State.SUSPENDED)
    assert active_ids(T0 + HOUR) == set()


def test_a_chain_of_depth_three_authorises_only_while_every_link_does():
    root, middle, leaf = chain(3)
    assert leaf.depth == 3
    assert active_ids(T0 + HOUR) == {root.pk, middle.pk, leaf.pk}

    Agent.objects.filter(pk=root.agent_id).update(state=Agent.State.SUSPENDED)
    assert active_ids(T0 + HOUR) == set()
    Agent.objects.filter(pk=root.agent_id).update(state=Agent.State.ACTIVE)

    DelegationGrant.objects.filter(pk=root.pk).update(status="revoked", ended_at=T0)
    assert active_ids(T0 + HOUR) == set()
    DelegationGrant.objects.filter(pk=root.pk).update(status="active", ended_at=None)

    DelegationGrant.objects.filter(pk=middle.pk).update(starts_at=T0 + 2 * HOUR)
    assert active_ids(T0 + HOUR) == {root.pk}
    assert active_ids(T0 + 2 * HOUR) == {root.pk, middle.pk, leaf.pk}


def test_the_rule_reaches_the_root_of_the_deepest_chain_the_schema_allows():
    grants = chain(MAX_DELEGATION_DEPTH)
    leaf = grants[-1]
    assert leaf.depth == MAX_DELEGATION_DEPTH
    assert leaf.pk in active_ids(T0 + HOUR)
    DelegationGrant.objects.filter(pk=grants[0].pk).update(status="revoked", ended_at=T0)
    assert active_ids(T0 + HOUR) == set()


def test_expired_by_selects_the_active_status_grants_whose_end_has_come():
    due = GrantFactory(expires_at=END)
    GrantFactory(expires_at=END + US)
    GrantFactory(status="pending", expires_at=END - HOUR)
    GrantFactory(status="revoked", expires_at=END - HOUR, ended_at=T0)
    assert list(DelegationGrant.objects.expired_by(END)) == [due]


# --- the state at an instant -----------------------------------------------------------------


@pytest.fixture
def one_of_each_state():
    """One grant in each state at T0 + 1 h, by expected state."""
    blocked = GrantFactory()
    Agent.objects.filter(pk=blocked.agent_id).update(state=Agent.State.SUSPENDED)
    return {
        "active": GrantFactory(),
        "scheduled": GrantFactory(starts_at=T0 + 2 * HOUR),
        "expired": GrantFactory(expires_at=T0 + HOUR),  # the job has not run: still stored active
        "blocked": blocked,
        "pending": GrantFactory(status="pending"),
        "denied": GrantFactory(status="denied"),
        "cancelled": GrantFactory(status="cancelled", ended_at=T0),
        "revoked": GrantFactory(status="revoked", ended_at=T0),
    }


def test_with_state_at_names_what_each_grant_is_at_the_instant(one_of_each_state):
    states = {g.pk: g.state for g in DelegationGrant.objects.with_state_at(T0 + HOUR)}
    assert states == {g.pk: name for name, g in one_of_each_state.items()}
    assert {name for name, _ in DelegationGrant.STATES} == set(one_of_each_state)


def test_a_stored_expiry_reads_expired_too(one_of_each_state):
    stored = GrantFactory(status="expired", ended_at=T0 + DAY)
    assert DelegationGrant.objects.with_state_at(T0 + HOUR).get(pk=stored.pk).state == "expired"


@pytest.mark.parametrize("state", [name for name, _ in DelegationGrant.STATES])
def test_in_state_at_filters_by_the_same_states(one_of_each_state, state):
    t = T0 + HOUR
    expected = {g.pk for g in DelegationGrant.objects.with_state_at(t) if g.state == state}
    assert expected == {one_of_each_state[state].pk}
    assert set(DelegationGrant.objects.in_state_at([state], t).values_list("pk", flat=True)) == expected


def test_in_state_at_takes_several_states(one_of_each_state):
    got = set(
        DelegationGrant.objects.in_state_at(["active", "blocked", "pending"], T0 + HOUR).values_list("pk", flat=True)
    )
    assert got == {one_of_each_state[s].pk for s in ("active", "blocked", "pending")}
    assert not DelegationGrant.objects.in_state_at([], T0 + HOUR).exists()


# --- resource patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "outer, inner, covered",
    [
        ("repo:acme/*", "repo:acme/x", True),
        ("repo:acme/*", "repo:acme/x*", True),
        ("repo:acme/*", "repo:acme/*", True),
        ("repo:acme/*", "repo:*", False),
        ("repo:acme/*", "", False),
        ("repo:acme/*", "repo:other/x", False),
        ("", "repo:acme/x", True),
        ("", "", True),
        ("repo:acme/x", "repo:acme/x", True),
        ("repo:acme/x", "repo:acme/x*", False),
        ("repo:acme/x", "repo:acme/xy", False),
        ("repo:acme/x", "", False),
    ],
)
def test_pattern_covers(outer, inner, covered):
    assert pattern_covers(outer, inner) is covered


@pytest.mark.parametrize(
    "pattern, resource, matches",
    [
        ("", "anything", True),
        ("repo:acme/*", "repo:acme/x", True),
        ("repo:acme/*", "repo:acme", False),
        ("repo:acme/x", "repo:acme/x", True),
        ("repo:acme/x", "repo:acme/xy", False),
    ],
)
def test_resource_matches(pattern, resource, matches):
    assert resource_matches(pattern, resource) is matches


@pytest.mark.parametrize("pattern", ["", "repo:acme/x", "repo:acme/*", "*", "v1.2/*", "a..b/*", "..x"])
def test_valid_resource_patterns(pattern):
    validate_resource_pattern(pattern)


@pytest.mark.parametrize("pattern", ["repo:*/x", "**", "repo:acme x", "repo:acme/\tx", "repo:\x00"])
def test_invalid_resource_patterns(pattern):
    with pytest.raises(ValidationError):
        validate_resource_pattern(pattern)


@pytest.mark.parametrize("pattern", ["../*", "../etc/*", "a/./b", "a/..", "a\\..\\b*", "a%2e%2e/*", "a%2Fb", "./*"])
def test_a_pattern_no_resource_could_match_is_refused(pattern):
    """Decisions refuse resources with dot segments or encoded separators (``resource_problem``), so
    a pattern holding them would be a grant that never applies: refused when asked for."""
    with pytest.raises(ValidationError, match="A resource pattern may not contain"):
        validate_resource_pattern(pattern)


def test_scope_label():
    assert scope_label("github", "read") == "github:read"
    assert scope_label("github", "write", "repo:acme/*") == "github:write on repo:acme/*"


# --- the model's own invariants --------------------------------------------------------------


def test_str_and_properties():
    g = GrantFactory(agent=AgentFactory(name="Deploy bot"), approvals_required=2)
    assert str(g) == f"Grant #{g.pk} to Deploy bot"
    assert g.is_elevated and g.duration == DAY
    assert not GrantFactory(approvals_required=1).is_elevated


@pytest.mark.parametrize("intents", [["triage", ""], "triage", [3], ["  "]])
def test_clean_refuses_bad_intents(intents):
    g = GrantFactory.build(agent=AgentFactory(), intents=intents)
    with pytest.raises(ValidationError) as exc:
        g.clean()
    assert "intents" in exc.value.message_dict


def test_clean_refuses_control_characters_in_the_purpose():
    g = GrantFactory.build(agent=AgentFactory(), purpose="Read \u202eelif")
    with pytest.raises(ValidationError) as exc:
        g.clean()
    assert "purpose" in exc.value.message_dict


@pytest.mark.parametrize(
    "changes",
    [
        {"expires_at": None},
        {"expires_at": T0},
        {"expires_at": T0 - US},
        {"depth": 0},
        {"depth": 2},
        {"depth": MAX_DELEGATION_DEPTH + 1},
        {"decided_at": None},
    ],
    ids=["no-expiry", "ends-at-start", "ends-before-start", "depth-0", "root-at-depth-2", "too-deep", "no-decision"],
)
def test_the_database_refuses_a_grant_that_breaks_its_constraints(changes):
    g = GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DelegationGrant.objects.filter(pk=g.pk).update(**changes)


@pytest.mark.parametrize("status", ["active", "expired", "revoked"])
def test_an_approved_grant_always_has_its_decision_time(status):
    with pytest.raises(IntegrityError), transaction.atomic():
        GrantFactory(status=status, decided_at=None)


def test_a_child_has_depth_two_or_more():
    parent = GrantFactory()
    child = GrantFactory(parent=parent)
    assert child.depth == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        DelegationGrant.objects.filter(pk=child.pk).update(depth=1)


def test_one_approval_per_approver_per_grant():
    g = GrantFactory(status="pending")
    approver = IamAdminFactory()
    Approval.objects.create(grant=g, approver=approver, decision="approve", decided_at=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(grant=g, approver=approver, decision="deny", decided_at=T0)
    Approval.objects.create(grant=g, approver=IamAdminFactory(), decision="approve", decided_at=T0)
    assert g.approvals.count() == 2


def test_one_scope_row_per_tool_access_and_pattern():
    g = GrantFactory()
    GrantScope.objects.create(grant=g, tool_name="github", access="read")
    GrantScope.objects.create(grant=g, tool_name="github", access="read", resource_pattern="repo:acme/*")
    GrantScope.objects.create(grant=g, tool_name="github", access="write")
    with pytest.raises(IntegrityError), transaction.atomic():
        GrantScope.objects.create(grant=g, tool_name="github", access="read")
    assert [str(s) for s in g.scopes.all()] == ["github:read", "github:read on repo:acme/*", "github:write"]
